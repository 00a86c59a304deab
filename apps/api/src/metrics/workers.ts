import type { MetricObjectWithValues, MetricValue } from "prom-client";
import { readLiveEntries, workerMetricsIndex, workerMetricsKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";

export type WorkerMetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export interface WorkerSnapshot {
  workerId: string;
  at: number;
  metrics: WorkerMetricsJson;
}

/**
 * The latest metrics snapshot of every worker still alive (its key has not expired). Entries of workers
 * that vanished without cleaning up are dropped from the index here. Only `codeinterp_*` metrics are taken:
 * what is in Redis is data, not trusted to be well-formed.
 */
export async function readWorkerSnapshots(redis: Redis, prefix: string): Promise<WorkerSnapshot[]> {
  const out: WorkerSnapshot[] = [];
  for (const raw of await readLiveEntries(redis, workerMetricsIndex(prefix), (id) => workerMetricsKey(prefix, id))) {
    try {
      const parsed = JSON.parse(raw) as Partial<WorkerSnapshot>;
      if (typeof parsed.workerId !== "string" || !Array.isArray(parsed.metrics)) continue;
      const metrics = parsed.metrics.filter(
        (m) =>
          typeof m?.name === "string" &&
          m.name.startsWith("codeinterp_") &&
          typeof m.help === "string" &&
          typeof m.type === "string" &&
          Array.isArray(m.values),
      );
      out.push({ workerId: parsed.workerId, at: Number(parsed.at) || 0, metrics });
    } catch {
      // A half-written or foreign value: skip it.
    }
  }
  return out;
}
