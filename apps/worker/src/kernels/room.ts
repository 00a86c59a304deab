import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { Redis } from "@codeinterp/queue";
import type { LiveKernels, Reservation } from "./live-kernels";
import type { MemoryAdmission } from "./memory-admission";
import { tryLock } from "./lock";
import type { KernelMappings } from "./mappings";
import type { PoolOwners } from "./pool-owners";

/** A place reserved for a kernel start that never reported back (its worker died) lapses after this. */
const START_LEASE_MS = 2 * 60_000;
/** How long an execution that must start a kernel waits between looks for room, when it waits in place. */
const ROOM_POLL_MS = 250;
/** How many of the least recently used messages eviction looks at (busy ones are skipped). */
const EVICTION_CANDIDATES = 100;

/** At the ceiling, a pool refill may take the place of a message kernel idle this long. */
const POOL_EVICTION_IDLE_MS = 60_000;
/** Most kernels one pass of memory relief shuts down before it looks again. */
const RELIEF_MAX_EVICTIONS = 16;

export class KernelCapacityError extends Error {
  override name = "KernelCapacityError";
}

export interface RoomOptions {
  redis: Redis;
  live: LiveKernels;
  mappings: KernelMappings;
  owners: PoolOwners;
  log: Logger;
  idleTtlMs: number;
  lockTtlMs: number;
  lockWaitMs: number;
  lockKey: (messageKey: string) => string;
  /** Shuts a message's kernel down and forgets it (the broker's own bookkeeping included). */
  shutDown: (messageKey: string, kernelId: string) => Promise<void>;
  onEvicted?: (reason: EvictionReason) => void;
  /** An acquire found no room and waits in place for some (counted with the jobs that step aside). */
  onWaitForRoom?: (messageKey: string) => void;
  /** This worker: its reservations are freed by others when it stops beating. */
  workerId: string;
  /** How long a message kernel must have been idle before a pool refill may take its place at the ceiling. */
  poolEvictionIdleMs?: number;
  /** Admission by memory in use (null: the gateway's kernels' memory cannot be read from here). */
  admission?: MemoryAdmission | null;
  /**
   * A message kernel used this recently is not evicted for a new message: the conversation is in
   * progress, and its next execution would find its variables gone. The new message waits instead.
   */
  protectMs?: number;
}

export type EvictionReason = "ceiling" | "memory";

/**
 * The live-kernel ceiling's rules for making room: a new kernel starts only in a reserved place; at the
 * ceiling the least recently used idle message kernel is shut down for it (its next execution is told its
 * variables were reset), else a pre-started pool kernel of any worker. A pool refill takes only a free place
 * or that of a message kernel idle for a minute, never a busy or recently used one, nor another pool kernel.
 */
