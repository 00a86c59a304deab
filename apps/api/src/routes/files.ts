import { pipeline } from "node:stream/promises";
import { Router } from "express";
import type { Request, Response } from "express";
import { findFile } from "@codeinterp/db";
import type { FileRow } from "@codeinterp/db";
import { normalizeError } from "@codeinterp/logger";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { notFound } from "../errors";
import { deleteUserFile, storeUpload } from "../files/store";
import { receiveUpload } from "../files/upload";
import { FileParams } from "../schemas-files";
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
    const file = await storeUpload(deps, userId, upload);
    res.status(201).location(`/v1/files/${file.id}`).json(serializeFile(file));
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

/** Streams a file's stored bytes as an attachment (conditional GET and HEAD included). */
export async function sendFileContent(deps: Pick<ApiDeps, "blobs" | "log">, req: Request, res: Response, file: FileRow): Promise<void> {
  let stream;
  try {
    stream = await deps.blobs.open(file.storageKey);
  } catch (err) {
    if ((err as Error)?.name !== "BlobNotFoundError") throw err;
    deps.log.warn({ fileId: file.id }, "stored content of a live file is missing");
    throw notFound("file content");
  }

  // res.attachment writes Content-Disposition with the content-disposition package (RFC 6266, with an
  // RFC 5987 filename* for non-ASCII names); it also guesses a type, which the stored one replaces.
  res.attachment(file.name);
  res.setHeader("Content-Type", file.mimeType);
  res.setHeader("Content-Length", String(file.size));
  res.setHeader("ETag", `"${file.sha256}"`);
  res.setHeader("Cache-Control", "private, no-cache");
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Content-Security-Policy", "default-src 'none'; sandbox");
  if (req.fresh || req.method === "HEAD") {
    stream.destroy();
    res.status(req.fresh ? 304 : 200).end();
    return;
  }
  try {
    await pipeline(stream, res);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    // A client that goes away mid-download is not an error of ours.
    if (code !== "ERR_STREAM_PREMATURE_CLOSE" && code !== "ECONNRESET") {
      deps.log.warn({ fileId: file.id, err: normalizeError(err) }, "download failed");
    }
    if (!res.destroyed) res.destroy();
  }
}
