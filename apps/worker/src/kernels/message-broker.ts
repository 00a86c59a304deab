import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { Redis } from "@codeinterp/queue";
import { kernelResetKey, kernelRetireKey } from "@codeinterp/queue";
import type { AcquireRequest, KernelBroker, KernelLease } from "./broker";
import type { HeldLock } from "./lock";
import { acquireLock, tryLock } from "./lock";
import { KernelPool } from "./pool";
import { createPoolOwners } from "./pool-owners";
import type { WorkspaceLayout } from "../workspace-layout";

export interface MessageBrokerOptions {
  gateway: KernelGateway;
  redis: Redis;
  prefix: string;
  workerId: string;
  log: Logger;
  poolSize: number;
  layout: WorkspaceLayout;
  idleTtlMs: number;
  /** A message lock not renewed this long (its worker died) is free again. */
  lockTtlMs?: number;
  /** Longest an execution waits for the previous one of its message. */
  lockWaitMs?: number;
  sweepIntervalMs?: number;
  /** How often this worker records that it is alive (its pool kernels are swept after three missed beats). */
  heartbeatMs?: number;
}

interface Mapping {
  kernelId: string;
  lastUsed: number;
}

/** The Redis lock a message's executions (and the removal of its workspace) take turns on. */
export const messageLockKey = (prefix: string, messageKey: string) => `${prefix}:kernel:lock:${messageKey}`;

/** A kernel released this recently by this worker is reused without asking the gateway whether it exists. */
const RECENT_MS = 3000;

export function isLive(session: KernelSession): boolean {
  return !session.isDead && session.connection.connectionStatus === "connected" && session.status !== "dead";
}

/**
 * Each (user, message) has at most one kernel, recorded in Redis so any worker can attach to it (the kernel
 * lives on the gateway, not in a worker). Executions of one message are serialised by a Redis lock held
 * from acquire to release. Kernels idle longer than the TTL are shut down by whichever worker sweeps first.
 */
