import { messagesOfKernels } from "@codeinterp/db";
import type { Db, KernelMessage } from "@codeinterp/db";
import { LIVE_KERNEL_START_PREFIX, cellKeyPrefix, knownCells, liveKernelsKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { readWorkerSnapshots } from "../metrics/workers";
import type { WorkerSnapshot } from "../metrics/workers";

export interface LiveKernelsReport {
  /** Kernels holding a place under the ceiling now (kernels being started included). */
  live: number;
  /** The ceiling (MAX_LIVE_KERNELS) as live workers report it; null without a live worker. */
  ceiling: number | null;
  /** Idle kernels shut down to make room, and waits at the ceiling, counted by the live workers since they started. */
  evictions: number;
  /** Of those, evictions because the kernels' memory in use passed the high watermark. */
  memoryEvictions: number;
  capacityWaits: number;
  /** Memory the kernels use together, their budget and the high watermark; null when admitted by count. */
  memory: { usedBytes: number; budgetBytes: number; highWatermarkBytes: number; hostAvailableBytes: number } | null;
  workers: number;
  kernels: Array<{ kernelId: string; leaseUntil: string; message: Omit<KernelMessage, "kernelId"> | null }>;
  /** Places reserved for kernels being started right now. */
  starting: number;
}

const sumOf = (snapshots: WorkerSnapshot[], name: string, labels: Record<string, string> = {}) =>
  snapshots
    .flatMap((s) =>
      s.metrics
        .filter((m) => m.name === name)
        .flatMap((m) =>
          m.values
            .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
            .map((v) => Number(v.value) || 0),
        ),
    )
    .reduce((a, b) => a + b, 0);

/** The kernels' memory as the workers last read it (they share one gateway: the freshest-looking is as good). */
function memoryOf(snapshots: WorkerSnapshot[]): LiveKernelsReport["memory"] {
  const usedBytes = maxOf(snapshots, "codeinterp_kernels_memory_used_bytes");
  const budgetBytes = maxOf(snapshots, "codeinterp_kernels_memory_budget_bytes");
  const highWatermarkBytes = maxOf(snapshots, "codeinterp_kernels_memory_high_watermark_bytes");
  const hostAvailableBytes = maxOf(snapshots, "codeinterp_host_memory_available_bytes");
  if (usedBytes === null || budgetBytes === null || highWatermarkBytes === null || hostAvailableBytes === null)
    return null;
  return { usedBytes, budgetBytes, highWatermarkBytes, hostAvailableBytes };
}

const maxOf = (snapshots: WorkerSnapshot[], name: string) => {
  const values = snapshots.flatMap((s) =>
    s.metrics.filter((m) => m.name === name).flatMap((m) => m.values.map((v) => Number(v.value))),
  );
  return values.length > 0 ? Math.max(...values) : null;
};

/**
 * The deployment's live kernels as the workers account for them in Redis (the leases under the ceiling),
 * each with the message it serves (from its latest execution; none yet: a pre-started pool kernel), and the
 * ceiling, evictions and waits from the workers' metrics snapshots.
 */
export async function readLiveKernels(deps: { db: Db; redis: Redis; queuePrefix: string }): Promise<LiveKernelsReport> {
  // Each cell accounts for its own gateway's kernels (packages/queue/src/cells.ts): the report sums the cells.
  const cells = await knownCells(deps.redis, deps.queuePrefix);
  const leases: Array<{ id: string; until: number }> = [];
  for (const cellId of cells) {
    const key = liveKernelsKey(cellKeyPrefix(deps.queuePrefix, cellId));
    const raw = await deps.redis.zrangebyscore(key, Date.now(), "+inf", "WITHSCORES");
    for (let i = 0; i + 1 < raw.length; i += 2) leases.push({ id: raw[i]!, until: Number(raw[i + 1]) });
  }
  const kernels = leases.filter((l) => !l.id.startsWith(LIVE_KERNEL_START_PREFIX));
  const [messages, snapshots] = await Promise.all([
    messagesOfKernels(
      deps.db,
      kernels.map((k) => k.id),
    ),
    readWorkerSnapshots(deps.redis, deps.queuePrefix),
  ]);
  const byKernel = new Map(messages.map(({ kernelId, ...m }) => [kernelId, m]));
  return {
    live: leases.length,
    ceiling: maxOf(snapshots, "codeinterp_kernels_live_max"),
    evictions: sumOf(snapshots, "codeinterp_kernel_evictions_total"),
    memoryEvictions: sumOf(snapshots, "codeinterp_kernel_evictions_total", { reason: "memory" }),
    memory: memoryOf(snapshots),
    capacityWaits: sumOf(snapshots, "codeinterp_kernel_capacity_waits_total"),
    workers: snapshots.length,
    kernels: kernels.map((k) => ({
      kernelId: k.id,
      leaseUntil: new Date(k.until).toISOString(),
      message: byKernel.get(k.id) ?? null,
    })),
    starting: leases.length - kernels.length,
  };
}
