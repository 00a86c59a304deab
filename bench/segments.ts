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

/** Per-segment summaries of the first and of the later executions of the given messages. */
export async function executionSegments(
  db: Db,
  messageIds: string[],
): Promise<{ first: Segments; followup: Segments }> {
  const execs = await db.execution.findMany({
    where: { messageId: { in: messageIds } },
    orderBy: { createdAt: "asc" },
    select: { messageId: true, metrics: true, startedAt: true, finishedAt: true },
  });
  const seen = new Set<string>();
  const rows = {
    first: [] as Array<Record<keyof Segments, number>>,
    followup: [] as Array<Record<keyof Segments, number>>,
  };
  for (const e of execs) {
    const m = (e.metrics ?? {}) as Recorded;
    if (!e.startedAt || !e.finishedAt) continue;
    const total = e.finishedAt.getTime() - e.startedAt.getTime();
    const parts = {
      prepare: m.prepareMs ?? 0,
      acquire: m.kernelAcquireMs ?? 0,
      run: m.runMs ?? 0,
      capture: m.captureMs ?? 0,
    };
    const row = {
      queue_wait: m.queueWaitMs ?? 0,
      ...parts,
      finish: total - parts.prepare - parts.acquire - parts.run - parts.capture,
      worker_total: total,
    };
    (seen.has(e.messageId) ? rows.followup : rows.first).push(row);
    seen.add(e.messageId);
  }
  const summarizeAll = (r: Array<Record<keyof Segments, number>>) =>
    Object.fromEntries(
      (["queue_wait", "prepare", "acquire", "run", "capture", "finish", "worker_total"] as const).map((k) => [
        k,
        summarize(r.map((x) => x[k])),
      ]),
    ) as Segments;
  return { first: summarizeAll(rows.first), followup: summarizeAll(rows.followup) };
}
