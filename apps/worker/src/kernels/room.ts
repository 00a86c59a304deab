import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { Redis } from "@codeinterp/queue";
import type { LiveKernels, Reservation } from "./live-kernels";
import { tryLock } from "./lock";
import type { KernelMappings } from "./mappings";
import type { PoolOwners } from "./pool-owners";

/** A place reserved for a kernel start that never reported back (its worker died) lapses after this. */
const START_LEASE_MS = 2 * 60_000;
/** How long an execution that must start a kernel waits between looks for room, when it waits in place. */
const ROOM_POLL_MS = 250;
/** How many of the least recently used messages eviction looks at (busy ones are skipped). */
const EVICTION_CANDIDATES = 100;

/** No room under the live-kernel ceiling within the wait allowed (every kernel stayed busy). */
const POOL_EVICTION_IDLE_MS = 60_000;

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
  onEvicted?: () => void;
  /** This worker: its reservations are freed by others when it stops beating. */
  workerId: string;
  /** How long a message kernel must have been idle before a pool refill may take its place at the ceiling. */
  poolEvictionIdleMs?: number;
}

/**
 * The live-kernel ceiling's rules for making room: a new kernel starts only in a reserved place; at the
 * ceiling the least recently used idle message kernel is shut down for it (its next execution is told its
 * variables were reset), else a pre-started pool kernel of any worker. A pool refill takes only a free place
 * or that of a message kernel idle for a minute, never a busy or recently used one, nor another pool kernel.
 */
export function createRoom(opts: RoomOptions) {
  const { live, mappings, owners, log } = opts;

  /** A place under the ceiling, once pool kernels of workers that are gone have given theirs back. */
  async function reservePlace(): Promise<Reservation | null> {
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
   * Shuts down one kernel nobody is using; never the kernel of `exceptKey` (the caller's own turn). With
   * `idleForMs`, only a message kernel idle at least that long (and never a pool kernel).
   */
  async function evictOne(exceptKey: string, idleForMs?: number): Promise<boolean> {
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
        if (idleForMs !== undefined && mapping.lastUsed > Date.now() - idleForMs) return false;
        // The note is owed only while the kernel would otherwise still be alive (before its idle TTL).
        await mappings.markEvicted(messageKey, mapping.lastUsed + opts.idleTtlMs - Date.now());
        await opts.shutDown(messageKey, mapping.kernelId);
        log.info(
          { messageKey, kernelId: mapping.kernelId },
          "shut down the least recently used idle kernel to stay under the live-kernel ceiling",
        );
        opts.onEvicted?.();
        return true;
      } finally {
        await lock.release();
      }
    }
    return idleForMs === undefined ? owners.evictOne() : false;
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
      if (place || !(await evictOne("", opts.poolEvictionIdleMs ?? POOL_EVICTION_IDLE_MS))) return place;
      return reservePlace();
    },
    reserve,
    /** Waits in place for room (a turn whose kernel turned out gone after makeRoom said it needed none). */
    async waitFor(exceptKey: string, signal: AbortSignal | undefined): Promise<Reservation> {
      const until = Date.now() + opts.lockWaitMs;
      for (;;) {
        const place = await reserve(exceptKey);
        if (place) return place;
        if (Date.now() > until)
          throw new KernelCapacityError(
            `no room for a kernel under the ceiling of ${live.max} within ${opts.lockWaitMs} ms`,
          );
        await sleep(ROOM_POLL_MS, undefined, signal ? { signal } : {});
      }
    },
  };
}
