import { totalmem } from "node:os";
import { loadBlobStore } from "@codeinterp/config";
import { closeDb, createDb, kernelMayBeInUse } from "@codeinterp/db";
import { openBlobStore } from "@codeinterp/files";
import { createKernelGateway, preloadCode, remoteKernelHost } from "@codeinterp/kernel";
import type { KernelHost } from "@codeinterp/kernel";
import { DEFAULT_SANDBOX_LIMITS, SANDBOX_KERNEL_NAME, createLocalKernelHost } from "@codeinterp/kernel-host";
import type { KernelCgroupParent, SandboxSpecMetadata } from "@codeinterp/kernel-host";
import type { Logger } from "@codeinterp/logger";
import { ExecutionRouter, cellKeyPrefix, createRedis, onCancelRequests } from "@codeinterp/queue";
import { detectDiskBudget } from "@codeinterp/workspace";
import type { DiskBudget } from "@codeinterp/workspace";
import { CancelRegistry } from "./cancellations";
import { Cell } from "./cells/cell";
import { closeAll } from "./close-all";
import { createWorkerEvents } from "./events";
import type { WorkerEvents } from "./events";
import type { WorkerEnv } from "./env";
import { MessageKernelBroker } from "./kernels/message-broker";
import { startWorkspaceRetention } from "./jobs/clean-workspaces";
import { startWorkerMetrics } from "./metrics";
import { createLiveKernels, defaultMaxLiveKernels } from "./kernels/live-kernels";
import { MemoryAdmission } from "./kernels/memory-admission";
import { startReconciler } from "./reconciler";
import { createExecutionWorker } from "./worker";
import { gatewaySeen, startGatewayWatch } from "./gateway-watch";
import type { GatewayWatch } from "./gateway-watch";
import { WorkspaceLayout } from "./workspace-layout";
import { kernelRequestFor } from "./jobs/run-execution";

export interface RunningWorker {
  /** Pool refills, evictions and steps aside, as they happen (see events.ts). */
  events: WorkerEvents;
  /** Stops taking jobs, lets running ones finish until the deadline, then closes every connection. */
  close(deadlineMs?: number): Promise<void>;
}

/**
 * Wires a worker from config; main.ts and the integration tests both start it this way (a test passes
 * `events` to hear from the worker from its first moment, pool refills included).
 */
