// New messages as users send them: arrivals that never wait for the system to be ready (Poisson at 0.5/s and
// 2/s, a burst of 20 in 5 s), each a new user's message with a 5,000-row CSV attached and issue 13's first
// analysis (pandas read + groupby + matplotlib chart + to_excel); half of them (seeded) ask a follow-up right
// after, which must still find the message's variables. Reported: first-analysis p50/p90, the share served
// by a ready pool kernel (the worker's `pooledKernel` metric on the execution), follow-ups that lost their
// variables, and the pool's size and the host's MemAvailable over the run.
import { analysis, salesCsv } from "../analysis";
import { burstSchedule, poissonSchedule, seededRandom } from "../arrival-times";
import type { Bench, Json, Params } from "../context";
import { sleep, sum } from "../context";
import { settlePool, startSampler, summarizeSamples, timelineColumns } from "../system-sampler";
import { median, now, percentile, round, summarize } from "../stats";
import { createUsers } from "../users";

export interface ArrivalRun {
  /** Its name for --only and in the results. */
  name: string;
  label: string;
  kind: "poisson" | "burst";
  ratePerS?: number;
  count: (P: Params) => number;
  seed: number;
  /** Targets from issue 21 (ms), where it sets them. */
  p50TargetMs?: number;
  p90TargetMs?: number;
}

export const ARRIVAL_RUNS: ArrivalRun[] = [
  {
    name: "arrivals-0.5",
    label: "Poisson 0.5/s",
    kind: "poisson",
    ratePerS: 0.5,
    count: (P) => P.arrivalsSlowN,
    seed: 2105,
    p50TargetMs: 300,
    p90TargetMs: 600,
  },
  {
    name: "arrivals-2",
    label: "Poisson 2/s",
    kind: "poisson",
    ratePerS: 2,
    count: (P) => P.arrivalsFastN,
    seed: 2120,
    p50TargetMs: 500,
  },
  { name: "burst-20", label: "burst of 20 in 5 s", kind: "burst", count: (P) => P.burstN, seed: 2199 },
];

/** Share of arrivals that ask a follow-up right after their first analysis. */
const FOLLOWUP_SHARE = 0.5;

/** Uses the first analysis's variables; prints LOST when they are gone. */
const FOLLOWUP = `try:
    by_product = df.groupby("product")["units"].sum()
    print("KEPT", len(df), len(by_product))
except NameError:
    print("LOST")
`;

interface Arrival {
  i: number;
  atMs: number;
  followup: boolean;
  lateStartMs?: number;
  firstId?: string;
  firstStatus?: string;
  firstMs?: number;
  firstOk?: boolean;
  followupId?: string;
  followupStatus?: string;
  followupMs?: number;
  followupKept?: boolean;
  followupLost?: boolean;
  followupResetNote?: boolean;
  timedOut?: boolean;
  error?: string;
}

