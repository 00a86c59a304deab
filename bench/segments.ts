// Issue 13: where the time of an execution goes, segment by segment, from what the worker records with
// each execution (metrics: prepare, acquire, run, capture) and its timestamps (queue wait before the worker
// started it, finish after capture until the terminal status was written).
import type { Db } from "@codeinterp/db";
import { summarize } from "./stats";
import type { Summary } from "./stats";

export type Segments = Record<
  "queue_wait" | "prepare" | "acquire" | "run" | "capture" | "finish" | "worker_total",
  Summary
>;

interface Recorded {
  queueWaitMs?: number;
  prepareMs?: number;
  kernelAcquireMs?: number;
  runMs?: number;
  captureMs?: number;
}

/**
 * Per-segment summaries of each message's executions by their order: `names[i]` summarizes every message's
 * execution number i (in creation order); later ones are left out.
 */
export async function executionSegments<N extends string>(
  db: Db,
  messageIds: string[],
  names: readonly N[],
): Promise<Record<N, Segments>> {
  const execs = await db.execution.findMany({
    where: { messageId: { in: messageIds } },
    orderBy: { createdAt: "asc" },
    select: { messageId: true, metrics: true, startedAt: true, finishedAt: true },
  });
  const seen = new Map<string, number>();
  const rows = names.map(() => [] as Array<Record<keyof Segments, number>>);
  for (const e of execs) {
    const i = seen.get(e.messageId) ?? 0;
    seen.set(e.messageId, i + 1);
    const m = (e.metrics ?? {}) as Recorded;
    if (!e.startedAt || !e.finishedAt) continue;
    const total = e.finishedAt.getTime() - e.startedAt.getTime();
    const parts = {
      prepare: m.prepareMs ?? 0,
      acquire: m.kernelAcquireMs ?? 0,
      run: m.runMs ?? 0,
      capture: m.captureMs ?? 0,
    };
    rows[i]?.push({
      queue_wait: m.queueWaitMs ?? 0,
      ...parts,
      finish: total - parts.prepare - parts.acquire - parts.run - parts.capture,
      worker_total: total,
    });
  }
  const summarizeAll = (r: Array<Record<keyof Segments, number>>) =>
    Object.fromEntries(
      (["queue_wait", "prepare", "acquire", "run", "capture", "finish", "worker_total"] as const).map((k) => [
        k,
        summarize(r.map((x) => x[k])),
      ]),
    ) as Segments;
  return Object.fromEntries(names.map((n, i) => [n, summarizeAll(rows[i]!)])) as Record<N, Segments>;
}
