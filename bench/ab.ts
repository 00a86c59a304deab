// The warm path of two checkouts side by side in one run: `npm run bench:ab -- --base <checkout>` starts this
// checkout's stack and the base checkout's (each with its own Jupyter server, started by its own checkout's bench,
// Redis and database; the base needs its dependencies installed and a bench/child.ts that counts, as this one's),
// then drives them in alternating blocks (ABBA) so that a noisy minute on a shared machine hits both alike. Per
// side: the raw kernel on its own Jupyter server, `print(1)` submitted then long-polled (two requests) and
// submitted with ?waitMs (one request; a base that does not wait on submit answers 202 and is long-polled), one
// request sent after the box went idle (as users send follow-ups) next to the raw kernel after the same pause,
// CPU, Postgres statements and Redis commands per execution, throughput at concurrency 4, and issue 13's analysis
// (pandas, a chart and an xlsx on an attached 5,000-row CSV) as a follow-up in its message next to the raw kernel.
// Options: --base DIR (required), --blocks N (default 6 blocks of 20 per path), --json FILE.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { KernelSession } from "@codeinterp/kernel";
import type { Json, Target } from "./context";
import { KERNELS, QUICK } from "./context";
import { describeProfile, profiler } from "./profile";
import type { ExecProfile, Profiler } from "./profile";
import { analysis, placeSalesCsv, runIn, ok } from "./analysis";
import { PAUSE_MS, pausedPrints } from "./paused";
import { expectOk } from "./raw-kernel";
import { machine } from "./report";
import { startStack } from "./stack";
import type { Stack } from "./stack";
import { median, now, round, summarize } from "./stats";

const argv = process.argv.slice(2);
const argAfter = (flag: string) => {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
};
const baseDir = argAfter("--base");
if (!baseDir) {
  console.error("usage: npm run bench:ab -- --base <checkout> [--blocks N] [--json FILE]");
  process.exit(2);
}
const blocks = Number(argAfter("--blocks") ?? 6);
const jsonOut = argAfter("--json");
const BLOCK = 20;
/** Analysis follow-ups per block and flow (each ~100 ms of pandas and matplotlib); each step leads twice. */
const ANALYSIS_BLOCK = 6;
/** `print(1)`s per block sent as users send follow-ups, after a pause (bench/paused.ts), and as many raw. */
const PAUSED_BLOCK = 8;
const log = (msg: string) => console.error(`[bench:ab] ${msg}`);

interface Side {
  name: "base" | "head";
  stack: Stack;
  raw: KernelSession;
  messageId: string;
  ms: {
    raw: number[];
    twoRequests: number[];
    oneRequest: number[];
    paused: { raw: number[]; oneRequest: number[] };
  };
  prof: { twoRequests: Profiler; oneRequest: Profiler; analysis: Profiler };
  analysis: { messageId: string; plainDir: string; raw: number[]; twoRequests: number[]; oneRequest: number[] };
  tput: { raw: number[]; codeinterp: number[]; prof: Profiler; n: number };
}

async function open(name: Side["name"], checkout: string | undefined): Promise<Side> {
  const stack = await startStack({
    quick: true,
    P: QUICK,
    results: {},
    targets: [] as Target[],
    log: (m) => log(`${name}: ${m}`),
    config: "bench",
    traversableRoot: false,
    dbName: `codeinterp_bench_ab_${name}`,
    ...(checkout ? { checkout } : {}),
  });
  const raw = await stack.gateway.startKernel();
  const messageId = stack.msg("ab");
  for (let i = 0; i < 10; i++) {
    await expectOk(raw, "print(1)");
    await stack.ci.run({ messageId, code: "print(1)" });
    await stack.ci.runWaiting({ messageId, code: "print(1)" });
  }
  // The analysis message's first execution (the attachment, a pool kernel); the blocks measure its follow-ups.
  const { fileId, plainDir } = await placeSalesCsv(stack.ci, stack.root);
  const analysisMessage = stack.msg("ab-analysis");
  const poolBefore = await stack.poolSize();
  const first = await stack.ci.run({ messageId: analysisMessage, fileIds: [fileId], code: analysis("/mnt/data") });
  ok(`${name}: first analysis`, first.exec.result?.stdout);
  await runIn(raw, analysis(plainDir), `${name}: raw analysis`);
  // The pool replaces the kernel the first execution took before any block runs (a base that keeps its pool
  // records elsewhere shows none: its refill is over while the other side starts).
  if (poolBefore > 0) await stack.poolReady(poolBefore);
  return {
    name,
    stack,
    raw,
    messageId,
    ms: { raw: [], twoRequests: [], oneRequest: [], paused: { raw: [], oneRequest: [] } },
    prof: { twoRequests: profiler(stack), oneRequest: profiler(stack), analysis: profiler(stack) },
    analysis: { messageId: analysisMessage, plainDir, raw: [], twoRequests: [], oneRequest: [] },
    tput: { raw: [], codeinterp: [], prof: profiler(stack), n: 0 },
  };
}

