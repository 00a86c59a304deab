import { randomUUID } from "node:crypto";
import { LIVE_KERNEL_START_PREFIX, liveKernelsKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";

/**
 * The ceiling on live kernels for the whole deployment when MAX_LIVE_KERNELS is not set: as many kernels at
 * their memory cap as fit in the budget for all kernels, at least one.
 */
export function defaultMaxLiveKernels({
  kernelMemoryBytes,
  budgetBytes,
}: {
  kernelMemoryBytes: number;
  budgetBytes: number;
}): number {
  return Math.max(1, Math.floor(budgetBytes / kernelMemoryBytes));
}

/** A place under the ceiling taken before a kernel start; it becomes the kernel's lease once started. */
export interface Reservation {
  /** The started kernel holds the place from now on (until `ttlMs` unless extended). */
  bind(kernelId: string, ttlMs: number): Promise<void>;
  /** The start did not happen or failed: the place is free again. */
  drop(): Promise<void>;
}

// Take a place if fewer than ARGV[2] leases are unexpired. Leases past their deadline are removed first.
const RESERVE = `
redis.call("zremrangebyscore", KEYS[1], "-inf", ARGV[1])
if redis.call("zcard", KEYS[1]) < tonumber(ARGV[2]) then
  redis.call("zadd", KEYS[1], ARGV[3], ARGV[4])
  return 1
end
return 0`;

/**
 * Every live kernel of the deployment holds a lease in one Redis sorted set (member: kernel id, score: the
 * lease's deadline), and a kernel is started only after a place was reserved there. Hand-written rather than
 * redis-semaphore's Semaphore: a lease belongs to a kernel, not to a process that refreshes it (an idle
 * message kernel is nobody's), so each lease carries its own deadline and whoever changes the kernel's
 * state moves it. A worker that is SIGKILLed leaves leases that lapse by themselves: pool kernels within
 * three heartbeats (the same rule by which pool-owners shuts them down), kernels being started within
 * START_LEASE_MS, message kernels when their mapping would expire; shutting a kernel down drops its lease.
 */
export function createLiveKernels(opts: { redis: Redis; prefix: string; max: number }) {
  const { redis, max } = opts;
  const key = liveKernelsKey(opts.prefix);

  return {
    max,
    /** A place for a kernel about to be started by `workerId`, or null at the ceiling. */
    async reserve(startTtlMs: number, workerId: string): Promise<Reservation | null> {
      const id = `${LIVE_KERNEL_START_PREFIX}${workerId}:${randomUUID()}`;
      const now = Date.now();
      const ok = (await redis.eval(RESERVE, 1, key, String(now), String(max), String(now + startTtlMs), id)) === 1;
      if (!ok) return null;
      return {
        async bind(kernelId, ttlMs) {
          await redis
            .multi()
            .zrem(key, id)
            .zadd(key, Date.now() + ttlMs, kernelId)
            .exec();
        },
        async drop() {
          await redis.zrem(key, id);
        },
      };
    },
    /** Moves the deadline of leases that still exist (a dropped lease is not brought back). */
    async extend(kernelIds: readonly string[], ttlMs: number): Promise<void> {
      if (kernelIds.length === 0) return;
      const deadline = Date.now() + ttlMs;
      await redis.zadd(key, "XX", ...kernelIds.flatMap((id) => [deadline, id]));
    },
    async drop(kernelId: string): Promise<void> {
      await redis.zrem(key, kernelId);
    },
    /**
     * Frees the places reserved by workers that are gone (SIGKILLed between reserving and starting): found
     * by their heartbeat, like their pool kernels, instead of waiting out START_LEASE_MS. Returns how many.
     */
    async dropStartsOfGoneWorkers(isAlive: (workerId: string) => Promise<boolean>): Promise<number> {
      const starts = (await redis.zrangebyscore(key, Date.now(), "+inf")).filter((m) =>
        m.startsWith(LIVE_KERNEL_START_PREFIX),
      );
      const byWorker = new Map<string, string[]>();
      for (const m of starts) {
        const workerId = m.slice(LIVE_KERNEL_START_PREFIX.length, m.lastIndexOf(":"));
        byWorker.set(workerId, [...(byWorker.get(workerId) ?? []), m]);
      }
      let n = 0;
      for (const [workerId, members] of byWorker) {
        if (await isAlive(workerId)) continue;
        n += await redis.zrem(key, ...members);
      }
      return n;
    },
    /** Unexpired leases: the live kernels the ceiling counts. */
    async count(): Promise<number> {
      return redis.zcount(key, Date.now(), "+inf");
    },
  };
}

export type LiveKernels = ReturnType<typeof createLiveKernels>;
