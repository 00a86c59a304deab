import { Router } from "express";
import { findFile, findUploadsByContent } from "@codeinterp/db";
import type { FileRow } from "@codeinterp/db";
import { sanitizeFilename } from "@codeinterp/workspace";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { notFound } from "../errors";
import { sendFileContent } from "../files/send";
import { deleteUserFile, storeUpload } from "../files/store";
import { receiveUpload } from "../files/upload";
import { FileLookupQuery, FileParams } from "../schemas-files";
import { serializeFile } from "../serialize";
import { parseInput } from "../validate";

/** Metadata of any file; files produced by code also say where they came from. */
export function serializeFileMetadata(f: FileRow) {
  const base = serializeFile(f);
  if (f.source === "upload") return base;
  return {
    ...base,
    ...(f.path !== null && f.source === "generated" ? { path: f.path } : {}),
    ...(f.messageId !== null ? { messageId: f.messageId } : {}),
    ...(f.executionId !== null ? { executionId: f.executionId } : {}),
    derivedFromId: f.derivedFromId,
  };
}

/**
 * Uploads, metadata, downloads and deletion of a user's files. Mounted before the JSON body parser: an
 * upload streams from the request into the blob store and is never buffered.
 */
export function filesRouter(deps: ApiDeps): Router {
  const router = Router();

  router.post("/files", async (req, res) => {
    const userId = userOf(res);
    const upload = await receiveUpload(req, { files: deps.files, maxBytes: deps.env.MAX_UPLOAD_BYTES });
    const file = await storeUpload(deps, userId, upload);
    res.status(201).location(`/v1/files/${file.id}`).json(serializeFile(file));
  });

  // Clients that keep their own copies (the Open WebUI Tool) ask before uploading the same bytes again.
  router.get("/files", async (req, res) => {
    const userId = userOf(res);
    const { sha256, name } = parseInput(FileLookupQuery, req.query, "query");
    const files = await findUploadsByContent(
      deps.db,
      userId,
      sha256,
      name === undefined ? undefined : sanitizeFilename(name),
    );
    res.json({ files: files.map(serializeFile) });
  });

  router.get("/files/:id", async (req, res) => {
    const userId = userOf(res);
    const { id } = parseInput(FileParams, req.params, "params");
    const file = await findFile(deps.db, userId, id);
    if (!file) throw notFound("file");
    res.json(serializeFileMetadata(file));
  });

  // Express answers HEAD with this GET route too: same headers, no body.
  router.get("/files/:id/content", async (req, res) => {
    const userId = userOf(res);
    const { id } = parseInput(FileParams, req.params, "params");
    const file = await findFile(deps.db, userId, id);
    if (!file) throw notFound("file");
    await sendFileContent(deps, req, res, file);
  });

  router.delete("/files/:id", async (req, res) => {
    const userId = userOf(res);
    const { id } = parseInput(FileParams, req.params, "params");
    if (!(await deleteUserFile(deps, userId, id))) throw notFound("file");
    res.status(204).end();
  });

  return router;
}