async function latencyBlock(s: Side): Promise<void> {
  for (let i = 0; i < BLOCK; i++) {
    const a = now();
    await expectOk(s.raw, "print(1)");
    s.ms.raw.push(now() - a);
  }
  await s.prof.twoRequests.around(async () => {
    for (let i = 0; i < BLOCK; i++) {
      const r = await s.stack.ci.run({ messageId: s.messageId, code: "print(1)" });
      if (r.exec.status !== "completed") throw new Error(`${s.name}: run ended ${r.exec.status}`);
      s.ms.twoRequests.push(r.ms);
    }
  });
  await s.prof.oneRequest.around(async () => {
    for (let i = 0; i < BLOCK; i++) {
      const r = await s.stack.ci.runWaiting({ messageId: s.messageId, code: "print(1)" });
      if (r.exec.status !== "completed") throw new Error(`${s.name}: run ended ${r.exec.status}`);
      s.ms.oneRequest.push(r.ms);
    }
  });
  await pausedPrints(s.raw, s.stack.ci, s.messageId, PAUSED_BLOCK, s.ms.paused, s.name);
}

/**
 * Analysis follow-ups, two requests and one, with the raw kernel's run of the same code between them; which
 * goes first turns each time (on this VM the first run after a pause is slower).
 */
async function analysisBlock(s: Side): Promise<void> {
  const a = s.analysis;
  const code = analysis("/mnt/data");
  const steps = [
    async () => {
      const t = now();
      await runIn(s.raw, analysis(a.plainDir), `${s.name}: raw analysis`);
      a.raw.push(now() - t);
    },
    async () => {
      const r = await s.prof.analysis.around(() => s.stack.ci.run({ messageId: a.messageId, code }));
      ok(`${s.name}: follow-up analysis`, r.exec.result?.stdout);
      a.twoRequests.push(r.ms);
    },
    async () => {
      const r = await s.stack.ci.runWaiting({ messageId: a.messageId, code });
      ok(`${s.name}: follow-up analysis`, r.exec.result?.stdout);
      a.oneRequest.push(r.ms);
    },
  ];
  for (let i = 0; i < ANALYSIS_BLOCK; i++) {
    const k = i % steps.length;
    for (const step of [...steps.slice(k), ...steps.slice(0, k)]) await step();
  }
}

/** One round at concurrency KERNELS: raw kernels, then codeinterp (one message per kernel, two requests each). */
async function throughputRound(s: Side, sessions: KernelSession[], msgs: string[], per: number): Promise<void> {
  let a = now();
  await Promise.all(
    sessions.map(async (k) => {
      for (let i = 0; i < per; i++) await expectOk(k, "print(1)");
    }),
  );
  s.tput.raw.push((per * KERNELS) / ((now() - a) / 1000));
  a = now();
  await s.tput.prof.around(() =>
    Promise.all(
      msgs.map(async (m) => {
        for (let i = 0; i < per; i++) {
          const r = await s.stack.ci.run({ messageId: m, code: "print(1)" });
          if (r.exec.status !== "completed") throw new Error(`${s.name}: throughput run ended ${r.exec.status}`);
        }
      }),
    ),
  );
  s.tput.codeinterp.push((per * KERNELS) / ((now() - a) / 1000));
  s.tput.n += per * KERNELS;
}

