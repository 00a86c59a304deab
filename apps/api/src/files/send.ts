import { pipeline } from "node:stream/promises";
import type { Request, Response } from "express";
import type { FileRow } from "@codeinterp/db";
import { normalizeError } from "@codeinterp/logger";
import { BlobNotFoundError } from "@codeinterp/workspace";
import type { ApiDeps } from "../deps";
import { notFound } from "../errors";

/**
 * A file's bytes as an attachment with its name (GET and HEAD, ETag = sha256), for the API-key route and
 * the signed-link route alike.
 */
export async function sendFileContent(
  deps: Pick<ApiDeps, "blobs" | "log">,
  req: Request,
  res: Response,
  file: FileRow,
): Promise<void> {
  let stream;
  try {
    stream = await deps.blobs.open(file.storageKey);
  } catch (err) {
    if (!(err instanceof BlobNotFoundError)) throw err;
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