export async function arrivals(b: Bench, run: ArrivalRun): Promise<void> {
  const n = run.count(b.P);
  const rnd = seededRandom(run.seed);
  const schedule =
    run.kind === "burst" ? burstSchedule(n, b.P.burstSeconds, rnd) : poissonSchedule(n, run.ratePerS!, rnd);
  const followRnd = seededRandom(run.seed + 1);
  const plan: Arrival[] = schedule.map((atMs, i) => ({ i, atMs, followup: followRnd() < FOLLOWUP_SHARE }));
  const users = await createUsers(b, run.name.replace(/[^a-z0-9]/g, ""), n);
  const csv = salesCsv(5000);
  const code = analysis("/mnt/data");
  // The stack is fresh: let its pool fill once (as a deployment would be before traffic), then never wait again.
  const settled = await settlePool(b);
  const spanMs = schedule[schedule.length - 1] ?? 0;
  // Bounded: every execution ends by this deadline or is cancelled and counted as timed out.
  const deadline = Date.now() + spanMs + (b.quick ? 180_000 : 300_000);
  b.log(
    `${run.name}: ${n} new messages (${run.label}, offered over ${round(spanMs / 1000, 1)} s), ${plan.filter((p) => p.followup).length} with a follow-up; pool at ${settled.pool}/${settled.target} after ${settled.ms} ms`,
  );
  const sampler = startSampler(b);
  const t0 = now();
  await Promise.all(
    plan.map(async (a) => {
      await sleep(Math.max(0, a.atMs - (now() - t0)));
      a.lateStartMs = now() - t0 - a.atMs;
      const user = users[a.i]!;
      const messageId = b.msg(run.name);
      try {
        const fileId = await user.ci.upload("sales.csv", csv, "text/csv");
        const first = await user.ci.runBounded({ messageId, fileIds: [fileId], code }, deadline);
        a.firstId = first.exec.id;
        a.firstStatus = first.exec.status;
        a.firstMs = first.ms;
        a.firstOk = first.exec.result?.stdout === "5000\n";
        a.timedOut = first.timedOut;
        if (!a.followup || !a.firstOk) return;
        const next = await user.ci.runBounded({ messageId, code: FOLLOWUP }, deadline);
        a.followupId = next.exec.id;
        a.followupStatus = next.exec.status;
        a.followupMs = next.ms;
        a.followupKept = next.exec.result?.stdout.startsWith("KEPT ") === true;
        a.followupLost = next.exec.result?.stdout.startsWith("LOST") === true;
        a.followupResetNote = (next.exec.result?.notes ?? []).some((x) => /variables from earlier/.test(x));
        a.timedOut ||= next.timedOut;
      } catch (err) {
        a.error = (err as Error).message;
      }
    }),
  );
  const wallS = (now() - t0) / 1000;
  await sampler.stop();

  const firstIds = plan.flatMap((a) => (a.firstId ? [a.firstId] : []));
  const m = await b.metricsOf(firstIds);
  const ok = plan.filter((a) => a.firstOk);
  const firstMs = ok.map((a) => a.firstMs!);
  const pooled = ok.filter((a) => m.get(a.firstId!)?.pooledKernel === true);
  const cold = ok.filter((a) => m.get(a.firstId!)?.pooledKernel === false);
  // How each first execution got its kernel. Today the worker records `pooledKernel` (true: taken ready from
  // the pool; false: started cold in a place under the ceiling); a `kernelOrigin` it records is counted as is.
  const origins: Record<string, number> = {};
  for (const a of ok) {
    const mm = m.get(a.firstId!);
    const origin =
      mm?.kernelOrigin !== undefined ? String(mm.kernelOrigin) : mm?.pooledKernel === true ? "pool" : "started";
    origins[origin] = (origins[origin] ?? 0) + 1;
  }
  const asked = plan.filter((a) => a.followupId);
  const lost = asked.filter((a) => a.followupLost);
  const followFailed = asked.filter((a) => !a.followupKept && !a.followupLost);
  const stage = (k: string) => round(median(ok.map((a) => Number(m.get(a.firstId!)?.[k])).filter(Number.isFinite)), 1);
  const statuses: Record<string, number> = {};
  for (const a of plan) {
    const s = a.error ? "error" : a.timedOut ? "timed_out_in_bench" : (a.firstStatus ?? "none");
    statuses[s] = (statuses[s] ?? 0) + 1;
  }
  const p50 = percentile(firstMs, 50);
  const p90 = percentile(firstMs, 90);
  const out: Json = {
    label: run.label,
    seed: run.seed,
    new_messages: n,
    offered_span_s: round(spanMs / 1000, 1),
    offered_rate_per_s: round(n / Math.max(spanMs / 1000, 0.001), 2),
    wall_s: round(wallS, 1),
    pool_kernels_at_start: settled.pool,
    max_late_start_ms: round(Math.max(...plan.map((a) => a.lateStartMs ?? 0)), 1),
    first_statuses: statuses,
    first_analysis_ok: ok.length,
    first_analysis_p50_ms: round(p50, 0),
    first_analysis_p90_ms: round(percentile(firstMs, 90), 0),
    first_analysis: sum(summarize(firstMs)),
    served_by_a_ready_pool_kernel: pooled.length,
    started_cold: cold.length,
    kernel_origins: origins,
    pool_kernel_share: ok.length ? round(pooled.length / ok.length, 2) : null,
    first_analysis_pool_kernel_p50_ms: round(median(pooled.map((a) => a.firstMs!)), 0),
    first_analysis_cold_start_p50_ms: round(median(cold.map((a) => a.firstMs!)), 0),
    first_execution_stages_p50_ms: {
      queueWaitMs: stage("queueWaitMs"),
      kernelAcquireMs: stage("kernelAcquireMs"),
      runMs: stage("runMs"),
      captureMs: stage("captureMs"),
    },
    followups_asked: asked.length,
    followups_lost_variables: lost.length,
    followups_failed_otherwise: followFailed.length,
    followups_with_state_reset_note: asked.filter((a) => a.followupResetNote).length,
    followup_p50_ms: round(median(asked.map((a) => a.followupMs!)), 0),
    errors: plan.flatMap((a) => (a.error ? [a.error] : [])).slice(0, 5),
    system: summarizeSamples(sampler.samples),
    timeline: timelineColumns(sampler.samples),
    per_arrival: plan.map((a) => ({
      at_s: round(a.atMs / 1000, 2),
      first_ms: a.firstMs === undefined ? null : round(a.firstMs, 0),
      pooled: a.firstId ? (m.get(a.firstId)?.pooledKernel ?? null) : null,
      status: a.firstStatus ?? null,
      followup_kept: a.followupId ? a.followupKept : null,
    })),
  };
  const all = (b.results.arrivals ??= {}) as Json;
  all[run.name] = out;
  const key = run.name.replace(/[^a-z0-9]+/g, "_");
  b.results[`${key}_first_analysis_p50_ms`] = out.first_analysis_p50_ms;
  b.results[`${key}_first_analysis_p90_ms`] = out.first_analysis_p90_ms;
  b.results[`${key}_pool_kernel_share`] = out.pool_kernel_share;
  b.results[`${key}_followups_lost_variables`] = lost.length;
  const sys = out.system as ReturnType<typeof summarizeSamples>;
  b.log(
    `${run.name}: first analysis p50 ${round(p50, 0)} ms, p90 ${round(p90, 0)} ms (${ok.length}/${n} ok); pool kernel ${pooled.length}/${ok.length}; follow-ups lost ${lost.length}/${asked.length}; pool kernels min/mean ${sys.pool_kernels_admin?.min}/${sys.pool_kernels_admin?.mean}; MemAvailable min ${sys.mem_available_gib?.min} GiB`,
  );
  const value = `p50 ${round(p50, 0)} ms, p90 ${round(p90, 0)} ms; pool ${pooled.length}/${ok.length}`;
  if (run.p50TargetMs !== undefined) {
    const p90Ok = run.p90TargetMs === undefined || p90 <= run.p90TargetMs;
    b.target(
      `first analysis, ${run.label} arrivals`,
      `p50 ≤ ${run.p50TargetMs}${run.p90TargetMs ? `, p90 ≤ ${run.p90TargetMs}` : ""} ms`,
      value,
      ok.length === n && p50 <= run.p50TargetMs && p90Ok,
    );
  } else b.target(`first analysis, ${run.label}`, "reported", value, null);
  b.target(
    `follow-ups keep their variables, ${run.label}`,
    "0 lost",
    `${lost.length} of ${asked.length} lost${followFailed.length ? `, ${followFailed.length} failed` : ""}`,
    asked.length > 0 && lost.length === 0 && followFailed.length === 0,
  );
}
