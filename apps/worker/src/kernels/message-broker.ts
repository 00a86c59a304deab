import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { GatewaySeen, Redis } from "@codeinterp/queue";
import type { AcquireRequest, KernelBroker, KernelLease, KernelMapping, MessageTurn } from "./broker";
import {
  clearKernelReset,
  kernelResetKey,
  memoryReliefLockKey,
  messageLockKey,
  retireAgain,
  takeRetiredKernels,
} from "@codeinterp/queue";
import type { HeldLock } from "./lock";
import { acquireLock, tryLock } from "./lock";
import type { LiveKernels, Reservation } from "./live-kernels";
import { createKernelMappings } from "./mappings";
import { KernelPool } from "./pool";
import { createPoolOwners } from "./pool-owners";
import { createRoom } from "./room";
import type { WorkerEvents } from "../events";
import type { MemoryAdmission } from "./memory-admission";
import { warnShutdownFailed } from "./shutdown-failed";
import type { WorkspaceLayout } from "../workspace-layout";

export interface MessageBrokerOptions {
  gateway: KernelGateway;
  redis: Redis;
  prefix: string;
  /** Where this cell keeps the state of its own gateway's kernels (default `prefix`; see cellKeyPrefix). */
  cellPrefix?: string;
  workerId: string;
  log: Logger;
  poolSize: number;
  /** Most pool kernels under demand (without memory admission, also a quarter of the live-kernel ceiling). */
  poolMaxSize?: number;
  poolDemandWindowMs?: number;
  layout: WorkspaceLayout;
  idleTtlMs: number;
  /** The deployment's ceiling on live kernels (pool kernels included). */
  live: LiveKernels;
  /** A message lock not renewed this long (its worker died) is free again. */
  lockTtlMs?: number;
  /** Longest an execution waits for the previous one of its message, or for room under the ceiling. */
  lockWaitMs?: number;
  sweepIntervalMs?: number;
  /** How often this worker records that it is alive (its pool kernels are swept after three missed beats). */
  heartbeatMs?: number;
  /** Where the broker tells of pool refills and evictions. */
  events?: WorkerEvents;
  /** Admission by the kernels' memory in use (memory-admission.ts); null: by the count ceiling alone. */
  admission?: MemoryAdmission | null;
  /** A message kernel used this recently is not evicted for a new message (default 60 s). */
  evictionProtectMs?: number;
  /** How often memory in use is checked against the high watermark (default 1 s). */
  memoryWatchMs?: number;
  /** What this worker last saw of its gateway, sent with every heartbeat. */
  gatewaySeen?: () => GatewaySeen | null;
  /** Python each pool kernel runs before it is handed out (KERNEL_PRELOAD). */
  preload?: string;
  /** At the ceiling, a pool refill may take the place of a message kernel idle this long (default 60 s). */
  poolEvictionIdleMs?: number;
}

/** A message kernel used this recently is not evicted for a new message. */
export const DEFAULT_EVICTION_PROTECT_MS = 60_000;

/** A kernel released this recently by this worker is reused without asking the gateway whether it exists. */
export const RECENT_MS = 3000;

export function isLive(session: KernelSession): boolean {
  return !session.isDead && session.connection.connectionStatus === "connected" && session.status !== "dead";
}

interface TurnState {
  mapping: KernelMapping | null;
  resetAsked: boolean;
}

/** A turn as the broker sees it: the lock, and what it reserved for a kernel start. */
class Turn implements MessageTurn {
  /** A place under the ceiling reserved by makeRoom and not used yet. */
  place: Reservation | null = null;
  private ended = false;

  constructor(
    readonly messageKey: string,
    public mapping: KernelMapping | null,
    /** A restart was asked for (the Jupyter surface): this turn starts the message on a fresh kernel. */
    public resetAsked: boolean,
    private readonly lock: HeldLock,
  ) {}

  async release(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    const place = this.place;
    this.place = null;
    // An unused place lapses with its lease if the drop fails.
    await place?.drop().catch(() => undefined);
    await this.lock.release();
  }
}