export async function startWorker(
  env: WorkerEnv,
  log: Logger,
  opts: { events?: WorkerEvents } = {},
): Promise<RunningWorker> {
  if (!env.JUPYTER_URL) throw new Error("JUPYTER_URL is not set: the worker needs a Jupyter server or gateway");
  // First: a worker that refuses to start (KERNEL_SANDBOX=on without the sandbox) opens no connections.
  const isolation = await detectSandbox(env, log);
  const diskBudget = await detectWorkspaceDisk(env, log);
  const db = createDb({ url: env.DATABASE_URL, poolSize: env.WORKER_CONCURRENCY + 4 });
  // Patient: while Redis is away a worker's commands wait for it to return (the API, by contrast, fails fast
  // with 503), so a Redis restart delays executions instead of failing them.
  const redis = createRedis(env.REDIS_URL, { name: "worker", blocking: true });
  const connection = createRedis(env.REDIS_URL, { name: "worker-bullmq", blocking: true });
  const cancelSub = createRedis(env.REDIS_URL, { name: "worker-cancel", blocking: true });
  const sandboxed = isolation.sandboxed;
  // Heartbeats at once when the gateway's state changes, so /readyz says so within a probe or two.
  let beatNow = () => undefined as void;
  const monitor = startGatewayWatch(env, log, { onChange: () => beatNow() });
  const gatewayWatch: GatewayWatch = {
    monitor,
    sandboxed,
    egress: isolation.sandboxed && isolation.network === "allowlist",
    retryBudgetMs: monitor.retryBudgetMs,
    diskBudgetMb: diskBudget.kind === "btrfs" ? env.WORKSPACE_DISK_MB : null,
  };
  const host = kernelHost(env, isolation);
  const gateway = createKernelGateway({
    baseUrl: env.JUPYTER_URL,
    token: env.JUPYTER_TOKEN,
    log,
    kernelName: sandboxed ? SANDBOX_KERNEL_NAME : "python3",
    monitor,
    host,
  });
  const layout = new WorkspaceLayout(sandboxed, env.DATA_DIR, env.KERNEL_ROOT_DIR, diskBudget);
  // As many kernels at their cap as the gateway's budget for all kernels holds (it says so in its sandbox
  // kernelspec); a gateway that does not say is taken to have the embedded server's defaults on this machine.
  const caps = (isolation.sandboxed && isolation.caps) || {
    memoryBytes: DEFAULT_SANDBOX_LIMITS.memoryBytes,
    kernelsMemoryBudgetBytes: DEFAULT_SANDBOX_LIMITS.kernelsMemoryBudgetBytes,
  };
  // Where this worker can read what the kernels really use (the gateway's kernels' parent cgroup, on this
  // machine), new kernels are admitted by memory in use; elsewhere by the count of kernels at their cap.
  const admission =
    env.KERNEL_ADMISSION === "memory" && (await host.kernelsMemory()) !== null
      ? createMemoryAdmission(env, host, caps.kernelsMemoryBudgetBytes)
      : null;
  const maxLiveKernels =
    env.MAX_LIVE_KERNELS ??
    defaultMaxLiveKernels({
      kernelMemoryBytes: admission ? MIN_KERNEL_BYTES : caps.memoryBytes,
      budgetBytes: caps.kernelsMemoryBudgetBytes,
    });
  const cancels = new CancelRegistry();
  // Kernel ids mean something only to this cell's gateway: their records live under the cell's prefix.
  const live = createLiveKernels({ redis, prefix: cellKeyPrefix(env.QUEUE_PREFIX, env.CELL_ID), max: maxLiveKernels });
  const cell = new Cell({
    cellId: env.CELL_ID,
    prefix: env.QUEUE_PREFIX,
    redis,
    log,
    heartbeatMs: env.CELL_HEARTBEAT_MS,
    lostMs: env.CELL_LOST_MS,
    // As long as a message's kernel mapping lasts (message-broker.ts).
    holdMs: env.KERNEL_IDLE_TTL_MS * 2,
    room: async (): Promise<number> =>
      Math.min(env.WORKER_CONCURRENCY - cancels.size, maxLiveKernels - (await live.count()) + broker.pool.available),
  });
  // Kernels forked from a template already hold what the preload would import: the pool need not run it.
  const preloaded = isolation.sandboxed ? (isolation.templateModules ?? []) : [];
  const preload = env.KERNEL_PRELOAD.every((m) => preloaded.includes(m)) ? "" : preloadCode(env.KERNEL_PRELOAD);
  const events = opts.events ?? createWorkerEvents();
  const broker = new MessageKernelBroker({
    gateway,
    redis,
    prefix: env.QUEUE_PREFIX,
    cellPrefix: cell.keyPrefix,
    workerId: env.WORKER_ID,
    log,
    poolSize: env.KERNEL_POOL_SIZE,
    poolMaxSize: env.KERNEL_POOL_MAX_SIZE,
    poolDemandWindowMs: env.KERNEL_POOL_DEMAND_WINDOW_MS,
    layout,
    idleTtlMs: env.KERNEL_IDLE_TTL_MS,
    heartbeatMs: env.WORKER_HEARTBEAT_MS,
    lockTtlMs: env.JOB_LOCK_DURATION_MS,
    live,
    events,
    gatewaySeen: () => gatewaySeen(gatewayWatch),
    preload,
    admission,
    // Under the count ceiling alone (a remote gateway, unsandboxed kernels) places are few and count caps,
    // not use: a new message evicts the least recently used idle kernel at once, as it always did.
    evictionProtectMs: admission ? env.KERNEL_EVICTION_PROTECT_MS : 0,
  });
  beatNow = () => broker.heartbeat();
  const blobs = openBlobStore(loadBlobStore(env, "worker"), log);

  await onCancelRequests(cancelSub, env.QUEUE_PREFIX, (executionId) => {
    if (cancels.cancel(executionId)) log.info({ executionId }, "cancel requested");
  });

  const runDeps = {
    env,
    db,
    redis,
    blobs,
    broker,
    layout,
    cancels,
    log,
    connection,
    gatewayWatch,
    events,
    cell,
    ...(isolation.sandboxed && isolation.caps ? { kernelMemoryBytes: isolation.caps.memoryBytes } : {}),
  };
  // New messages with nowhere better to go and those of cells that are gone come through the shared queue;
  // the follow-ups of the messages this cell holds, and new messages placed on it, through its own.
  const worker = createExecutionWorker(runDeps);
  const cellWorker = createExecutionWorker({ ...runDeps, queueName: cell.queueName });
  const metrics = startWorkerMetrics({
    redis,
    prefix: env.QUEUE_PREFIX,
    workerId: env.WORKER_ID,
    log,
    poolAvailable: () => broker.pool.available,
    poolTarget: () => broker.pool.target,
    inUse: () => cancels.size,
    concurrency: env.WORKER_CONCURRENCY,
    liveKernels: () => live.count(),
    maxLiveKernels,
    events,
    ...(admission ? { kernelsMemory: () => admission.state } : {}),
    gateway: () => monitor.health(),
  });
  metrics.observe(worker);
  metrics.observe(cellWorker);
  const executions = new ExecutionRouter({ connection: redis, prefix: env.QUEUE_PREFIX });
  const stopReconciler = startReconciler({
    db,
    redis,
    executions,
    prefix: env.QUEUE_PREFIX,
    log,
    intervalMs: env.RECONCILE_INTERVAL_MS,
    onLost: async (e) => {
      if (!e.kernelId) return;
      if (await kernelMayBeInUse(db, { ...e, kernelId: e.kernelId })) {
        log.info({ executionId: e.id, kernelId: e.kernelId }, "lost execution's kernel is in use by another; kept");
        return;
      }
      // Never waits: a message busy with another execution keeps its turn, and the lost kernel is shut down
      // by the next execution's liveness check or the idle sweep; the reconciler's pass goes on.
      const turn = await broker.tryTurn(kernelRequestFor(env, layout, e.userId, e.messageId).messageKey);
      if (!turn) return;
      try {
        await broker.evict(turn, e.kernelId);
      } finally {
        await turn.release();
      }
    },
  });
  const retention = await startWorkspaceRetention({
    blobs,
    connection,
    prefix: env.QUEUE_PREFIX,
    schedulePrefix: cell.keyPrefix,
    dataDir: env.DATA_DIR,
    retentionMs: env.WORKSPACE_RETENTION_MS,
    everyMs: env.WORKSPACE_SWEEP_INTERVAL_MS,
    budgeted: diskBudget.kind === "btrfs",
    log,
  });
  await Promise.all([worker.waitUntilReady(), cellWorker.waitUntilReady()]);
  await cell.start();
  log.info({ concurrency: env.WORKER_CONCURRENCY, sandboxed, maxLiveKernels, cellId: cell.id }, "worker ready");

  let closing: Promise<void> | null = null;
  return {
    events,
    close: (deadlineMs = env.SHUTDOWN_DEADLINE_MS) =>
      (closing ??= closeAll([
        ["reconciler", () => stopReconciler()],
        // Drains: placement stops at once; turns under way finish below; what is still queued for this
        // cell is handed on once its workers stopped (its messages' next executions run elsewhere, rebuilt).
        ["cell", () => cell.drain()],
        [
          "worker",
          async () => {
            const drained = Promise.all([worker.close(), cellWorker.close()]);
            const timer = setTimeout(() => {
              // Past the deadline: interrupt what still runs; each such execution ends as cancelled and the
              // processors return, so the drain completes with every execution in a final state.
              log.warn({ running: cancels.abortAll() }, "drain deadline passed; cancelling running executions");
            }, deadlineMs);
            try {
              await drained;
            } finally {
              clearTimeout(timer);
            }
          },
        ],
        ["cell queue", () => cell.close(connection)],
        ["workspace retention", () => retention.close()],
        ["metrics", () => metrics.close()],
        ["kernel broker", () => broker.close()],
        ["gateway monitor", () => monitor.stop()],
        ["queues", () => executions.close()],
        ["cancel subscriber", () => cancelSub.disconnect()],
        ["bullmq connection", () => connection.disconnect()],
        ["redis", () => redis.disconnect()],
        ["database", () => closeDb(db)],
        ["blob store", () => blobs.close()],
      ])),
  };
}