export function createRoom(opts: RoomOptions) {
  const { live, mappings, owners, log } = opts;

  const protectMs = opts.protectMs ?? 0;

  /**
   * A place under the ceiling, once pool kernels of workers that are gone have given theirs back; null at
   * the ceiling or when the kernels' memory in use leaves no room for one more.
   */
  async function reservePlace(): Promise<Reservation | null> {
    const admitted = opts.admission ? await opts.admission.admit() : () => undefined;
    if (!admitted) return null;
    const place = await reserveCounted().catch((err: unknown) => {
      admitted();
      throw err;
    });
    if (!place) {
      admitted();
      return null;
    }
    // Started or given up: from then on the kernel's memory shows in the reading itself.
    return {
      bind: (kernelId, ttlMs) => place.bind(kernelId, ttlMs).finally(admitted),
      drop: () => place.drop().finally(admitted),
    };
  }

  /** A place under the count ceiling, once pool kernels of workers that are gone have given theirs back. */
  async function reserveCounted(): Promise<Reservation | null> {
    await owners
      .sweep()
      .catch((err: unknown) => log.warn({ err: normalizeError(err).message }, "pool-owner sweep failed"));
    await live
      .dropStartsOfGoneWorkers((id) => owners.isAlive(id))
      .catch((err: unknown) =>
        log.warn({ err: normalizeError(err).message }, "sweep of gone workers' reservations failed"),
      );
    return live.reserve(START_LEASE_MS, opts.workerId);
  }

  /**
   * Shuts down the least recently used message kernel nobody is using, never the kernel of `exceptKey` (the
   * caller's own turn) nor one used within `minIdleMs`; false when there is none.
   */
  async function evictMessageKernel(exceptKey: string, minIdleMs: number, reason: EvictionReason): Promise<boolean> {
    for (const messageKey of await mappings.leastRecentlyUsed(EVICTION_CANDIDATES)) {
      if (messageKey === exceptKey) continue;
      // A message whose lock is taken is busy (or being evicted by someone else): not idle.
      const lock = await tryLock(opts.redis, opts.lockKey(messageKey), opts.lockTtlMs);
      if (!lock) continue;
      try {
        const mapping = await mappings.read(messageKey);
        if (!mapping) {
          await mappings.dropIndex(messageKey);
          continue;
        }
        // Least recently used first: if this one is too recent, so are the rest.
        if (mapping.lastUsed > Date.now() - minIdleMs) return false;
        // The note is owed only while the kernel would otherwise still be alive (before its idle TTL).
        await mappings.markEvicted(messageKey, mapping.lastUsed + opts.idleTtlMs - Date.now());
        await opts.shutDown(messageKey, mapping.kernelId);
        log.info(
          { messageKey, kernelId: mapping.kernelId, reason, idleMs: Date.now() - mapping.lastUsed },
          reason === "memory"
            ? "shut down the least recently used idle kernel: kernels' memory in use is over the high watermark"
            : "shut down the least recently used idle kernel to make room for a new one",
        );
        opts.onEvicted?.(reason);
        return true;
      } finally {
        await lock.release();
      }
    }
    return false;
  }

  /** For a new kernel: an idle message kernel outside its protection window, else a pre-started pool kernel. */
  async function evictOne(exceptKey: string): Promise<boolean> {
    return (await evictMessageKernel(exceptKey, protectMs, "ceiling")) || owners.evictOne();
  }

  /** A place for a kernel start, shutting down an idle kernel if the ceiling is reached; null if all are busy. */
  async function reserve(exceptKey: string): Promise<Reservation | null> {
    for (let i = 0; i < 3; i++) {
      const place = await reservePlace();
      if (place) return place;
      if (!(await evictOne(exceptKey))) return null;
    }
    return null;
  }

  return {
    /**
     * For the pool: a place if one is free, else the place of a message kernel idle for POOL_EVICTION_IDLE_MS
     * (the next new message would evict it anyway; evicting it now lets that message start on a preloaded
     * kernel). Never a busy kernel, a recently used one, or another pool kernel.
     */
    async reservePoolPlace(): Promise<Reservation | null> {
      const place = await reservePlace();
      const idleMs = Math.max(protectMs, opts.poolEvictionIdleMs ?? POOL_EVICTION_IDLE_MS);
      if (place || !(await evictMessageKernel("", idleMs, "ceiling"))) return place;
      return reservePlace();
    },
    /**
     * Above the high watermark: pool kernels first (they hold nobody's state), then idle message kernels,
     * least recently used first and however recently, until the kernels' use is back under the low
     * watermark. A busy kernel is never touched: it is the one an out-of-memory kill in the kernels' parent
     * cgroup would otherwise be likely to hit. Returns how many kernels were shut down.
     */
    async relieveMemory(): Promise<number> {
      if (!opts.admission) return 0;
      let evicted = 0;
      while (evicted < RELIEF_MAX_EVICTIONS && (await opts.admission.excessBytes(evicted > 0)) > 0) {
        if (await owners.evictOne()) opts.onEvicted?.("memory");
        else if (!(await evictMessageKernel("", 0, "memory"))) break;
        evicted++;
      }
      return evicted;
    },
    reserve,
    /** Waits in place for room (a turn whose kernel turned out gone after makeRoom said it needed none). */
    async waitFor(exceptKey: string, signal: AbortSignal | undefined): Promise<Reservation> {
      const until = Date.now() + opts.lockWaitMs;
      for (let waited = false; ; waited = true) {
        const place = await reserve(exceptKey);
        if (place) return place;
        if (!waited) opts.onWaitForRoom?.(exceptKey);
        if (Date.now() > until)
          throw new KernelCapacityError(
            `no room for a kernel under the ceiling of ${live.max} within ${opts.lockWaitMs} ms`,
          );
        await sleep(ROOM_POLL_MS, undefined, signal ? { signal } : {});
      }
    },
  };
}
