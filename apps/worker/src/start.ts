import { Queue } from "bullmq";
import { createDb } from "@codeinterp/db";
import { SANDBOX_KERNEL_NAME, createKernelGateway } from "@codeinterp/kernel";
import type { SandboxSpecMetadata } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { announceKernelIsolation, cancelChannel, createRedis, queueNames } from "@codeinterp/queue";
import type { KernelIsolation } from "@codeinterp/queue";
import { createBlobStore } from "@codeinterp/workspace";
import { CancelRegistry } from "./cancellations";
import type { WorkerEnv } from "./env";
import { createMessageKernelBroker } from "./kernels/message-broker";
import { startWorkspaceRetention } from "./jobs/clean-workspaces";
import { startWorkerMetrics } from "./metrics";
import { startReconciler } from "./reconciler";
import { createExecutionWorker } from "./worker";
import { WorkspaceLayout } from "./workspace-layout";
import { kernelRequestFor } from "./jobs/run-execution";

export interface RunningWorker {
  /** Stops taking jobs, lets running ones finish until the deadline, then closes every connection. */
  close(deadlineMs?: number): Promise<void>;
}

/** Wires a worker from config; main.ts and the integration tests both start it this way. */
export async function startWorker(env: WorkerEnv, log: Logger): Promise<RunningWorker> {
  if (!env.JUPYTER_URL) throw new Error("JUPYTER_URL is not set: the worker needs a Jupyter server or gateway");
  // First: a worker that refuses to start (KERNEL_SANDBOX=on without the sandbox) opens no connections.
  const isolation = await detectSandbox(env, log);
  const db = createDb({ url: env.DATABASE_URL, poolSize: env.WORKER_CONCURRENCY + 4 });
  // Patient: while Redis is away a worker's commands wait for it to return (the API, by contrast, fails fast
  // with 503), so a Redis restart delays executions instead of failing them.
  const redis = createRedis(env.REDIS_URL, { name: "worker", blocking: true });
  const connection = createRedis(env.REDIS_URL, { name: "worker-bullmq", blocking: true });
  const cancelSub = createRedis(env.REDIS_URL, { name: "worker-cancel", blocking: true });
  const sandboxed = isolation.sandboxed;
  const announced = announceKernelIsolation({ redis, prefix: env.QUEUE_PREFIX, workerId: env.WORKER_ID, heartbeatMs: env.WORKER_HEARTBEAT_MS, isolation });
  const gateway = createKernelGateway({
    baseUrl: env.JUPYTER_URL,
    token: env.JUPYTER_TOKEN,
    log,
    kernelName: sandboxed ? SANDBOX_KERNEL_NAME : "python3",
  });
  const layout = new WorkspaceLayout(sandboxed, env.DATA_DIR, env.KERNEL_ROOT_DIR);
  const broker = createMessageKernelBroker({
    gateway,
    redis,
    prefix: env.QUEUE_PREFIX,
    workerId: env.WORKER_ID,
    log,
    poolSize: env.KERNEL_POOL_SIZE,
    layout,
    idleTtlMs: env.KERNEL_IDLE_TTL_MS,
    heartbeatMs: env.WORKER_HEARTBEAT_MS,
    lockTtlMs: env.JOB_LOCK_DURATION_MS,
  });
  const cancels = new CancelRegistry();
  const blobs = createBlobStore(env.DATA_DIR);

  await cancelSub.subscribe(cancelChannel(env.QUEUE_PREFIX));
  cancelSub.on("message", (_channel: string, executionId: string) => {
    if (cancels.cancel(executionId)) log.info({ executionId }, "cancel requested");
  });

  const worker = createExecutionWorker({ env, db, redis, blobs, broker, layout, cancels, log, connection });
  const metrics = startWorkerMetrics({
    redis,
    prefix: env.QUEUE_PREFIX,
    workerId: env.WORKER_ID,
    log,
    poolAvailable: () => broker.pool.available,
    poolTarget: env.KERNEL_POOL_SIZE,
    inUse: () => cancels.size,
    concurrency: env.WORKER_CONCURRENCY,
  });
  metrics.observe(worker);
  const queue = new Queue(queueNames.executions, { connection: redis, prefix: env.QUEUE_PREFIX });
  const stopReconciler = startReconciler({
    db,
    redis,
    queue,
    prefix: env.QUEUE_PREFIX,
    log,
    intervalMs: env.RECONCILE_INTERVAL_MS,
    onLost: async (e) => {
      if (e.kernelId) await broker.evict(kernelRequestFor(env, layout, e.userId, e.messageId), e.kernelId);
    },
  });
  const retention = await startWorkspaceRetention({
    blobs,
    connection,
    prefix: env.QUEUE_PREFIX,
    dataDir: env.DATA_DIR,
    retentionMs: env.WORKSPACE_RETENTION_MS,
    everyMs: env.WORKSPACE_SWEEP_INTERVAL_MS,
    log,
  });
  await worker.waitUntilReady();
  log.info({ concurrency: env.WORKER_CONCURRENCY, sandboxed }, "worker ready");

  let closing: Promise<void> | null = null;
  return {
    close: (deadlineMs = env.SHUTDOWN_DEADLINE_MS) =>
      (closing ??= (async () => {
        stopReconciler();
        const drained = worker.close();
        const timer = setTimeout(() => {
          // Past the deadline: interrupt what still runs; each such execution ends as cancelled and the
          // processors return, so the drain completes with every execution in a final state.
          log.warn({ running: cancels.abortAll() }, "drain deadline passed; cancelling running executions");
        }, deadlineMs);
        await drained;
        clearTimeout(timer);
        await retention.close();
        await metrics.close();
        await announced.stop();
        await broker.close();
        await queue.close();
        cancelSub.disconnect();
        connection.disconnect();
        redis.disconnect();
        await db.$disconnect();
      })()),
  };
}

export class SandboxUnavailableError extends Error {
  override name = "SandboxUnavailableError";
}

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
    specs = await createKernelGateway({ baseUrl: env.JUPYTER_URL!, token: env.JUPYTER_TOKEN, log }).kernelSpecs();
  } catch (err) {
    if (env.KERNEL_SANDBOX === "on") throw err;
    return unsandboxed(`could not list kernelspecs: ${(err as Error).message}`);
  }
  const meta = specs[SANDBOX_KERNEL_NAME]?.metadata.codeinterp as Partial<SandboxSpecMetadata> | undefined;
  if (meta?.network !== "none") {
    const why = `the gateway has no ${SANDBOX_KERNEL_NAME} kernelspec with network-less kernels`;
    if (env.KERNEL_SANDBOX === "on") throw new SandboxUnavailableError(`KERNEL_SANDBOX=on but ${why}`);
    return unsandboxed(why);
  }
  return { sandboxed: true, network: "none", cgroup: meta.cgroup?.version ?? null };
}
