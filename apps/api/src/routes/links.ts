import { Router } from "express";
import { findFile, findLiveFileById } from "@codeinterp/db";
import { rewriteSandboxLinks } from "@codeinterp/workspace";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { HttpError, notFound } from "../errors";
import { listMessageEntries } from "../files/context";
import { sendFileContent } from "../files/send";
import { InvalidLinkSignatureError, LinkExpiredError } from "../links/signer";
import { defaultLinkTtlS, publicOrigin, signedUrl } from "../links/urls";
import { FileParams, MessageParams } from "../schemas-files";
import { createLinkBody, LinkParams, LinkQuery, rewriteLinksBody } from "../schemas-links";
import { parseInput } from "../validate";

/** Making signed links (API key): for one file, or for every file of a message with its text rewritten. */
export function linksRouter(deps: ApiDeps): Router {
  const router = Router();
  const { SIGNED_LINK_MAX_TTL_S, PUBLIC_URL } = deps.env;
  const SIGNED_LINK_TTL_S = defaultLinkTtlS(deps.env);
  const createBody = createLinkBody(SIGNED_LINK_MAX_TTL_S);
  const rewriteBody = rewriteLinksBody(SIGNED_LINK_MAX_TTL_S);

  router.post("/files/:id/links", async (req, res) => {
    const userId = userOf(res);
    const { id } = parseInput(FileParams, req.params, "params");
    const { expiresIn } = parseInput(createBody, req.body ?? {}, "body");
    const file = await findFile(deps.db, userId, id);
    if (!file) throw notFound("file");
    deps.log.info({ fileId: file.id }, "signed link created");
    res.status(201).json(signedUrl(deps.links, publicOrigin(PUBLIC_URL, req), file, expiresIn ?? SIGNED_LINK_TTL_S));
  });

  // Someone else's message reads as one without files: the text comes back unchanged.
  router.post("/messages/:messageId/links", async (req, res) => {
    const userId = userOf(res);
    const { messageId } = parseInput(MessageParams, req.params, "params");
    const { text, expiresIn } = parseInput(rewriteBody, req.body ?? {}, "body");
    const origin = publicOrigin(PUBLIC_URL, req);
    const now = Date.now();
    const entries = await listMessageEntries(deps.db, userId, messageId);
    const links = entries.map((e) => ({
      ...signedUrl(deps.links, origin, e.row, expiresIn ?? SIGNED_LINK_TTL_S, now),
      path: e.path,
    }));
    res.json({ messageId, text: rewriteSandboxLinks(text, links), links });
  });

  return router;
}

/**
 * Downloads by signed link, no API key. The signature is checked before the database is asked, so a
 * guessed file id learns nothing; a deleted file's links answer 404 from then on.
 */
export function signedDownloadRouter(deps: ApiDeps): Router {
  const router = Router();
  router.get("/links/:id", async (req, res) => {
    const { id } = parseInput(LinkParams, req.params, "params");
    const { expires, signature } = parseInput(LinkQuery, req.query, "query");
    try {
      deps.links.verify(id, expires, signature);
    } catch (err) {
      if (err instanceof InvalidLinkSignatureError) throw new HttpError(403, "invalid_signature", err.message);
      if (err instanceof LinkExpiredError)
        throw new HttpError(403, "link_expired", err.message, { expiredAt: err.expiredAt.toISOString() });
      throw err;
    }
    const file = await findLiveFileById(deps.db, id);
    if (!file) throw new HttpError(404, "not_found", "file not found: it was deleted");
    await sendFileContent(deps, req, res, file);
  });
  return router;
}
