// Where an execution's time goes, hop by hop (issue 22: a regression shows which hop grew): client
// timestamps, the row's createdAt/startedAt/finishedAt, what the worker records with each execution (its
// metrics: prepare, acquire, run, capture) and the Redis stream id of `done` (its first part is a ms time on
// this machine's clock). The worker's other events are batched (up to 20 ms, and `preparing` goes out with
// `running`), so their stream ids say when a batch left, not when its events happened: no hop is timed by them.
import type { Db } from "@codeinterp/db";
import { createRedis, executionLogKey, parseExecutionRecord } from "./bench-deps";
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
    select: {
      id: true,
      createdAt: true,
      startedAt: true,
      finishedAt: true,
      result: true,
      failure: true,
      metrics: true,
    },
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
      const m = r && parseExecutionRecord(r).metrics;
      // Only an execution whose outcome was recorded has its metrics (one that failed before has none).
      if (!r?.startedAt || !r.finishedAt || !m) continue;
      let done: number | undefined;
      for (const [sid, fields] of await redis.xrange(executionLogKey(prefix, id), "-", "+")) {
        if (fields[1]?.includes('"type":"done"')) done = Number(sid.split("-")[0]);
      }
      const created = r.createdAt.getTime();
      const started = r.startedAt.getTime();
      const finished = r.finishedAt.getTime();
      const prepare = (m.prepareMs ?? 0) + (m.kernelAcquireMs ?? 0);
      const run = m.runMs ?? 0;
      const capture = m.captureMs ?? 0;
      add("1_client_submit_to_row_created (API in)", created - w.submit);
      add("2_row_created_to_202_received", w.posted - created);
      add("3_row_created_to_worker_started (queue, turn, read)", started - created);
      add("4_prepare_and_acquire (worker)", prepare);
      add("5_run (worker: code sent to outcome)", run);
      add("6_capture (worker)", capture);
      // The start statement, the cancel check, the finishing statement: what the worker spends around the above.
      add("7_worker_rest (started to finished, less 4-6)", finished - started - prepare - run - capture);
      if (done !== undefined) {
        add("8_row_finished_to_done_event", done - finished);
        add("9_done_event_to_client_has_result", w.end - done);
      }
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
