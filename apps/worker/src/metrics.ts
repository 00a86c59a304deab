import type { MemoryState } from "./kernels/memory-admission";
import type { WorkerEvents } from "./events";
import type { Job, Worker } from "bullmq";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { GatewayHealth } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import { workerMetricsIndex, workerMetricsKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";

/**
 * Workers serve no HTTP, so each one publishes its own metrics to Redis and the API (GET /metrics) serves
 * them, with a `worker` label, next to its own. Key layout (packages/queue/src/keys.ts):
 *   workerMetricsKey    JSON { workerId, at, metrics: prom-client getMetricsAsJSON() }, PX ttl
 *   workerMetricsIndex  sorted set: WORKER_ID scored by the time its key expires
 * A worker that stops cleanly deletes its key; one that dies disappears when its TTL passes.
 */

/** Seconds; executions default to a 60 s deadline and capture can add a little. */
export const JOB_DURATION_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600];

export interface WorkerMetricsOptions {
  redis: Redis;
  prefix: string;
  workerId: string;
  log: Logger;
  /** Pre-started kernels ready right now (broker.pool.available). */
  poolAvailable: () => number;
  /** What the pool refills to now: KERNEL_POOL_SIZE, raised by demand (broker.pool.target). */
  poolTarget: () => number;
  /** Executions this worker is running right now (each holds a kernel). */
  inUse: () => number;
  concurrency: number;
  /** Live kernels of the whole deployment (the leases under the ceiling), and the ceiling. */
  liveKernels: () => Promise<number>;
  maxLiveKernels: number;
  /** Evictions and capacity waits are counted from these. */
  events: WorkerEvents;
  /** The kernels' memory in use and its watermarks, as admission last read them; null: admitted by count. */
  kernelsMemory?: () => MemoryState | null;
  /** How often the snapshot is written; the key lives three times as long. */
  intervalMs?: number;
  /** After a job ends the snapshot is written within this long, once for all jobs that ended meanwhile. */
  jobEndDelayMs?: number;
  /** What the gateway's liveness monitor last saw. */
  gateway?: () => GatewayHealth;
}

export interface WorkerMetrics {
  registry: Registry;
  /** Observes the execution queue's finished jobs (duration by the execution's final status). */
  observe(worker: Worker): void;
  /** Writes a snapshot now. */
  publish(): Promise<void>;
  /** Stops publishing and removes this worker's snapshot. */
  close(): Promise<void>;
}