export function createMessageKernelBroker(opts: MessageBrokerOptions): KernelBroker & { pool: KernelPool; sweep(): Promise<number> } {
  const { gateway, redis, prefix, log } = opts;
  const mapKey = (k: string) => `${prefix}:kernel:msg:${k}`;
  const lockKey = (k: string) => messageLockKey(prefix, k);
  const idleSet = `${prefix}:kernel:idle`;
  const locks = new Map<string, HeldLock>();
  // The mapping as read together with a lock taken by tryMessageLock.
  const mappingReadWith = new WeakMap<HeldLock, Promise<Mapping | null | undefined>>();
  // When this worker last released each message kernel it holds a session to.
  const lastReleased = new Map<string, number>();
  // Sessions this worker already has a websocket to, so reusing a kernel costs no reconnect.
  const sessions = new Map<string, KernelSession>();
  const owners = createPoolOwners({ redis, prefix, workerId: opts.workerId, gateway, log, heartbeatMs: opts.heartbeatMs ?? 10_000 });
  const pool = new KernelPool(gateway, opts.poolSize, log, () => opts.layout.newPoolSlot(), (ids) => owners.record(ids));
  pool.refill();

  async function readMapping(messageKey: string): Promise<Mapping | null> {
    const raw = await redis.get(mapKey(messageKey));
    if (!raw) return null;
    try {
      return JSON.parse(raw) as Mapping;
    } catch {
      return null;
    }
  }

  async function attach(kernelId: string): Promise<{ session: KernelSession; stillThere?: Promise<boolean> } | null> {
    const known = sessions.get(kernelId);
    // A kernel deleted on the server, or a restarted server, leaves a cached session that is reconnecting
    // to nothing: only a live connection is reused as it is.
    // One REST round trip (~2 ms) also catches a kernel deleted a moment ago whose websocket has not
    // noticed yet (sending code to it would wait for the whole timeout); the caller awaits it only before
    // sending code, so it overlaps preparing the workspace.
    // A kernel this worker finished using moments ago skips the check: it cannot have idled into a culler,
    // and a deletion in that window is still caught by the watchdog during the run.
    if (known && isLive(known)) {
      const idleMs = Date.now() - (lastReleased.get(kernelId) ?? 0);
      return idleMs < RECENT_MS ? { session: known } : { session: known, stillThere: gateway.hasKernel(kernelId).catch(() => false) };
    }
    known?.dispose();
    sessions.delete(kernelId);
    lastReleased.delete(kernelId);
    try {
      const s = await gateway.connectKernel(kernelId);
      sessions.set(kernelId, s);
      return { session: s };
    } catch (err) {
      log.info({ kernelId, err: normalizeError(err).message }, "message kernel is gone; starting another");
      return null;
    }
  }

  /** The message's kernel, used at `lastUsed` (the idle sweep goes by it). */
  async function recordMapping(messageKey: string, kernelId: string, lastUsed: number) {
    await redis
      .multi()
      .set(mapKey(messageKey), JSON.stringify({ kernelId, lastUsed } satisfies Mapping), "PX", opts.idleTtlMs * 2)
      .zadd(idleSet, lastUsed, messageKey)
      .exec();
  }

  async function forget(messageKey: string, kernelId: string, shutdown: boolean) {
    sessions.get(kernelId)?.dispose();
    sessions.delete(kernelId);
    lastReleased.delete(kernelId);
    await redis.multi().del(mapKey(messageKey)).zrem(idleSet, messageKey).exec();
    if (shutdown) await gateway.shutdownKernel(kernelId).catch(() => undefined);
  }

  const broker = {
    pool,
    async acquire(req: AcquireRequest): Promise<KernelLease> {
      const started = Date.now();
      // The mapping is read in the same round trip as the lock's SET NX (Redis runs them in order): when the
      // lock was free, that read already happened under it; otherwise it is read again once the lock is ours.
      // (acquireLock sends its first SET before it yields, so the GET below goes after it.)
      const locking = req.heldLock
        ? Promise.resolve(req.heldLock)
        : acquireLock(redis, lockKey(req.messageKey), {
            ttlMs: opts.lockTtlMs ?? 30_000,
            waitMs: opts.lockWaitMs ?? 15 * 60_000,
            ...(req.signal ? { signal: req.signal } : {}),
          });
      // A lock taken by tryMessageLock read the mapping in its round trip already (valid: held since).
      const early = (req.heldLock && mappingReadWith.get(req.heldLock)) || readMapping(req.messageKey).catch(() => undefined);
      const lock = await locking;
      if (!lock.firstTry) log.debug({ messageKey: req.messageKey, waitedMs: Date.now() - started }, "waited for the message's lock");
      let fresh: KernelSession | null = null;
      try {
        const earlyMapping = lock.firstTry ? await early : undefined;
        const mapping = earlyMapping === undefined ? await readMapping(req.messageKey) : earlyMapping;
        // A restart asked for through the API (the Jupyter surface) is consumed here: the execution then
        // starts on a fresh kernel (a message without a kernel gets a fresh one anyway).
        const resetAsked = (await redis.del(kernelResetKey(prefix, req.messageKey))) > 0;
        if (mapping && resetAsked) {
          await forget(req.messageKey, mapping.kernelId, true);
        } else if (mapping) {
          const attached = await attach(mapping.kernelId);
          if (attached) {
            locks.set(req.messageKey, lock);
            return { ...attached, pooled: false, reused: true, acquireMs: Date.now() - started };
          }
          await forget(req.messageKey, mapping.kernelId, true);
        }
        let session: KernelSession | null = null;
        const fromPool = pool.take();
        if (fromPool) {
          if (await opts.layout.adopt(fromPool.slot, req.workspaceDir)) session = fresh = fromPool.session;
          else pool.putBack(fromPool);
        }
        const pooled = session !== null;
        // After an adoption the directory exists already (and keeps its owner); otherwise create it now.
        await opts.layout.ensureWorkspace(req.workspaceDir, req.uid);
        if (!session) session = fresh = await gateway.startKernel({ path: req.kernelPath });
        sessions.set(session.id, session);
        // Not the message's kernel yet: `bind` records it once it is set up to run the message's code.
        locks.set(req.messageKey, lock);
        return { session, pooled, reused: false, acquireMs: Date.now() - started };
      } catch (err) {
        // A kernel started or adopted for this call and not handed out would otherwise be leaked.
        if (fresh) {
          sessions.delete(fresh.id);
          await fresh.shutdown().catch(() => undefined);
        }
        await lock.release();
        throw err;
      }
    },

    async bind(req: AcquireRequest, lease: KernelLease) {
      await recordMapping(req.messageKey, lease.session.id, Date.now());
    },

    async release(req: AcquireRequest, lease: KernelLease, { discard }: { discard: boolean }) {
      const lock = locks.get(req.messageKey);
      locks.delete(req.messageKey);
      try {
        if (discard || lease.session.isDead) {
          await forget(req.messageKey, lease.session.id, true);
        } else {
          const now = Date.now();
          lastReleased.set(lease.session.id, now);
          await recordMapping(req.messageKey, lease.session.id, now);
        }
      } finally {
        await lock?.release();
      }
    },

    kernelExists: (kernelId: string) => gateway.hasKernel(kernelId),

    async tryMessageLock(messageKey: string) {
      const locking = tryLock(redis, lockKey(messageKey), opts.lockTtlMs ?? 30_000);
      // Sent right behind the SET NX: if the lock is ours, this read happened under it.
      const mapping = readMapping(messageKey).catch(() => undefined);
      const lock = await locking;
      if (lock) mappingReadWith.set(lock, mapping);
      return lock;
    },

    async evict(req: AcquireRequest, kernelId: string) {
      // A lock the caller already holds for this message stays the caller's to release.
      const lock = req.heldLock ?? (await acquireLock(redis, lockKey(req.messageKey), { ttlMs: opts.lockTtlMs ?? 30_000, waitMs: opts.lockWaitMs ?? 15 * 60_000 }));
      try {
        const mapping = await readMapping(req.messageKey);
        if (mapping?.kernelId === kernelId) await forget(req.messageKey, kernelId, true);
        else await gateway.shutdownKernel(kernelId).catch(() => undefined);
      } finally {
        if (!req.heldLock) await lock.release();
      }
    },

    /** Shuts down message kernels idle past the TTL, and pool kernels of workers that are gone; returns how many. */
    async sweep(): Promise<number> {
      const orphans = await owners.sweep();
      const stale = await redis.zrangebyscore(idleSet, 0, Date.now() - opts.idleTtlMs, "LIMIT", 0, 100);
      let n = 0;
      for (const messageKey of stale) {
        const lock = await tryLock(redis, lockKey(messageKey), 30_000);
        if (!lock) continue;
        try {
          const mapping = await readMapping(messageKey);
          if (!mapping) {
            await redis.zrem(idleSet, messageKey);
          } else if (mapping.lastUsed <= Date.now() - opts.idleTtlMs) {
            await forget(messageKey, mapping.kernelId, true);
            n++;
          }
        } finally {
          await lock.release();
        }
      }
      if (n) log.info({ kernels: n }, "shut down idle message kernels");
      return n + orphans + (await sweepRetired());
    },

    async close() {
      clearInterval(sweeper);
      await pool.close();
      await owners.close();
      // Message kernels stay on the gateway for the next worker; only this worker's websockets close.
      for (const s of sessions.values()) s.dispose();
      sessions.clear();
    },
  };

  /** Kernels of messages the API retired (a deleted Jupyter-surface kernel) go now, not after the idle TTL. */
  async function sweepRetired(): Promise<number> {
    const retired = await redis.spop(kernelRetireKey(prefix), 100);
    let n = 0;
    for (const messageKey of retired) {
      const lock = await tryLock(redis, lockKey(messageKey), 30_000);
      if (!lock) {
        // An execution still holds it: next sweep.
        await redis.sadd(kernelRetireKey(prefix), messageKey);
        continue;
      }
      try {
        const mapping = await readMapping(messageKey);
        if (mapping) {
          await forget(messageKey, mapping.kernelId, true);
          n++;
        }
      } finally {
        await lock.release();
      }
    }
    if (n) log.info({ kernels: n }, "shut down retired message kernels");
    return n;
  }

  const sweeper = setInterval(() => {
    broker.sweep().catch((err: unknown) => log.warn({ err: normalizeError(err) }, "kernel sweep failed"));
  }, opts.sweepIntervalMs ?? Math.min(30_000, Math.max(1000, Math.floor(opts.idleTtlMs / 4))));
  sweeper.unref();
  return broker;
}
