import path from "node:path";
import mime from "mime-types";
import pMap from "p-map";
import type { Db, FileRow } from "@codeinterp/db";
import { registerExecutionFiles } from "@codeinterp/db";
import type { NewFile } from "@codeinterp/db";
import type { FileStore } from "@codeinterp/files";
import {
  BlobStoreUnavailableError,
  BlobTooLargeError,
  FileReplacedError,
  FileSizeChangedError,
  NotARegularFileError,
  OutsideDirectoryError,
} from "@codeinterp/workspace";
import type { SkipReason, Skipped, SnapshotDiff } from "@codeinterp/workspace";

/** Where an execution's files are stored and whose they are: what capture and rich outputs both record. */
export interface ExecutionFileContext {
  db: Db;
  files: FileStore;
  userId: string;
  chatId: string;
  messageId: string;
  executionId: string;
}

export interface CaptureContext extends ExecutionFileContext {
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
 * Why a file could not be copied, as the result's `skippedFiles` says it. A file replaced, resized or found
 * outside the workspace since the snapshot is reported as "symlink", as before these had error classes of
 * their own (the swap of a file or parent for a link is how code provokes them).
 */
function skipReason(err: unknown): SkipReason {
  if (err instanceof BlobTooLargeError) return "too_large";
  if (
    err instanceof NotARegularFileError ||
    err instanceof FileReplacedError ||
    err instanceof FileSizeChangedError ||
    err instanceof OutsideDirectoryError
  )
    return "symlink";
  return "special";
}

/**
 * Streams each created or changed file into blob storage and registers it. The file is opened without
 * following symlinks and must still be the inode the snapshot saw, so code cannot swap in a link to a file
 * outside the workspace between the snapshot and the copy.
 */
export async function captureFiles(
  ctx: CaptureContext,
  diff: SnapshotDiff,
  onFile: (f: FileRow) => Promise<void>,
): Promise<CaptureResult> {
  const skipped: Skipped[] = [...diff.skipped];
  const entries = [...diff.created, ...diff.changed].sort((a, b) => (a.path < b.path ? -1 : 1));
  // Object storage that is away is not the file's fault: the whole capture fails (and is retried) rather
  // than reporting files as skipped, and what was stored meanwhile is discarded, so nothing is half-registered.
  const away: { err?: BlobStoreUnavailableError } = {};
  // Several copies at a time: their syscalls and fsyncs overlap in the thread pool (UV_THREADPOOL_SIZE).
  const stored = await pMap(
    entries,
    async (entry) => {
      if (away.err) return null;
      try {
        return await ctx.files.receiveFile(path.join(ctx.workspaceDir, entry.path), {
          maxBytes: ctx.maxFileBytes,
          expect: { ino: entry.ino },
          within: ctx.workspaceDir,
        });
      } catch (err) {
        if (err instanceof BlobStoreUnavailableError) away.err = err;
        else skipped.push({ path: entry.path, reason: skipReason(err) });
        return null;
      }
    },
    { concurrency: 8 },
  );
  if (away.err) {
    await ctx.files.discard(stored.filter((p) => p !== null));
    throw away.err;
  }
  const rows: Array<NewFile & { path: string }> = [];
  entries.forEach((entry, i) => {
    const blob = stored[i];
    if (!blob) return;
    const name = path.posix.basename(entry.path);
    rows.push({
      userId: ctx.userId,
      chatId: ctx.chatId,
      messageId: ctx.messageId,
      path: entry.path,
      name,
      size: blob.size,
      sha256: blob.sha256,
      storageKey: blob.key,
      mimeType: mimeTypeOf(name),
      source: "generated",
      derivedFromId: ctx.attachmentByPath.get(entry.path) ?? null,
    });
  });
  const puts = stored.filter((p) => p !== null);
  const committed = await ctx.files.commit(puts, () => registerExecutionFiles(ctx.db, ctx.executionId, rows), {
    insertWaitsForRemovals: true,
  });
  // The caller retries the whole capture on a transient failure (registration is idempotent), which waits again.
  if (!committed.kept) throw committed.error;
  const files = committed.value;
  // Issued together (one pipelined burst, still in order on the stream) rather than a round trip each.
  await Promise.all(files.map((f) => onFile(f)));
  return { files, skipped };
}