export function startWorkerMetrics(opts: WorkerMetricsOptions): WorkerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ worker: opts.workerId });
  const intervalMs = opts.intervalMs ?? 5000;
  const ttlMs = intervalMs * 3;

  new Gauge({
    name: "codeinterp_kernels_pool_available",
    help: "Pre-started kernels ready in this worker's pool",
    registers: [registry],
    collect() {
      this.set(opts.poolAvailable());
    },
  });
  new Gauge({
    name: "codeinterp_kernels_pool_target",
    help: "Kernels the worker keeps pre-started now (KERNEL_POOL_SIZE, raised by the recent rate of new messages)",
    registers: [registry],
    collect() {
      this.set(opts.poolTarget());
    },
  });
  new Gauge({
    name: "codeinterp_kernels_in_use",
    help: "Kernels running an execution in this worker right now",
    registers: [registry],
    collect() {
      this.set(opts.inUse());
    },
  });
  new Gauge({
    name: "codeinterp_worker_concurrency",
    help: "Executions a worker runs at once from each of its two queues, the shared one and its cell's (WORKER_CONCURRENCY)",
    registers: [registry],
  }).set(opts.concurrency);
  new Gauge({
    name: "codeinterp_kernels_live",
    help: "Live kernels of the whole deployment (message and pool kernels), as counted under the ceiling",
    registers: [registry],
    async collect() {
      this.set(await opts.liveKernels());
    },
  });
  new Gauge({
    name: "codeinterp_kernels_live_max",
    help: "The ceiling on live kernels (MAX_LIVE_KERNELS)",
    registers: [registry],
  }).set(opts.maxLiveKernels);
  const evictions = new Counter({
    name: "codeinterp_kernel_evictions_total",
    help:
      "Idle kernels this worker shut down: for a new kernel (reason=ceiling: no room under the ceiling or in " +
      "memory) or because the kernels' memory in use passed the high watermark (reason=memory)",
    labelNames: ["reason"],
    registers: [registry],
  });
  if (opts.kernelsMemory) {
    const memory = opts.kernelsMemory;
    const gauge = (name: string, help: string, pick: (s: MemoryState) => number) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          const s = memory();
          if (s) this.set(pick(s));
        },
      });
    gauge(
      "codeinterp_kernels_memory_used_bytes",
      "Memory the kernels use together (their parent cgroup, less inactive page cache)",
      (s) => s.usedBytes,
    );
    gauge(
      "codeinterp_kernels_memory_budget_bytes",
      "The kernels' memory budget (their parent cgroup's cap)",
      (s) => s.budgetBytes,
    );
    gauge(
      "codeinterp_kernels_memory_high_watermark_bytes",
      "Above this idle kernels are evicted and no new kernel is admitted",
      (s) => s.highWatermarkBytes,
    );
    gauge(
      "codeinterp_host_memory_available_bytes",
      "The host's MemAvailable as admission last read it",
      (s) => s.hostAvailableBytes,
    );
  }
  const capacityWaits = new Counter({
    name: "codeinterp_kernel_capacity_waits_total",
    help: "Times an execution waited (queued) because no kernel could start: every kernel busy, or no room",
    registers: [registry],
  });
  opts.events.on("kernel:evicted", ({ reason }) => evictions.inc({ reason }));
  opts.events.on("turn:steppedAside", ({ reason }) => {
    if (reason === "capacity") capacityWaits.inc();
  });
  opts.events.on("kernel:waitedForRoom", () => capacityWaits.inc());
  if (opts.gateway) {
    const health = opts.gateway;
    new Gauge({
      name: "codeinterp_gateway_up",
      help: "1 while the kernel gateway answers this worker's liveness probe, 0 while it is unresponsive",
      registers: [registry],
      collect() {
        this.set(health().reachable ? 1 : 0);
      },
    });
    let counted = 0;
    new Counter({
      name: "codeinterp_gateway_restarts_total",
      help: "Kernel gateway restarts this worker saw (the server's start time changed; its kernels were lost)",
      registers: [registry],
      collect() {
        const n = health().restarts;
        if (n > counted) this.inc(n - counted);
        counted = n;
      },
    });
  }
  const duration = new Histogram({
    name: "codeinterp_job_duration_seconds",
    help: "Time a worker spent on an execution job (one attempt), by the execution's final status; error = the attempt threw (retried or failed)",
    labelNames: ["status"],
    buckets: JOB_DURATION_BUCKETS,
    registers: [registry],
  });

  const key = workerMetricsKey(opts.prefix, opts.workerId);
  const index = workerMetricsIndex(opts.prefix);
  let closed = false;
  let pending: Promise<void> | null = null;

  const write = async () => {
    const snapshot = JSON.stringify({
      workerId: opts.workerId,
      at: Date.now(),
      metrics: await registry.getMetricsAsJSON(),
    });
    if (closed) return;
    await opts.redis
      .multi()
      .set(key, snapshot, "PX", ttlMs)
      .zadd(index, Date.now() + ttlMs, opts.workerId)
      .exec();
  };
  const publish = () =>
    (pending ??= write()
      .catch((err: unknown) => opts.log.debug({ err: normalizeError(err).message }, "could not publish worker metrics"))
      .finally(() => {
        pending = null;
      }));

  const timer = setInterval(() => void publish(), intervalMs);
  timer.unref();
  void publish();
  // A snapshot costs a collect (with a Redis read), a serialization and a Redis write, ~1.3 CPU-ms: written
  // after every job it was about a twentieth of the worker's CPU for a print(1). Jobs ending close together
  // share one.
  const jobEndDelayMs = opts.jobEndDelayMs ?? 500;
  let soon: NodeJS.Timeout | null = null;
  const publishSoon = () => {
    soon ??= setTimeout(() => {
      soon = null;
      void publish();
    }, jobEndDelayMs);
    soon.unref();
  };

  const seconds = (job: Job | undefined) =>
    job?.processedOn ? Math.max(0, (job.finishedOn ?? Date.now()) - job.processedOn) / 1000 : null;

  return {
    registry,
    observe(worker) {
      worker.on("completed", (job: Job, result: unknown) => {
        const s = seconds(job);
        if (s === null) return;
        duration.observe({ status: typeof result === "string" ? result : "unknown" }, s);
        publishSoon();
      });
      worker.on("failed", (job: Job | undefined) => {
        const s = seconds(job);
        if (s === null) return;
        duration.observe({ status: "error" }, s);
        publishSoon();
      });
    },
    publish,
    async close() {
      clearInterval(timer);
      if (soon) clearTimeout(soon);
      closed = true;
      await pending;
      await opts.redis
        .multi()
        .del(key)
        .zrem(index, opts.workerId)
        .exec()
        // Stopping: the snapshot key expires on its own (its TTL is three intervals).
        .catch(() => undefined);
    },
  };
}
