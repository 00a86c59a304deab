import type { KernelGateway } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import type { GatewaySeen, Redis } from "@codeinterp/queue";
import { messageLockKey } from "@codeinterp/queue";
import type { WorkerEvents } from "../events";
import type { WorkspaceLayout } from "../workspace-layout";
import type { LiveKernels } from "./live-kernels";
import { createKernelMappings } from "./mappings";
import type { KernelMappings } from "./mappings";
import type { MemoryAdmission } from "./memory-admission";
import { MessageKernels } from "./message-kernels";
import { KernelPool } from "./pool";
import { createPoolOwners } from "./pool-owners";
import type { PoolOwners } from "./pool-owners";
import { createRoom } from "./room";
import { KernelSessions } from "./sessions";

export interface MessageBrokerOptions {
  gateway: KernelGateway;
  redis: Redis;
  prefix: string;
  /** Where this cell keeps the state of its own gateway's kernels (default \`prefix\`; see cellKeyPrefix). */
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
  /** Where the broker tells of leases, pool refills and evictions. */
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

/** The broker's pieces, wired once; the lease, sweeps and upkeep each use the few they need. */
export interface BrokerParts {
  opts: MessageBrokerOptions;
  gateway: KernelGateway;
  redis: Redis;
  log: Logger;
  layout: WorkspaceLayout;
  live: LiveKernels;
  lockTtlMs: number;
  lockWaitMs: number;
  heartbeatMs: number;
  /** A pool kernel's lease under the ceiling (see below). */
  poolLeaseMs: number;
  lockKey: (messageKey: string) => string;
  mappings: KernelMappings;
  sessions: KernelSessions;
  kernels: MessageKernels;
  owners: PoolOwners;
  pool: KernelPool;
  room: ReturnType<typeof createRoom>;
}

export function createBrokerParts(opts: MessageBrokerOptions): BrokerParts {
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
  const sessions = new KernelSessions(gateway, log);
  const kernels = new MessageKernels(gateway, mappings, live, sessions, log, messageLeaseMs);
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
    shutDown: (messageKey, kernelId) => kernels.forget(messageKey, kernelId, true),
    onEvicted: (reason) => opts.events?.emit("kernel:evicted", { reason }),
    onWaitForRoom: (messageKey) => opts.events?.emit("kernel:waitedForRoom", { messageKey }),
    ...(opts.poolEvictionIdleMs !== undefined ? { poolEvictionIdleMs: opts.poolEvictionIdleMs } : {}),
    admission: opts.admission ?? null,
    protectMs: opts.evictionProtectMs ?? DEFAULT_EVICTION_PROTECT_MS,
  });
  const pool: KernelPool = new KernelPool({
    gateway,
    size: opts.poolSize,
    // Under a count ceiling, pool kernels hold places that message kernels need more: demand grows the pool
    // to a quarter of it at most. Admitted by memory, a forked pool kernel costs what it uses (a few tens of
    // MB), and a refill waits while memory is short, so demand alone sizes it.
    maxSize: opts.admission
      ? (opts.poolMaxSize ?? opts.poolSize)
      : Math.min(opts.poolMaxSize ?? opts.poolSize, Math.max(opts.poolSize, Math.floor(live.max / 4))),
    ...(opts.poolDemandWindowMs !== undefined ? { demandWindowMs: opts.poolDemandWindowMs } : {}),
    onShrunk: (kernelId) => {
      opts.events?.emit("pool:shrunk", { kernelId, ready: pool.available, target: pool.target });
      return live.drop(kernelId);
    },
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
  return {
    opts,
    gateway,
    redis,
    log,
    layout: opts.layout,
    live,
    lockTtlMs,
    lockWaitMs,
    heartbeatMs,
    poolLeaseMs,
    lockKey,
    mappings,
    sessions,
    kernels,
    owners,
    pool,
    room,
  };
}
