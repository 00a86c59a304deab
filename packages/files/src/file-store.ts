import type { Readable } from "node:stream";
import { deleteFile, keepBlobs, removalsWaitedInStatement, removeBlobIfUnused } from "@codeinterp/db";
import type { Db, FileRow } from "@codeinterp/db";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import { BlobNotFoundError } from "@codeinterp/workspace";
import type { BlobStore, PutFileOptions, PutResult } from "@codeinterp/workspace";

/**
 * The blob lifecycle, the one rule every writer and deleter of file content follows. Blobs are shared by
 * content, so a deletion removes a blob only when no live file row references it, and that check races a
 * new row of the same content (see packages/db/src/repos/blob-locks.ts). A writer therefore:
 *   1. keeps a spare link to the bytes while it writes (`receive`, `receiveFile`, `share`);
 *   2. inserts its file rows (`commit`'s `insert`);
 *   3. once they are committed, waits out removals of those blobs under way;
 *   4. settles each put: puts the blob back from the spare if such a removal took it, drops the spare.
 * A put that never becomes a row is `discard`ed: spare dropped, blob removed if this put created it and
 * nothing uses it. A deleter marks the row deleted, then removes the blob if nothing uses it.
 */
export interface FileStore {
  /** For reads (paths, streams); writes go through the methods below. */
  readonly blobs: BlobStore;
  /** Step 1: streams content into the blob store, keeping a spare. The put must be committed or discarded. */
  receive(readable: Readable, opts?: { maxBytes?: number }): Promise<PutResult>;
  /** Step 1 for a file on disk (see `BlobStore.putFile` for its refusals). */
  receiveFile(file: string, opts?: Omit<PutFileOptions, "keepSpare">): Promise<PutResult>;
  /**
   * Step 1 for a new row referencing a blob already stored (a copy of another file). Null when the blob is
   * gone: the caller's row then references missing content, as it would have without this step.
   */
  share(key: string): Promise<PutResult | null>;
  /**
   * Steps 2-4: runs `insert` (which writes the rows referencing `puts`); if it fails, discards the puts and
   * rethrows. Once it has committed, waits out removals and settles the puts. The rows exist whatever the
   * wait does, so its failure is returned, not thrown: a caller that retries the whole step rethrows it (the
   * spares stay for the stale-temp sweep), one that cannot logs it. `insertWaitsForRemovals`: the insert
   * is registerExecutionFiles, whose statement waits out the removals itself when `removalsWaitedInStatement`
   * holds for these puts; the wait after the commit is then left out.
   */
  commit<T>(
    puts: readonly PutResult[],
    insert: () => Promise<T>,
    opts?: { insertWaitsForRemovals?: boolean },
  ): Promise<Committed<T>>;
  /** A put that will not become a row: drops its spare, and its blob if this put created it and nothing uses it. Never throws. */
  discard(puts: readonly PutResult[]): Promise<void>;
  /**
   * Deletes one of the user's files (null when it has none by that id), then its blob if nothing else uses
   * it. `deleted` runs in between, once the row is marked (say, to tell caches), whatever the removal does.
   */
  deleteFile(userId: string, id: string, deleted?: (file: FileRow) => Promise<void>): Promise<FileRow | null>;
}

export type Committed<T> = { value: T; kept: true; restored: number } | { value: T; kept: false; error: unknown };

export interface FileStoreOptions {
  db: Db;
  blobs: BlobStore;
  log?: Logger;
}

/** Removals in flight at once when discarding many puts (each is a short transaction holding a connection). */
const DISCARD_CONCURRENCY = 8;

export function createFileStore(opts: FileStoreOptions): FileStore {
  const { db, blobs, log } = opts;

  const removeIfUnused = (key: string) => removeBlobIfUnused(db, key, () => blobs.remove(key));

  async function discardOne(put: PutResult): Promise<void> {
    await blobs
      .settle(put, { restore: false })
      .catch((err: unknown) => log?.warn({ err: normalizeError(err) }, "could not drop a spare blob link"));
    // Another writer of the same content holds a spare of its own, so removing the blob here is safe.
    if (put.created)
      await removeIfUnused(put.key).catch((err: unknown) =>
        log?.warn({ err: normalizeError(err) }, "could not remove an unused blob"),
      );
  }

  async function discard(puts: readonly PutResult[]): Promise<void> {
    for (let i = 0; i < puts.length; i += DISCARD_CONCURRENCY)
      await Promise.all(puts.slice(i, i + DISCARD_CONCURRENCY).map(discardOne));
  }

  async function commit<T>(
    puts: readonly PutResult[],
    insert: () => Promise<T>,
    opts: { insertWaitsForRemovals?: boolean } = {},
  ): Promise<Committed<T>> {
    let value: T;
    try {
      value = await insert();
    } catch (err) {
      await discard(puts);
      throw err;
    }
    try {
      const waited = opts.insertWaitsForRemovals === true && removalsWaitedInStatement(puts.map((p) => p.key));
      const restored = await keepBlobs(db, puts, (p) => blobs.settle(p), { waited });
      if (restored > 0) log?.info({ restored }, "put back blobs a concurrent deletion removed");
      return { value, kept: true, restored };
    } catch (error) {
      return { value, kept: false, error };
    }
  }

  async function share(key: string): Promise<PutResult | null> {
    try {
      return await blobs.keepSpare(key);
    } catch (err) {
      if (err instanceof BlobNotFoundError) return null;
      throw err;
    }
  }

  return {
    blobs,
    receive: (readable, o = {}) => blobs.put(readable, { ...o, keepSpare: true }),
    receiveFile: (file, o = {}) => blobs.putFile(file, { ...o, keepSpare: true }),
    share,
    commit,
    discard,
    async deleteFile(userId, id, deleted) {
      const file = await deleteFile(db, userId, id);
      if (!file) return null;
      await deleted?.(file);
      // Content-addressed: the blob may be shared with other files (other users' included).
      await removeIfUnused(file.storageKey);
      return file;
    },
  };
}