function turnOf(turn: MessageTurn): Turn {
  if (!(turn instanceof Turn)) throw new TypeError("not a turn of this broker");
  return turn;
}

/**
 * Each (user, message) has at most one kernel, recorded in Redis so any worker can attach to it (the kernel
 * lives on the gateway, not in a worker). Executions of one message take turns (see MessageTurn). Kernels idle
 * longer than the TTL are shut down by whichever worker sweeps first, and at the live-kernel ceiling the least
 * recently used idle one makes room for a new one.
 */
export function createMessageKernelBroker(
  opts: MessageBrokerOptions,
): KernelBroker & { pool: KernelPool; sweep(): Promise<number>; heartbeat(): void } {
  const { gateway, redis, prefix, log, live } = opts;
  const lockKey = (k: string) => messageLockKey(prefix, k);
  const lockTtlMs = opts.lockTtlMs ?? 30_000;
  const lockWaitMs = opts.lockWaitMs ?? 15 * 60_000;
  const heartbeatMs = opts.heartbeatMs ?? 10_000;
  // A message kernel's lease lasts as long as its mapping. A pool kernel's outlasts its worker's last beat
  // by twice the three beats after which pool-owners shuts it down: the kernel is gone before its place is.
  const messageLeaseMs = opts.idleTtlMs * 2;
  const poolLeaseMs = heartbeatMs * 6;
  const kernelPrefix = opts.cellPrefix ?? prefix;
  const mappings = createKernelMappings(redis, kernelPrefix, messageLeaseMs);
  const readMapping = (messageKey: string) => mappings.read(messageKey);
  // A restart asked for through the API (the Jupyter surface) is read with the mapping at the turn's start.
  const readTurnState = (messageKey: string) =>
    mappings.readWithMark(messageKey, kernelResetKey(prefix, messageKey)).then(({ mapping, marked }) => ({
      mapping,
      resetAsked: marked,
    }));
  // When this worker last released each message kernel it holds a session to.
  const lastReleased = new Map<string, number>();
  // Sessions this worker already has a websocket to, so reusing a kernel costs no reconnect.
  const sessions = new Map<string, KernelSession>();
  // Message kernels running an execution in this worker: their leases are kept alive by its beat.
  const inUse = new Set<string>();
  const owners = createPoolOwners({
    redis,
    prefix,
    ownersPrefix: kernelPrefix,
    workerId: opts.workerId,
    gateway,
    log,
    heartbeatMs,
    onShutdown: (id) => live.drop(id),
    ...(opts.gatewaySeen ? { gatewaySeen: opts.gatewaySeen } : {}),
  });
  const pool = new KernelPool({
    gateway,
    size: opts.poolSize,
    // Under a count ceiling, pool kernels hold places that message kernels need more: demand grows the pool
    // to a quarter of it at most. Admitted by memory, a forked pool kernel costs what it uses (a few tens of
    // MB), and a refill waits while memory is short, so demand alone sizes it.
    maxSize: opts.admission
      ? (opts.poolMaxSize ?? opts.poolSize)
      : Math.min(opts.poolMaxSize ?? opts.poolSize, Math.max(opts.poolSize, Math.floor(live.max / 4))),
    ...(opts.poolDemandWindowMs !== undefined ? { demandWindowMs: opts.poolDemandWindowMs } : {}),
    onShrunk: (id) => live.drop(id),
    log,
    newSlot: () => opts.layout.newPoolSlot(),
    onChange: (ids) => owners.record(ids),
    reservePlace: async () => {
      const place = await room.reservePoolPlace();
      return place && { bind: (id) => place.bind(id, poolLeaseMs), drop: () => place.drop() };
    },
    ...(opts.preload ? { preload: opts.preload } : {}),
    claim: (id) => owners.claim(id),
    onReady: (kernelId) => opts.events?.emit("pool:refilled", { kernelId, ready: pool.available, target: pool.target }),
  });

  const room = createRoom({
    redis,
    workerId: opts.workerId,
    live,
    mappings,
    owners,
    log,
    idleTtlMs: opts.idleTtlMs,
    lockTtlMs,
    lockWaitMs,
    lockKey,
    shutDown: (messageKey, kernelId) => forget(messageKey, kernelId, true),
    onEvicted: (reason) => opts.events?.emit("kernel:evicted", { reason }),
    onWaitForRoom: (messageKey) => opts.events?.emit("kernel:waitedForRoom", { messageKey }),
    ...(opts.poolEvictionIdleMs !== undefined ? { poolEvictionIdleMs: opts.poolEvictionIdleMs } : {}),
    admission: opts.admission ?? null,
    protectMs: opts.evictionProtectMs ?? DEFAULT_EVICTION_PROTECT_MS,
  });
  pool.refill();

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
      return idleMs < RECENT_MS
        ? { session: known }
        : { session: known, stillThere: gateway.hasKernel(kernelId).catch(() => false) };
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

  /** The message's kernel, used at `lastUsed` (the idle sweep and the ceiling's eviction go by it). */
  async function recordMapping(messageKey: string, kernelId: string, lastUsed: number) {
    // Independent keys: sent together, one round trip.
    await Promise.all([mappings.record(messageKey, kernelId, lastUsed), live.extend([kernelId], messageLeaseMs)]);
  }

  async function forget(messageKey: string, kernelId: string, shutdown: boolean) {
    sessions.get(kernelId)?.dispose();
    sessions.delete(kernelId);
    lastReleased.delete(kernelId);
    inUse.delete(kernelId);
    await mappings.remove(messageKey);
    // Logged and gone past: the mapping is removed already, and a kernel left running is the operator's to see.
    if (shutdown) await gateway.shutdownKernel(kernelId).catch(warnShutdownFailed(log, kernelId));
    await live.drop(kernelId);
  }

  async function startTurn(messageKey: string, lock: HeldLock, early: Promise<TurnState | undefined>): Promise<Turn> {
    try {
      // The early read is valid only if the lock was free at the first try (then it ran under it).
      const state = (lock.firstTry ? await early : undefined) ?? (await readTurnState(messageKey));
      return new Turn(messageKey, state.mapping, state.resetAsked, lock);
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** A new kernel for the turn: a pool kernel its workspace can adopt, or one started in a reserved place. */
  async function newKernel(
    turn: Turn,
    req: AcquireRequest,
  ): Promise<{ session: KernelSession; pooled: boolean; enteredDir?: string }> {
    const fromPool = await pool.claim();
    if (fromPool) {
      // It started and preloaded at the background CPU weight; the message's code runs at the normal one.
      const [adopted] = await Promise.all([
        opts.layout.adopt(fromPool.slot, req.workspaceDir),
        fromPool.session.setCpuPriority("normal"),
      ]);
      if (adopted) {
        // Sandboxed, the adopted slot is the workspace now (and keeps its owner); unsandboxed, it is made here.
        try {
          await opts.layout.ensureWorkspace(req.workspaceDir, req.uid);
        } catch (err) {
          // Cleanup before the error is rethrown (that error is the caller's); its place lapses with its lease.
          await fromPool.session.shutdown().catch(warnShutdownFailed(log, fromPool.session.id));
          await live.drop(fromPool.session.id).catch(() => undefined);
          throw err;
        }
        // A kernel the server restarted while it waited lost its workspace hook: entered again like a new one.
        const entered = fromPool.session.generation === fromPool.warmGeneration ? fromPool.slot.kernelDir : undefined;
        return { session: fromPool.session, pooled: true, ...(entered ? { enteredDir: entered } : {}) };
      }
      pool.putBack(fromPool);
    }
    const place = turn.place ?? (await room.waitFor(turn.messageKey, req.signal));
    turn.place = null;
    try {
      await opts.layout.ensureWorkspace(req.workspaceDir, req.uid);
      const session = await gateway.startKernel({ path: req.kernelPath });
      // Without the binding the place still counts until its lease lapses: the ceiling stays safe.
      await place.bind(session.id, messageLeaseMs).catch(() => undefined);
      return { session, pooled: false };
    } catch (err) {
      // The start's error is rethrown; an unused place lapses with its lease.
      await place.drop().catch(() => undefined);
      throw err;
    }
  }

  const broker = {
    pool,

    /** Beats now (e.g. the gateway's state changed), not at the next interval. */
    heartbeat: () => owners.beat(),
    async tryTurn(messageKey: string): Promise<MessageTurn | null> {
      const locking = tryLock(redis, lockKey(messageKey), lockTtlMs, (err) =>
        log.warn({ messageKey, err: err.message }, "message lock lost"),
      );
      // Sent right behind the SET NX: if the lock is ours, this read happened under it.
      const early = readTurnState(messageKey).catch(() => undefined);
      const lock = await locking;
      return lock && startTurn(messageKey, lock, early);
    },

    async takeTurn(messageKey: string, signal?: AbortSignal): Promise<MessageTurn> {
      const locking = acquireLock(redis, lockKey(messageKey), {
        ttlMs: lockTtlMs,
        waitMs: lockWaitMs,
        onLost: (err) => log.warn({ messageKey, err: err.message }, "message lock lost"),
        ...(signal ? { signal } : {}),
      });
      // undefined means "read it again under the lock" (startTurn).
      const early = readTurnState(messageKey).catch(() => undefined);
      return startTurn(messageKey, await locking, early);
    },

    async makeRoom(messageTurn: MessageTurn): Promise<boolean> {
      const turn = turnOf(messageTurn);
      // Its own kernel (if that turns out gone, acquire finds room in place), or a pre-started one.
      if (turn.mapping || turn.place || pool.available > 0) return true;
      turn.place = await room.reserve(turn.messageKey);
      return turn.place !== null;
    },

    async acquire(messageTurn: MessageTurn, req: AcquireRequest): Promise<KernelLease> {
      const turn = turnOf(messageTurn);
      const started = Date.now();
      const mapping = turn.mapping;
      // A restart asked for through the API (the Jupyter surface) is consumed under the turn: the execution
      // then starts on a fresh kernel (a message without a kernel gets a fresh one anyway).
      // The mark is cleared once the old kernel is forgotten: a failure before that leaves it for a retry.
      if (turn.resetAsked) {
        if (mapping) await forget(turn.messageKey, mapping.kernelId, true);
        turn.mapping = null;
        await clearKernelReset(redis, prefix, turn.messageKey);
        turn.resetAsked = false;
      } else if (mapping) {
        const attached = await attach(mapping.kernelId);
        if (attached) {
          inUse.add(mapping.kernelId);
          return { ...attached, pooled: false, reused: true, stateReset: false, acquireMs: Date.now() - started };
        }
        await forget(turn.messageKey, mapping.kernelId, true);
        turn.mapping = null;
      }
      const { session, pooled, enteredDir } = await newKernel(turn, req);
      let stateReset: boolean;
      try {
        sessions.set(session.id, session);
        inUse.add(session.id);
        await live.extend([session.id], messageLeaseMs);
        // Taken only once a kernel is there: a start that failed leaves the note for the next try.
        stateReset = await mappings.takeEvictedMark(turn.messageKey);
      } catch (err) {
        // A kernel started or adopted for this call and not handed out would otherwise be leaked.
        sessions.delete(session.id);
        inUse.delete(session.id);
        // Cleanup before the error is rethrown (that error is the caller's); its place lapses with its lease.
        await session.shutdown().catch(warnShutdownFailed(log, session.id));
        await live.drop(session.id).catch(() => undefined);
        throw err;
      }
      // Not the message's kernel yet: `bind` records it once it is set up to run the message's code.
      // A pool kernel may have been deleted on the gateway while it waited (its websocket can look alive):
      // confirmed before code is sent, overlapping the workspace's preparation, like a reused one.
      const stillThere = pooled ? { stillThere: gateway.hasKernel(session.id).catch(() => false) } : {};
      return {
        session,
        pooled,
        reused: false,
        stateReset,
        acquireMs: Date.now() - started,
        ...(enteredDir ? { enteredDir } : {}),
        ...stillThere,
      };
    },

    async bind(messageTurn: MessageTurn, lease: KernelLease) {
      const turn = turnOf(messageTurn);
      await recordMapping(turn.messageKey, lease.session.id, Date.now());
      turn.mapping = { kernelId: lease.session.id, lastUsed: Date.now() };
    },

    async release(messageTurn: MessageTurn, lease: KernelLease, { discard }: { discard: boolean }) {
      const turn = turnOf(messageTurn);
      inUse.delete(lease.session.id);
      if (discard || lease.session.isDead) {
        await forget(turn.messageKey, lease.session.id, true);
        turn.mapping = null;
      } else {
        const now = Date.now();
        lastReleased.set(lease.session.id, now);
        await recordMapping(turn.messageKey, lease.session.id, now);
        turn.mapping = { kernelId: lease.session.id, lastUsed: now };
      }
    },

    kernelExists: (kernelId: string) => gateway.hasKernel(kernelId),

    async evict(messageTurn: MessageTurn, kernelId: string) {
      const turn = turnOf(messageTurn);
      const mapping = await readMapping(turn.messageKey);
      if (mapping?.kernelId === kernelId) await forget(turn.messageKey, kernelId, true);
      else {
        await gateway.shutdownKernel(kernelId).catch(warnShutdownFailed(log, kernelId));
        await live.drop(kernelId);
      }
      if (turn.mapping?.kernelId === kernelId) turn.mapping = null;
    },

    /** Shuts down message kernels idle past the TTL, and pool kernels of workers that are gone; returns how many. */
    async sweep(): Promise<number> {
      const orphans = await owners.sweep();
      const stale = await mappings.idleSince(Date.now() - opts.idleTtlMs, 100);
      let n = 0;
      for (const messageKey of stale) {
        const lock = await tryLock(redis, lockKey(messageKey), lockTtlMs);
        if (!lock) continue;
        try {
          const mapping = await readMapping(messageKey);
          if (!mapping) {
            await mappings.dropIndex(messageKey);
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
      clearInterval(beat);
      clearInterval(memoryWatch);
      const pooled = pool.ids();
      await pool.close();
      // Shut down with the pool: their places are free now, not when their leases lapse.
      await Promise.all(pooled.map((id) => live.drop(id).catch(() => undefined)));
      await owners.close();
      // Message kernels stay on the gateway for the next worker; only this worker's websockets close.
      for (const s of sessions.values()) s.dispose();
      sessions.clear();
    },
  };

  /** Kernels of messages the API retired (a deleted Jupyter-surface kernel) go now, not after the idle TTL. */
  async function sweepRetired(): Promise<number> {
    const retired = await takeRetiredKernels(redis, prefix, 100);
    let n = 0;
    for (const messageKey of retired) {
      const lock = await tryLock(redis, lockKey(messageKey), lockTtlMs);
      if (!lock) {
        // An execution still holds it: next sweep.
        await retireAgain(redis, prefix, messageKey);
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

  const sweeper = setInterval(
    () => {
      broker.sweep().catch((err: unknown) => log.warn({ err: normalizeError(err) }, "kernel sweep failed"));
    },
    opts.sweepIntervalMs ?? Math.min(30_000, Math.max(1000, Math.floor(opts.idleTtlMs / 4))),
  );
  sweeper.unref();
  // The leases of the kernels this worker holds stay alive while it beats (see live-kernels.ts).
  const beat = setInterval(() => {
    Promise.all([live.extend(pool.ids(), poolLeaseMs), live.extend([...inUse], messageLeaseMs)]).catch((err: unknown) =>
      log.warn({ err: normalizeError(err).message }, "could not renew kernel leases"),
    );
  }, heartbeatMs);
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
      const lock = await tryLock(redis, memoryReliefLockKey(kernelPrefix), lockTtlMs);
      if (!lock) return;
      try {
        await room.relieveMemory();
      } finally {
        await lock.release();
      }
    })()
      .catch((err: unknown) => log.warn({ err: normalizeError(err).message }, "memory relief failed"))
      .finally(() => (relieving = false));
  }, opts.memoryWatchMs ?? 1000);
  memoryWatch.unref();
  return broker;
}
