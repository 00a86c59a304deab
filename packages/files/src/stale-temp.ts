import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { BlobStore } from "@codeinterp/workspace";

/** A temp file in a blob store untouched this long (a partial write, a spare) was left by a process that died mid-put. */
export const STALE_TEMP_MS = 24 * 3600_000;

/**
 * Sweeps a process's own blob store of stale temp files now and every `everyMs` (6 h). The workers' store is
 * swept by their maintenance job; the API's cache of a bucket (DATA_DIR/blob-cache/api, its own disk in a pod)
 * has no such job, and an API stopped mid-upload leaves its spare link there.
 */
export function startStaleTempSweep(
  blobs: Pick<BlobStore, "removeStaleTemp">,
  log: Logger,
  opts: { everyMs?: number; olderThanMs?: number } = {},
): { stop(): void } {
  const sweep = () => {
    blobs.removeStaleTemp(opts.olderThanMs ?? STALE_TEMP_MS).then(
      (removed) => {
        if (removed) log.info({ removed }, "removed stale temp files from the blob store");
      },
      (err: unknown) => log.warn({ err: normalizeError(err).message }, "could not sweep the blob store's temp files"),
    );
  };
  sweep();
  const timer = setInterval(sweep, opts.everyMs ?? 6 * 3600_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
