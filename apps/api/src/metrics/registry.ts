import type { Queue } from "bullmq";
import { AggregatorRegistry, Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Db } from "@codeinterp/db";
import { ACTIVE_STATUSES, TERMINAL_STATUSES, countExecutionsByStatus, fileTotalsBySource } from "@codeinterp/db";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import { queueNames } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { readWorkerSnapshots } from "./workers";

export const QUEUE_STATES = ["waiting", "prioritized", "active", "delayed", "failed", "completed"] as const;

export interface MetricsSources {
  db: Db;
  redis: Redis;
  queuePrefix: string;
  /** Queues whose depth is reported (executions, maintenance). */
  queues: Queue[];
  /** The cells' own execution queues, counted into the executions queue's depth (a follow-up waits in one). */
  cellQueues?: () => Promise<Queue[]>;
  log: Logger;
}

export interface ApiMetrics {
  contentType: string;
  /** The Prometheus text: this API process, the cluster-wide numbers, and every live worker's snapshot. */
  render(): Promise<string>;
}

/**
 * One registry per app instance (never prom-client's global one), so several APIs in one process (the tests)
 * do not collide. Cluster-wide numbers (queue depth, executions, bytes) are read on scrape from BullMQ and
 * Postgres, so every API instance reports the same values: aggregate them with max(), not sum(), across
 * instances. Worker metrics come from the snapshots workers publish to Redis, labelled by `worker`.
 */
export function createApiMetrics(src: MetricsSources): ApiMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const sourceUp = new Gauge({
    name: "codeinterp_metrics_source_up",
    help: "Whether the last scrape could read a source of cluster-wide metrics (db, queue, workers)",
    labelNames: ["source"],
    registers: [registry],
  });
  const guard = async (source: string, fn: () => Promise<void>) => {
    try {
      await fn();
      sourceUp.set({ source }, 1);
    } catch (err) {
      sourceUp.set({ source }, 0);
      src.log.warn({ err: normalizeError(err).message, source }, "metrics source unavailable");
    }
  };

  new Gauge({
    name: "codeinterp_queue_jobs",
    help: "Jobs in a BullMQ queue by state",
    labelNames: ["queue", "state"],
    registers: [registry],
    async collect() {
      await guard("queue", async () => {
        const count = (qs: Queue[]) => Promise.all(qs.map((q) => q.getJobCounts(...QUEUE_STATES)));
        const [counts, cells] = await Promise.all([count(src.queues), src.cellQueues?.().then(count) ?? []]);
        this.reset();
        src.queues.forEach((q, i) => {
          for (const state of QUEUE_STATES) {
            const inCells = q.name === queueNames.executions ? cells.reduce((n, c) => n + (c[state] ?? 0), 0) : 0;
            this.set({ queue: q.name, state }, (counts[i]?.[state] ?? 0) + inCells);
          }
        });
      });
    },
  });

  // Executions by final status are counted in Postgres, not in-process: cancels (API), lost jobs (reconciler)
  // and workers all end executions, and a count survives every restart. Terminal rows are never deleted,
  // so the count only grows: a true counter. One GROUP BY on an indexed column per scrape.
  const executionsTotal = new Counter({
    name: "codeinterp_executions_total",
    help: "Executions that reached a final status (completed includes code that raised)",
    labelNames: ["status"],
    registers: [registry],
    collect: () => readExecutions(),
  });
  const executionsActive = new Gauge({
    name: "codeinterp_executions_in_progress",
    help: "Executions not finished yet, by status",
    labelNames: ["status"],
    registers: [registry],
    collect: () => readExecutions(),
  });
  // prom-client calls collect per metric; the metrics fed by one query share one read per scrape.
  let executionsRead: Promise<void> | null = null;
  const readExecutions = () =>
    (executionsRead ??= guard("db", async () => {
      const rows = await countExecutionsByStatus(src.db);
      const by = new Map(rows.map((r) => [r.status as string, r.count]));
      executionsTotal.reset();
      executionsActive.reset();
      for (const s of TERMINAL_STATUSES) executionsTotal.inc({ status: s }, by.get(s) ?? 0);
      for (const s of ACTIVE_STATUSES) executionsActive.set({ status: s }, by.get(s) ?? 0);
    }).finally(() => {
      executionsRead = null;
    }));

  // Bytes likewise from the files table: deleting a file only marks it deleted, so sums only grow.
  const uploaded = new Counter({
    name: "codeinterp_uploaded_bytes_total",
    help: "Bytes of files users uploaded",
    registers: [registry],
    collect: () => readFiles(),
  });
  const registered = new Counter({
    name: "codeinterp_registered_bytes_total",
    help: "Bytes of files executions produced and registered (generated: files written under /mnt/data; output: rich outputs such as plots)",
    labelNames: ["source"],
    registers: [registry],
    collect: () => readFiles(),
  });
  const files = new Counter({
    name: "codeinterp_files_total",
    help: "Files stored, by source (upload, generated, output)",
    labelNames: ["source"],
    registers: [registry],
    collect: () => readFiles(),
  });
  let filesRead: Promise<void> | null = null;
  const readFiles = () =>
    (filesRead ??= guard("db", async () => {
      const by = new Map((await fileTotalsBySource(src.db)).map((r) => [r.source as string, r]));
      uploaded.reset();
      registered.reset();
      files.reset();
      uploaded.inc(by.get("upload")?.bytes ?? 0);
      for (const source of ["generated", "output"]) registered.inc({ source }, by.get(source)?.bytes ?? 0);
      for (const source of ["upload", "generated", "output"]) files.inc({ source }, by.get(source)?.count ?? 0);
    }).finally(() => {
      filesRead = null;
    }));

  const workers = new Gauge({
    name: "codeinterp_workers",
    help: "Workers that published metrics within their TTL",
    registers: [registry],
  });
  const own = new Set(registry.getMetricsAsArray().map((m) => m.name));

  return {
    contentType: registry.contentType,
    async render() {
      let snapshots: Awaited<ReturnType<typeof readWorkerSnapshots>> = [];
      await guard("workers", async () => {
        snapshots = await readWorkerSnapshots(src.redis, src.queuePrefix);
      });
      workers.set(snapshots.length);
      let fromWorkers: Registry | null = null;
      try {
        // Each worker's values carry its own `worker` label, so nothing is summed: this is a union.
        fromWorkers = AggregatorRegistry.aggregate(snapshots.map((s) => s.metrics.filter((m) => !own.has(m.name))));
      } catch (err) {
        src.log.warn({ err: normalizeError(err).message }, "could not merge worker metrics");
      }
      return (fromWorkers ? Registry.merge([registry, fromWorkers]) : registry).metrics();
    },
  };
}