/**
 * Whether workspaces get a disk budget (WORKSPACE_DISK_MB), found once at start: only where DATA_DIR is on
 * btrfs with quotas enabled. Elsewhere it says plainly that one kernel can fill DATA_DIR's disk.
 */
async function detectWorkspaceDisk(env: WorkerEnv, log: Logger): Promise<DiskBudget> {
  const budget = await detectDiskBudget(env.DATA_DIR, env.WORKSPACE_DISK_MB * 1024 * 1024);
  if (budget.kind === "btrfs") {
    log.info(
      { workspaceDiskMb: env.WORKSPACE_DISK_MB, quotaMode: budget.quotaMode },
      "each workspace is a btrfs subvolume with a disk budget",
    );
    if (budget.quotaMode === "full")
      log.warn(
        "btrfs quotas are in full mode: a subvolume that code creates inside its workspace escapes the budget; enable simple quotas (see SECURITY.md)",
      );
  } else {
    log.warn(
      { why: budget.reason },
      "workspaces have NO disk budget: one kernel can fill the file system holding DATA_DIR; put DATA_DIR on btrfs with quotas (see SECURITY.md)",
    );
  }
  return budget;
}

export class SandboxUnavailableError extends Error {
  override name = "SandboxUnavailableError";
}

/**
 * What this worker's kernels are promised, found at start: sandboxed kernels have no network and the caps
 * their gateway advertises; plain kernels can reach whatever the gateway's machine can. Heartbeats carry it.
 */
