import type { KernelGateway } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import type { GatewaySeen, Redis } from "@codeinterp/queue";
import { poolOwnersKey, removeHeartbeat, workerAliveKey, writeHeartbeat } from "@codeinterp/queue";
import { warnShutdownFailed } from "./shutdown-failed";

export interface PoolOwnersOptions {
  redis: Redis;
  prefix: string;
  /** Where the owners of this gateway's pool kernels are recorded (default `prefix`): a cell's own. */
  ownersPrefix?: string;
  workerId: string;
  gateway: Pick<KernelGateway, "shutdownKernel">;
  log: Logger;
  /** How often the worker says it is alive; it counts as gone after three missed beats. */
  heartbeatMs: number;
  /** Called for each pool kernel this module shut down (its place under the live-kernel ceiling is free). */
  onShutdown?: (kernelId: string) => Promise<void>;
  /** What the worker last saw of its gateway, carried by each beat (the API's /readyz reads it). */
  gatewaySeen?: () => GatewaySeen | null;
}

/**
 * Which worker owns each pre-started pool kernel, and which workers are alive. Pool kernels belong to no
 * message (message kernels are found through their mapping and idle sweep), so without this a worker that
 * is SIGKILLed or loses its machine would leave its pool running on the gateway for good. Only kernels
 * recorded here are ever shut down: a gateway shared with other software keeps its own kernels.
 */
export function createPoolOwners(opts: PoolOwnersOptions) {
  const { redis, prefix, workerId, log } = opts;
  const ownersKey = poolOwnersKey(opts.ownersPrefix ?? prefix);
  const aliveKey = (id: string) => workerAliveKey(prefix, id);
  let known = new Set<string>();
  // Kernels this worker's pool gave up (to a message, or because they died) whose record may still be in
  // Redis: its HDEL can fail while Redis is away. They are never shut down by the sweep, only forgotten:
  // a taken one is a message's kernel now, possibly running its code.
  const released = new Set<string>();

  const beat = () =>
    // A missed beat is written again on the next interval; three must be missed before peers act.
    writeHeartbeat(
      redis,
      prefix,
      { workerId, at: Date.now(), gateway: opts.gatewaySeen?.() ?? null },
      opts.heartbeatMs * 3,
    ).catch(() => undefined);
  void beat();
  const timer = setInterval(() => void beat(), opts.heartbeatMs);
  timer.unref();

  // Whoever removes the record shuts the kernel down: two workers never both do.
  // Shutdowns under way in this worker. A sweep that finds a kernel another caller here is shutting down
  // (its record is gone already) waits for it: a gone worker's pool kernel may have outlived its lease under
  // the ceiling, and a place reserved right after the sweep would otherwise start a kernel beside it.
  const underWay = new Set<Promise<void>>();
  const shutDown = async (kernelId: string): Promise<boolean> => {
    if ((await redis.hdel(ownersKey, kernelId)) !== 1) return false;
    const done = (async () => {
      // Its record is removed already: a kernel left running is the operator's to see, not a reason to stop.
      await opts.gateway.shutdownKernel(kernelId).catch(warnShutdownFailed(log, kernelId));
      // Its place under the ceiling lapses with its lease if this fails.
      await opts.onShutdown?.(kernelId).catch(() => undefined);
    })();
    underWay.add(done);
    await done.finally(() => underWay.delete(done));
    return true;
  };

  return {
    /** Whether a worker still beats (its key expires three beats after its last). */
    async isAlive(id: string): Promise<boolean> {
      return id === workerId || (await redis.exists(aliveKey(id))) === 1;
    },

    /** Says now that this worker is alive, with what it saw of its gateway. */
    beat(): void {
      void beat();
    },

    /** The pool's kernels now: new ones are recorded as this worker's, taken or stopped ones forgotten. */
    record(ids: readonly string[]): void {
      const next = new Set(ids);
      const added = ids.filter((id) => !known.has(id));
      const removed = [...known].filter((id) => !next.has(id));
      known = next;
      if (added.length === 0 && removed.length === 0) return;
      for (const id of removed) released.add(id);
      const tx = redis.multi();
      if (added.length > 0) tx.hset(ownersKey, ...added.flatMap((id) => [id, workerId]));
      if (removed.length > 0) tx.hdel(ownersKey, ...removed);
      // Commands on one connection run in order, so a later sweep never sees a kernel already taken.
      void tx.exec().then(
        () => {
          for (const id of removed) released.delete(id);
        },
        () => undefined, // kept in `released`: the sweep forgets them later
      );
    },

    /**
     * Shuts down pool kernels whose worker stopped beating, and this worker's own records that are not in
     * its pool (left by an earlier process with the same WORKER_ID). Returns how many.
     */
    async sweep(): Promise<number> {
      const owners = await redis.hgetall(ownersKey);
      const byWorker = new Map<string, string[]>();
      for (const [kernelId, owner] of Object.entries(owners))
        byWorker.set(owner, [...(byWorker.get(owner) ?? []), kernelId]);
      let n = 0;
      for (const [owner, kernelIds] of byWorker) {
        let orphans: string[];
        if (owner === workerId) {
          const stale = kernelIds.filter((id) => released.has(id));
          orphans = kernelIds.filter((id) => !known.has(id) && !released.has(id));
          if (stale.length > 0) {
            await redis.hdel(ownersKey, ...stale);
            for (const id of stale) released.delete(id);
          }
        } else {
          orphans = (await redis.exists(aliveKey(owner))) ? [] : kernelIds;
        }
        for (const kernelId of orphans) {
          if (await shutDown(kernelId)) n++;
        }
      }
      if (n) log.info({ kernels: n }, "shut down pool kernels of workers that are gone");
      await Promise.all(underWay);
      return n;
    },

    /**
     * This worker takes one of its pool kernels for a message: its record goes, and with it the right of any
     * other worker (evictOne, sweep) to shut it down. False when another worker removed the record first:
     * that kernel is being shut down and must not be given to a message. While Redis cannot answer, the
     * kernel is taken as before (no eviction can have claimed it then either).
     */
    async claim(kernelId: string): Promise<boolean> {
      try {
        return (await redis.hdel(ownersKey, kernelId)) === 1;
      } catch {
        return true;
      }
    },

    /**
     * Shuts down one pre-started kernel of any worker, to make room under the live-kernel ceiling for an
     * execution (a pool kernel's owner drops it from its pool when it finds it dead). Returns whether one was.
     */
    async evictOne(): Promise<boolean> {
      for (const kernelId of Object.keys(await redis.hgetall(ownersKey))) {
        if (await shutDown(kernelId)) return true;
      }
      return false;
    },

    async close(): Promise<void> {
      clearInterval(timer);
      // Stopping: the heartbeat key expires on its own.
      await removeHeartbeat(redis, prefix, workerId).catch(() => undefined);
    },
  };
}

export type PoolOwners = ReturnType<typeof createPoolOwners>;
