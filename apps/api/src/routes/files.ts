import { Router } from "express";
import { createFile, deleteFile, findFile, findUploadsByContent, keepBlobs, removeBlobIfUnused } from "@codeinterp/db";
import type { FileRow } from "@codeinterp/db";
import { normalizeError } from "@codeinterp/logger";
import { executionChangedChannel } from "@codeinterp/queue";
import { sanitizeFilename } from "@codeinterp/workspace";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { notFound } from "../errors";
import { mimeTypeForUpload } from "../files/mime";
import { sendFileContent } from "../files/send";
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
    const upload = await receiveUpload(req, { blobs: deps.blobs, maxBytes: deps.env.MAX_UPLOAD_BYTES });
    const name = sanitizeFilename(upload.filename);
    const { stored } = upload;
    let file: FileRow;
    try {
      file = await createFile(deps.db, {
        userId,
        name,
        size: stored.size,
        sha256: stored.sha256,
        mimeType: mimeTypeForUpload(upload.clientType, name),
        storageKey: stored.key,
        source: "upload",
      });
    } catch (err) {
      await deps.blobs.settle(stored, { restore: false }).catch(() => undefined);
      // No row: do not keep a blob this request created and nothing references.
      if (stored.created) await removeBlobIfUnused(deps.db, stored.key, () => deps.blobs.remove(stored.key)).catch(() => undefined);
      throw err;
    }
    // The same content may have been deleted (its blob removed) while this upload ran: put it back. The
    // file exists from here on, so a failed wait is logged rather than answered as a failed upload.
    try {
      if (await keepBlobs(deps.db, [stored], (p) => deps.blobs.settle(p))) deps.log.info({ fileId: file.id }, "put back a blob a concurrent deletion removed");
    } catch (err) {
      deps.log.warn({ fileId: file.id, err: normalizeError(err) }, "could not wait for blob removals");
    }
    deps.log.info({ fileId: file.id, size: stored.size }, "file uploaded");
    res.status(201).location(`/v1/files/${file.id}`).json(serializeFile(file));
  });

  // Clients that keep their own copies (the Open WebUI Tool) ask before uploading the same bytes again.
  router.get("/files", async (req, res) => {
    const userId = userOf(res);
    const { sha256, name } = parseInput(FileLookupQuery, req.query, "query");
    const files = await findUploadsByContent(deps.db, userId, sha256, name === undefined ? undefined : sanitizeFilename(name));
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
    const file = await deleteFile(deps.db, userId, id);
    if (!file) throw notFound("file");
    if (file.executionId) {
      // Its execution's response lists it: drop that from every API process's cache of finished ones.
      deps.finished?.invalidate(file.executionId);
      await deps.redis.publish(executionChangedChannel(deps.queuePrefix), file.executionId).catch(() => undefined);
    }
    // Content-addressed: the blob may be shared with other files (other users' included).
    await removeBlobIfUnused(deps.db, file.storageKey, () => deps.blobs.remove(file.storageKey));
    deps.log.info({ fileId: file.id }, "file deleted");
    res.status(204).end();
  });

  return router;
}
