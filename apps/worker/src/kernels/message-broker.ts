import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { Redis } from "@codeinterp/queue";
import type { AcquireRequest, KernelBroker, KernelLease } from "./broker";
import type { HeldLock } from "./lock";
import { acquireLock, tryLock } from "./lock";
import { KernelPool } from "./pool";
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
}

interface Mapping {
  kernelId: string;
  lastUsed: number;
}

/**
 * Each (user, message) has at most one kernel, recorded in Redis so any worker can attach to it (the kernel
 * lives on the gateway, not in a worker). Executions of one message are serialised by a Redis lock held
 * from acquire to release. Kernels idle longer than the TTL are shut down by whichever worker sweeps first.
 */
export function isLive(session: KernelSession): boolean {
  return !session.isDead && session.connection.connectionStatus === "connected" && session.status !== "dead";
}

export function createMessageKernelBroker(opts: MessageBrokerOptions): KernelBroker & { pool: KernelPool; sweep(): Promise<number> } {
  const { gateway, redis, prefix, log } = opts;
  const mapKey = (k: string) => `${prefix}:kernel:msg:${k}`;
  const lockKey = (k: string) => `${prefix}:kernel:lock:${k}`;
  const idleSet = `${prefix}:kernel:idle`;
  const poolSet = `${prefix}:kernel:pool:${opts.workerId}`;
  const locks = new Map<string, HeldLock>();
  // Sessions this worker already has a websocket to, so reusing a kernel costs no reconnect.
  const sessions = new Map<string, KernelSession>();
  const pool = new KernelPool(gateway, opts.poolSize, log, () => opts.layout.newPoolSlot(), (ids) => {
    void redis
      .multi()
      .del(poolSet)
      .sadd(poolSet, ...(ids.length ? ids : ["-"]))
      .pexpire(poolSet, 120_000)
      .exec()
      .catch(() => undefined);
  });
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

  async function attach(kernelId: string): Promise<KernelSession | null> {
    const known = sessions.get(kernelId);
    // A kernel deleted on the server, or a restarted server, leaves a cached session that is reconnecting
    // to nothing: only a live connection is reused as it is.
    // One REST round trip (~2 ms) also catches a kernel deleted a moment ago whose websocket has not
    // noticed yet: sending code to it would wait for the whole timeout.
    if (known && isLive(known) && (await gateway.hasKernel(kernelId).catch(() => false))) return known;
    known?.dispose();
    sessions.delete(kernelId);
    try {
      const s = await gateway.connectKernel(kernelId);
      sessions.set(kernelId, s);
      return s;
    } catch (err) {
      log.info({ kernelId, err: normalizeError(err).message }, "message kernel is gone; starting another");
      return null;
    }
  }

  async function forget(messageKey: string, kernelId: string, shutdown: boolean) {
    sessions.get(kernelId)?.dispose();
    sessions.delete(kernelId);
    await redis.multi().del(mapKey(messageKey)).zrem(idleSet, messageKey).exec();
    if (shutdown) await gateway.shutdownKernel(kernelId).catch(() => undefined);
  }

  const broker = {
    pool,
    async acquire(req: AcquireRequest): Promise<KernelLease> {
      const started = Date.now();
      const lock = await acquireLock(redis, lockKey(req.messageKey), {
        ttlMs: opts.lockTtlMs ?? 30_000,
        waitMs: opts.lockWaitMs ?? 15 * 60_000,
        ...(req.signal ? { signal: req.signal } : {}),
      });
      let fresh: KernelSession | null = null;
      try {
        const mapping = await readMapping(req.messageKey);
        if (mapping) {
          const session = await attach(mapping.kernelId);
          if (session) {
            locks.set(req.messageKey, lock);
            return { session, pooled: false, reused: true, acquireMs: Date.now() - started };
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
        await redis.set(mapKey(req.messageKey), JSON.stringify({ kernelId: session.id, lastUsed: Date.now() } satisfies Mapping), "PX", opts.idleTtlMs * 2);
        await redis.zadd(idleSet, Date.now(), req.messageKey);
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

    async release(req: AcquireRequest, lease: KernelLease, { discard }: { discard: boolean }) {
      const lock = locks.get(req.messageKey);
      locks.delete(req.messageKey);
      try {
        if (discard || lease.session.isDead) {
          await forget(req.messageKey, lease.session.id, true);
        } else {
          const now = Date.now();
          await redis
            .multi()
            .set(mapKey(req.messageKey), JSON.stringify({ kernelId: lease.session.id, lastUsed: now } satisfies Mapping), "PX", opts.idleTtlMs * 2)
            .zadd(idleSet, now, req.messageKey)
            .exec();
        }
      } finally {
        await lock?.release();
      }
    },

    kernelExists: (kernelId: string) => gateway.hasKernel(kernelId),

    async evict(req: AcquireRequest, kernelId: string) {
      const lock = await acquireLock(redis, lockKey(req.messageKey), { ttlMs: opts.lockTtlMs ?? 30_000, waitMs: opts.lockWaitMs ?? 15 * 60_000 });
      try {
        const mapping = await readMapping(req.messageKey);
        if (mapping?.kernelId === kernelId) await forget(req.messageKey, kernelId, true);
        else await gateway.shutdownKernel(kernelId).catch(() => undefined);
      } finally {
        await lock.release();
      }
    },

    /** Shuts down message kernels idle past the TTL; returns how many. */
    async sweep(): Promise<number> {
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
      return n;
    },

    async close() {
      clearInterval(sweeper);
      await pool.close();
      await redis.del(poolSet).catch(() => undefined);
      // Message kernels stay on the gateway for the next worker; only this worker's websockets close.
      for (const s of sessions.values()) s.dispose();
      sessions.clear();
    },
  };

  const sweeper = setInterval(() => {
    broker.sweep().catch((err: unknown) => log.warn({ err: normalizeError(err) }, "kernel sweep failed"));
  }, opts.sweepIntervalMs ?? Math.min(30_000, Math.max(1000, Math.floor(opts.idleTtlMs / 4))));
  sweeper.unref();
  return broker;
}
