// Where an execution's time goes, hop by hop (issue 22: a regression shows which hop grew): client
// timestamps, the row's createdAt/startedAt/finishedAt and the Redis stream ids of the worker's events
// (their first part is a ms time on this machine's clock). The worker holds `preparing` back to send it with
// `running` when preparation is quick (warm kernels), so hops 4 and 5 then read as one: see 4+5.
import type { Db } from "@codeinterp/db";
import { createRedis, executionLogKey } from "./bench-deps";
import { median, round, summarize } from "./stats";

export type Hops = Record<string, { p50: number; p95: number; n: number }>;

/** Medians of the segments of the warm path, from client, database and Redis event-log timestamps. */
export async function hopsOf(
  db: Db,
  redisUrl: string,
  prefix: string,
  ids: string[],
  wall: Array<{ submit: number; posted: number; end: number }>,
): Promise<Hops> {
  const rows = await db.execution.findMany({
    where: { id: { in: ids } },
    select: { id: true, createdAt: true, startedAt: true, finishedAt: true },
  });
  const byId = new Map(rows.map((r) => [r.id, r]));
  const redis = createRedis(redisUrl, { name: "bench" });
  const seg: Record<string, number[]> = {};
  const add = (k: string, v: number) => (seg[k] ??= []).push(v);
  try {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const w = wall[i]!;
      const r = byId.get(id);
      const log = await redis.xrange(executionLogKey(prefix, id), "-", "+");
      const at: Record<string, number> = {};
      for (const [sid, fields] of log) {
        const ms = Number(sid.split("-")[0]);
        const body = JSON.parse(fields[1] ?? "{}") as { type: string; status?: string };
        const k = body.type === "status" ? `status:${body.status}` : body.type;
        at[k] ??= ms;
      }
      if (!r?.startedAt) continue;
      const created = r.createdAt.getTime();
      const started = r.startedAt.getTime();
      const finished = r.finishedAt?.getTime();
      // Each hop where both of its ends were seen (an event the worker does not publish leaves its hop out).
      const hop = (k: string, from: number | undefined, to: number | undefined) => {
        if (from !== undefined && to !== undefined) add(k, to - from);
      };
      hop("1_client_submit_to_row_created", w.submit, created);
      hop("2_row_created_to_202_received", created, w.posted);
      hop("3_row_created_to_worker_started (queue)", created, started);
      hop("4_worker_started_to_preparing_event", started, at["status:preparing"]);
      hop("5_preparing_to_running_event (prepare+acquire)", at["status:preparing"], at["status:running"]);
      hop("4+5_worker_started_to_running_event", started, at["status:running"]);
      hop("6_running_to_first_stdout (run)", at["status:running"], at.stdout);
      hop("7a_stdout_to_row_finished (capture+record)", at.stdout, finished);
      hop("7b_row_finished_to_done_event", finished, at.done);
      hop("8_done_event_to_client_has_result", at.done, w.end);
      add("total_client", w.end - w.submit);
    }
  } finally {
    redis.disconnect();
  }
  return Object.fromEntries(
    Object.entries(seg).map(([k, v]) => [
      k,
      { p50: round(median(v), 1), p95: round(summarize(v).p95, 1), n: v.length },
    ]),
  );
}
