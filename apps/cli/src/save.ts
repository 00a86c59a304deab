import { createWriteStream } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { CodeinterpClient } from "@codeinterp/client";

export class UnsafePathError extends Error {
  override name = "UnsafePathError";
}

/**
 * Where a generated file's path (relative to /mnt/data) lands under `outDir`; refuses absolute paths,
 * `..` escapes, empty names and NUL bytes. Windows-style separators count as separators.
 */
export function resolveInside(outDir: string, relPath: string): string {
  const root = path.resolve(outDir);
  const cleaned = relPath.replace(/\\/g, "/");
  if (!cleaned || cleaned.includes("\0") || path.posix.isAbsolute(cleaned) || /^[A-Za-z]:/.test(cleaned)) {
    throw new UnsafePathError(`refusing to write ${JSON.stringify(relPath)}: not a relative path`);
  }
  const parts = cleaned.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.includes("..")) {
    throw new UnsafePathError(`refusing to write ${JSON.stringify(relPath)}: it escapes the output directory`);
  }
  const target = path.resolve(root, ...parts);
  const rel = path.relative(root, target);
  if (!rel || rel.startsWith("..") || path.isAbsolute(rel)) {
    throw new UnsafePathError(`refusing to write ${JSON.stringify(relPath)}: it escapes the output directory`);
  }
  return target;
}

/** Streams one file's content to `target` (through a temporary name, so a failed download leaves nothing). */
export async function downloadTo(client: CodeinterpClient, fileId: string, target: string): Promise<number> {
  await mkdir(path.dirname(target), { recursive: true });
  const dl = await client.downloadFileStream(fileId);
  const tmp = `${target}.part-${process.pid}`;
  let bytes = 0;
  try {
    const body = Readable.fromWeb(dl.body);
    body.on("data", (c: Buffer) => (bytes += c.length));
    await pipeline(body, createWriteStream(tmp));
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return bytes;
}
