import path from "node:path";
import mime from "mime-types";
import type { Db, FileRow } from "@codeinterp/db";
import { registerExecutionFile } from "@codeinterp/db";
import type { BlobStore, Skipped, SnapshotDiff } from "@codeinterp/workspace";

export interface CaptureContext {
  db: Db;
  blobs: BlobStore;
  userId: string;
  chatId: string;
  messageId: string;
  executionId: string;
  workspaceDir: string;
  /** Attachment file id by its name in the workspace, so a changed attachment keeps its lineage. */
  attachmentByPath: Map<string, string>;
  maxFileBytes: number;
}

export interface CaptureResult {
  files: FileRow[];
  skipped: Skipped[];
}

export function mimeTypeOf(name: string): string {
  return mime.lookup(name) || "application/octet-stream";
}

/**
 * Streams each created or changed file into blob storage and registers it. The file is opened without
 * following symlinks and must still be the inode the snapshot saw, so code cannot swap in a link to a file
 * outside the workspace between the snapshot and the copy.
 */
export async function captureFiles(ctx: CaptureContext, diff: SnapshotDiff, onFile: (f: FileRow) => Promise<void>): Promise<CaptureResult> {
  const files: FileRow[] = [];
  const skipped: Skipped[] = [...diff.skipped];
  for (const entry of [...diff.created, ...diff.changed].sort((a, b) => (a.path < b.path ? -1 : 1))) {
    let stored;
    try {
      stored = await ctx.blobs.putFile(path.join(ctx.workspaceDir, entry.path), {
        maxBytes: ctx.maxFileBytes,
        expect: { ino: entry.ino },
        within: ctx.workspaceDir,
      });
    } catch (err) {
      const name = (err as Error).name;
      skipped.push({ path: entry.path, reason: name === "BlobTooLargeError" ? "too_large" : name === "NotARegularFileError" ? "symlink" : "special" });
      continue;
    }
    const name = path.posix.basename(entry.path);
    const { file } = await registerExecutionFile(ctx.db, {
      userId: ctx.userId,
      chatId: ctx.chatId,
      messageId: ctx.messageId,
      executionId: ctx.executionId,
      path: entry.path,
      name,
      size: stored.size,
      sha256: stored.sha256,
      storageKey: stored.key,
      mimeType: mimeTypeOf(name),
      source: "generated",
      derivedFromId: ctx.attachmentByPath.get(entry.path) ?? null,
    });
    files.push(file);
    await onFile(file);
  }
  return { files, skipped };
}
