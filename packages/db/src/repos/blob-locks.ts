import type { Db } from "../client";
import { query } from "../sql";

/**
 * Blobs are shared by content, so deleting a file removes its blob only when no live file references it.
 * Without a lock that check races a new file of the same content: the deleter counts no reference, the
 * writer's row lands, the deleter unlinks, and the new file has no content. So the count and the unlink run
 * under an exclusive advisory lock on the blob's key, and a writer, once its row is committed, takes and
 * drops a shared lock on the key: a removal that counted before that commit has finished by then (and the
 * writer puts the blob back from its spare copy), and any later one sees the row. A registration of a few
 * blobs takes those shared locks in the statement that writes its rows instead (removalsWaitedInStatement).
 */
const LOCKS_PER_STATEMENT = 32;
const LOCK_ID = (param: string) => `('x' || substr(${param}, 1, 16))::bit(64)::bigint`;

/** Removes the blob with `remove` unless a live file references it; returns whether it did. */
export async function removeBlobIfUnused(db: Db, storageKey: string, remove: () => Promise<unknown>): Promise<boolean> {
  // The timeout covers waiting behind another deletion of the same blob, not just these statements.
  return db.$transaction(
    async (tx) => {
      await tx.$queryRawUnsafe(`SELECT 1 FROM pg_advisory_xact_lock(${LOCK_ID("$1::text")})`, storageKey);
      if ((await tx.file.count({ where: { storageKey, deletedAt: null }, take: 1 })) > 0) return false;
      await remove();
      return true;
    },
    { timeout: 30_000 },
  );
}

/**
 * Whether a registration of files with these blobs waits out their removals in its own statement
 * (registerExecutionFiles): few enough keys for one statement's shared locks. Taken before the rows commit and
 * released as they commit, those locks order the writer with a removal exactly as the wait after the commit
 * does: a removal that holds its lock first finishes (its count could not see the uncommitted rows) before
 * the rows commit, so the writer then puts the blob back; one that comes later waits for the commit and counts
 * the rows. One round trip fewer per capture.
 */
export function removalsWaitedInStatement(storageKeys: readonly string[]): boolean {
  return new Set(storageKeys).size <= LOCKS_PER_STATEMENT;
}

/** The SQL that takes the shared locks on the keys in `keysParam` (a text[] parameter), as a count. */
export function blobBarrierSql(keysParam: string): string {
  // Each key once, in one order for every writer, as the wait after the commit takes them.
  return `(SELECT count(pg_advisory_xact_lock_shared(${LOCK_ID("k")})) FROM (SELECT DISTINCT k FROM unnest(${keysParam}) AS k ORDER BY k) AS keys)`;
}

/** Returns once no removal of these blobs that started before now is still under way. */
async function waitForBlobRemovals(db: Db, storageKeys: readonly string[]): Promise<void> {
  const keys = [...new Set(storageKeys)].sort();
  // Each statement is its own transaction: the shared locks are released as it ends. Small chunks keep
  // the shared lock table (64 entries per connection by default) from filling up under big captures.
  for (let i = 0; i < keys.length; i += LOCKS_PER_STATEMENT) {
    await query(db, "blob_barrier", `SELECT ${blobBarrierSql("$1::text[]")}`, [keys.slice(i, i + LOCKS_PER_STATEMENT)]);
  }
}

/**
 * For a writer whose file rows referencing these blobs are committed: waits out removals under way (unless
 * the statement that wrote the rows did: `waited`), then `settle`s each put (puts back a blob such a removal
 * took, drops the spare copy). Returns how many blobs had to be put back. If the wait fails, nothing is
 * settled: a removal may still be under way, so the spares stay (the blob store's stale-temp sweep removes
 * them) and the error is the caller's.
 */
export async function keepBlobs<P extends { key: string }>(
  db: Db,
  puts: readonly P[],
  settle: (put: P) => Promise<boolean>,
  opts: { waited?: boolean } = {},
): Promise<number> {
  if (!opts.waited)
    await waitForBlobRemovals(
      db,
      puts.map((p) => p.key),
    );
  let restored = 0;
  for (let i = 0; i < puts.length; i += 16) {
    const done = await Promise.all(puts.slice(i, i + 16).map((p) => settle(p).catch(() => false)));
    restored += done.filter(Boolean).length;
  }
  return restored;
}