type KernelIsolation =
  | {
      sandboxed: true;
      network: "none" | "allowlist";
      caps: Pick<SandboxSpecMetadata, "memoryBytes" | "kernelsMemoryBudgetBytes"> | null;
      /** Where the kernels' cgroups are, on the gateway's machine (null: no cgroups there). */
      cgroup: KernelCgroupParent | null;
      /** Modules every kernel has in memory, forked from the gateway's kernel template; null: started. */
      templateModules: string[] | null;
    }
  | { sandboxed: false; network: "unrestricted" };

const UNSANDBOXED: KernelIsolation = { sandboxed: false, network: "unrestricted" };

/**
 * Whether kernels run sandboxed: the gateway must offer the codeinterp-sandbox kernelspec, and its
 * kernels must have no network (a spec from before kernels lost theirs does not count).
 */
async function detectSandbox(env: WorkerEnv, log: Logger): Promise<KernelIsolation> {
  const unsandboxed = (why: string) => {
    log.warn(
      { why },
      "kernels are NOT sandboxed and have the network: code can reach this machine's Postgres, Redis, API and Jupyter server, " +
        "other kernels, the LAN and the internet, and read anything the Jupyter server's user can (see SECURITY.md)",
    );
    return UNSANDBOXED;
  };
  if (env.KERNEL_SANDBOX === "off") return unsandboxed("KERNEL_SANDBOX=off");
  let specs: Record<string, { metadata: Record<string, unknown> }>;
  try {
    specs = await createKernelGateway({
      baseUrl: env.JUPYTER_URL!,
      token: env.JUPYTER_TOKEN,
      log,
      host: remoteKernelHost,
    }).kernelSpecs();
  } catch (err) {
    if (env.KERNEL_SANDBOX === "on") throw err;
    return unsandboxed(`could not list kernelspecs: ${(err as Error).message}`);
  }
  const meta = specs[SANDBOX_KERNEL_NAME]?.metadata.codeinterp as Partial<SandboxSpecMetadata> | undefined;
  if (meta?.network !== "none" && meta?.network !== "allowlist") {
    const why = `the gateway has no ${SANDBOX_KERNEL_NAME} kernelspec with network-less kernels`;
    if (env.KERNEL_SANDBOX === "on") throw new SandboxUnavailableError(`KERNEL_SANDBOX=on but ${why}`);
    return unsandboxed(why);
  }
  const caps =
    typeof meta.memoryBytes === "number" && typeof meta.kernelsMemoryBudgetBytes === "number"
      ? { memoryBytes: meta.memoryBytes, kernelsMemoryBudgetBytes: meta.kernelsMemoryBudgetBytes }
      : null;
  const templateModules = Array.isArray(meta.template?.modules)
    ? meta.template.modules.filter((m): m is string => typeof m === "string")
    : null;
  return { sandboxed: true, network: meta.network, caps, cgroup: meta.cgroup ?? null, templateModules };
}

/**
 * The machine the kernels run on, as this worker sees it: KERNEL_HOST=local (the gateway runs here) reaches
 * the sandbox kernelspec's cgroups; remote (Enterprise Gateway, another machine's server) knows nothing.
 */
function kernelHost(env: WorkerEnv, isolation: KernelIsolation): KernelHost {
  if (env.KERNEL_HOST === "remote" || !isolation.sandboxed) return remoteKernelHost;
  return createLocalKernelHost({ cgroup: isolation.cgroup });
}

/** The count ceiling under memory admission: no kernel is smaller than this, whatever it holds. */
const MIN_KERNEL_BYTES = 64 * 1024 ** 2;

function createMemoryAdmission(env: WorkerEnv, host: KernelHost, budgetBytes: number): MemoryAdmission {
  return new MemoryAdmission({
    read: () => host.kernelsMemory(),
    budgetBytes,
    highWatermarkBytes: Math.floor((budgetBytes * env.KERNELS_MEMORY_HIGH_PERCENT) / 100),
    lowWatermarkBytes: Math.floor((budgetBytes * env.KERNELS_MEMORY_LOW_PERCENT) / 100),
    newKernelBytes: env.KERNEL_NEW_MB * 1024 ** 2,
    // A small machine keeps a proportionate floor: 1 GiB of a 2 GiB VM would admit nothing.
    hostFloorBytes: Math.min(env.HOST_MEMORY_FLOOR_MB * 1024 ** 2, Math.floor(totalmem() * 0.1)),
  });
}