function report(
  s: Side,
  profiles: { twoRequests: ExecProfile; oneRequest: ExecProfile; throughput: ExecProfile; analysis: ExecProfile },
) {
  const raw = summarize(s.ms.raw);
  const two = summarize(s.ms.twoRequests);
  const one = summarize(s.ms.oneRequest);
  const rawPaused = summarize(s.ms.paused.raw);
  const onePaused = summarize(s.ms.paused.oneRequest);
  const tputRaw = median(s.tput.raw);
  const tputCi = median(s.tput.codeinterp);
  const aRaw = summarize(s.analysis.raw);
  const aTwo = summarize(s.analysis.twoRequests);
  const aOne = summarize(s.analysis.oneRequest);
  return {
    raw_p50_ms: round(raw.p50, 2),
    two_requests_p50_ms: round(two.p50, 2),
    two_requests_p95_ms: round(two.p95, 2),
    two_requests_over_raw_ms: round(two.p50 - raw.p50, 2),
    one_request_p50_ms: round(one.p50, 2),
    one_request_p95_ms: round(one.p95, 2),
    one_request_over_raw_ms: round(one.p50 - raw.p50, 2),
    raw_after_pause_p50_ms: round(rawPaused.p50, 2),
    one_request_after_pause_p50_ms: round(onePaused.p50, 2),
    one_request_after_pause_over_raw_ms: round(onePaused.p50 - rawPaused.p50, 2),
    throughput_exec_per_s: round(tputCi, 1),
    throughput_raw_exec_per_s: round(tputRaw, 1),
    throughput_ratio: round(tputCi / tputRaw, 3),
    analysis_raw_p50_ms: round(aRaw.p50, 1),
    analysis_followup_two_requests_p50_ms: round(aTwo.p50, 1),
    analysis_followup_two_requests_over_raw_ms: round(aTwo.p50 - aRaw.p50, 1),
    analysis_followup_one_request_p50_ms: round(aOne.p50, 1),
    analysis_followup_one_request_over_raw_ms: round(aOne.p50 - aRaw.p50, 1),
    profile_two_requests: profiles.twoRequests,
    profile_one_request: profiles.oneRequest,
    profile_throughput: profiles.throughput,
    profile_analysis_followup_two_requests: profiles.analysis,
  };
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const results: Json = { machine: machine(), base: path.resolve(baseDir!), blocks, block: BLOCK };
  log(`base ${path.resolve(baseDir!)} vs this checkout; ${blocks} blocks of ${BLOCK} per path and side`);
  const sides: Side[] = [];
  try {
    sides.push(await open("base", path.resolve(baseDir!)));
    sides.push(await open("head", undefined));
    // ABBA: each side goes first in every other pair of blocks.
    for (let b = 0; b < blocks; b++) {
      const order = b % 2 === 0 ? sides : [...sides].reverse();
      for (const s of order) {
        await latencyBlock(s);
        await analysisBlock(s);
      }
      log(`latency and analysis block ${b + 1}/${blocks} done`);
    }
    const per = 10;
    const tputSetup = await Promise.all(
      sides.map(async (s) => {
        const sessions = await Promise.all(Array.from({ length: KERNELS }, () => s.stack.gateway.startKernel()));
        for (const k of sessions) await expectOk(k, "print(1)");
        const msgs = Array.from({ length: KERNELS }, () => s.stack.msg("ab-tput"));
        await Promise.all(msgs.map((m) => s.stack.ci.run({ messageId: m, code: "print(1)" })));
        return { sessions, msgs };
      }),
    );
    for (let b = 0; b < blocks; b++) {
      const order = b % 2 === 0 ? [0, 1] : [1, 0];
      for (const i of order) await throughputRound(sides[i]!, tputSetup[i]!.sessions, tputSetup[i]!.msgs, per);
    }
    for (const t of tputSetup) await Promise.all(t.sessions.map((k) => k.shutdown()));
    for (const s of sides) {
      const profiles = {
        twoRequests: s.prof.twoRequests.result(s.ms.twoRequests.length),
        oneRequest: s.prof.oneRequest.result(s.ms.oneRequest.length),
        throughput: s.tput.prof.result(s.tput.n),
        analysis: s.prof.analysis.result(s.analysis.twoRequests.length),
      };
      results[s.name] = report(s, profiles);
      log(describeProfile(`${s.name}: per warm print(1), two requests`, profiles.twoRequests));
      log(describeProfile(`${s.name}: per warm print(1), one request`, profiles.oneRequest));
      log(describeProfile(`${s.name}: per print(1) at concurrency ${KERNELS}`, profiles.throughput));
      log(describeProfile(`${s.name}: per follow-up analysis, two requests`, profiles.analysis));
    }
  } finally {
    for (const s of sides) {
      s.prof.twoRequests.close();
      s.prof.oneRequest.close();
      s.prof.analysis.close();
      s.tput.prof.close();
      await s.raw.shutdown().catch(() => undefined);
      await s.stack.stop();
    }
  }
  results.elapsed_s = round((Date.now() - t0) / 1000, 1);
  const rows: Array<[string, string]> = [
    ["raw kernel print(1) p50 (ms)", "raw_p50_ms"],
    ["two requests p50 (ms)", "two_requests_p50_ms"],
    ["  over raw (ms)", "two_requests_over_raw_ms"],
    ["one request p50 (ms)", "one_request_p50_ms"],
    ["  over raw (ms)", "one_request_over_raw_ms"],
    [`raw kernel after ${PAUSE_MS} ms idle (ms)`, "raw_after_pause_p50_ms"],
    [`one request after ${PAUSE_MS} ms idle (ms)`, "one_request_after_pause_p50_ms"],
    ["  over raw (ms)", "one_request_after_pause_over_raw_ms"],
    ["throughput, 4 concurrent (exec/s)", "throughput_exec_per_s"],
    ["  raw kernels (exec/s)", "throughput_raw_exec_per_s"],
    ["  ratio", "throughput_ratio"],
    ["raw kernel analysis p50 (ms)", "analysis_raw_p50_ms"],
    ["follow-up analysis, two requests", "analysis_followup_two_requests_p50_ms"],
    ["  over raw (ms)", "analysis_followup_two_requests_over_raw_ms"],
    ["follow-up analysis, one request", "analysis_followup_one_request_p50_ms"],
    ["  over raw (ms)", "analysis_followup_one_request_over_raw_ms"],
  ];
  const side = (name: string) => results[name] as Record<string, unknown>;
  console.log(`\n${"".padEnd(36)}${"base".padStart(10)}${"head".padStart(10)}`);
  for (const [label, k] of rows)
    console.log(`${label.padEnd(36)}${String(side("base")[k]).padStart(10)}${String(side("head")[k]).padStart(10)}`);
  if (jsonOut) {
    await writeFile(jsonOut, JSON.stringify(results, null, 2));
    log(`wrote ${jsonOut}`);
  }
  log(`done in ${results.elapsed_s} s`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
