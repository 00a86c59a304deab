// Node-only helpers (file paths); the core in ./index.ts runs in browsers too.
import { openAsBlob } from "node:fs";
import path from "node:path";
import type { CodeinterpClient, UploadOptions } from "./client";
import type { FileInfo } from "./types";

/** Uploads a file from disk without reading it into memory first; the name defaults to its base name. */
export async function uploadPath(
  client: CodeinterpClient,
  filePath: string,
  opts: UploadOptions & { name?: string } = {},
): Promise<FileInfo> {
  const blob = await openAsBlob(filePath, opts.mimeType ? { type: opts.mimeType } : {});
  return client.uploadFile(blob, opts.name ?? path.basename(filePath), opts);
}

export * from "./index";
