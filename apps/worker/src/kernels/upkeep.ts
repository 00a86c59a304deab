import { normalizeError } from "@codeinterp/logger";
import { memoryReliefLockKey } from "@codeinterp/queue";
import { tryLock } from "./lock";
import type { BrokerParts } from "./parts";
import { sweepKernels } from "./sweeps";

/**
 * The broker's background work, on timers that never keep the process alive: the idle sweep, the beat that
 * keeps the leases of the kernels this worker holds alive (see live-kernels.ts), and memory relief. Returns
 * what stops them.
 */
export function startUpkeep(parts: BrokerParts): () => void {
  const { opts, log, live, pool, sessions } = parts;
  const sweeper = setInterval(
    () => {
      sweepKernels(parts).catch((err: unknown) => log.warn({ err: normalizeError(err) }, "kernel sweep failed"));
    },
    opts.sweepIntervalMs ?? Math.min(30_000, Math.max(1000, Math.floor(opts.idleTtlMs / 4))),
  );
  sweeper.unref();
  const beat = setInterval(() => {
    Promise.all([
      live.extend(pool.ids(), parts.poolLeaseMs),
      live.extend(sessions.inUse(), parts.kernels.leaseMs),
    ]).catch((err: unknown) => log.warn({ err: normalizeError(err).message }, "could not renew kernel leases"));
  }, parts.heartbeatMs);
  beat.unref();
  // One worker at a time relieves memory pressure (the others would evict a kernel each for the same excess).
  let relieving = false;
  const memoryWatch = setInterval(() => {
    const admission = opts.admission;
    if (!admission || relieving) return;
    relieving = true;
    void (async () => {
      // A local reading first: the Redis lock is taken only when there is something to relieve.
      if ((await admission.excessBytes()) === 0) return;
      const lock = await tryLock(parts.redis, memoryReliefLockKey(opts.cellPrefix ?? opts.prefix), parts.lockTtlMs);
      if (!lock) return;
      try {
        await parts.room.relieveMemory();
      } finally {
        await lock.release();
      }
    })()
      .catch((err: unknown) => log.warn({ err: normalizeError(err).message }, "memory relief failed"))
      .finally(() => (relieving = false));
  }, opts.memoryWatchMs ?? 1000);
  memoryWatch.unref();
  return () => {
    clearInterval(sweeper);
    clearInterval(beat);
    clearInterval(memoryWatch);
  };
}
