import type { MetricObjectWithValues, MetricValue } from "prom-client";
import type { Redis } from "@codeinterp/queue";

// The layout apps/worker/src/metrics.ts writes (the apps share no code but the packages).
const workerKey = (prefix: string, workerId: string) => `${prefix}:metrics:worker:${workerId}`;
const workerIndex = (prefix: string) => `${prefix}:metrics:workers`;

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
  const now = Date.now();
  const index = workerIndex(prefix);
  await redis.zremrangebyscore(index, "-inf", now);
  const ids = await redis.zrangebyscore(index, now, "+inf");
  if (ids.length === 0) return [];
  const raws = await redis.mget(...ids.map((id) => workerKey(prefix, id)));
  const out: WorkerSnapshot[] = [];
  for (const raw of raws) {
    if (!raw) continue;
    try {
      const parsed = JSON.parse(raw) as Partial<WorkerSnapshot>;
      if (typeof parsed.workerId !== "string" || !Array.isArray(parsed.metrics)) continue;
      const metrics = parsed.metrics.filter(
        (m) => typeof m?.name === "string" && m.name.startsWith("codeinterp_") && typeof m.help === "string" && typeof m.type === "string" && Array.isArray(m.values),
      );
      out.push({ workerId: parsed.workerId, at: Number(parsed.at) || 0, metrics });
    } catch {
      // A half-written or foreign value: skip it.
    }
  }
  return out;
}
