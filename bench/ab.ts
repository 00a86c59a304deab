// The warm path of two checkouts side by side in one run: `npm run bench:ab -- --base <checkout>` starts this
// checkout's stack and the base checkout's (each with its own Jupyter server, Redis and database; the base
// needs its dependencies installed and a bench/child.ts that counts, as this one's), then drives them in
// alternating blocks (ABBA) so that a noisy minute on a shared machine hits both alike. Per side: the raw
// kernel on its own Jupyter server, `print(1)` submitted then long-polled (two requests) and submitted with
// ?waitMs (one request; a base that does not wait on submit answers 202 and is long-polled), CPU, Postgres
// statements and Redis commands per execution, and throughput at concurrency 4.
// Options: --base DIR (required), --blocks N (default 6 blocks of 20 per path), --json FILE.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import type { KernelSession } from "@codeinterp/kernel";
import type { Json, Target } from "./context";
import { KERNELS, QUICK } from "./context";
import { describeProfile, profiler } from "./profile";
import type { ExecProfile, Profiler } from "./profile";
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
const log = (msg: string) => console.error(`[bench:ab] ${msg}`);

interface Side {
  name: "base" | "head";
  stack: Stack;
  raw: KernelSession;
  messageId: string;
  ms: { raw: number[]; twoRequests: number[]; oneRequest: number[] };
  prof: { twoRequests: Profiler; oneRequest: Profiler };
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
  return {
    name,
    stack,
    raw,
    messageId,
    ms: { raw: [], twoRequests: [], oneRequest: [] },
    prof: { twoRequests: profiler(stack), oneRequest: profiler(stack) },
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

function report(s: Side, profiles: { twoRequests: ExecProfile; oneRequest: ExecProfile; throughput: ExecProfile }) {
  const raw = summarize(s.ms.raw);
  const two = summarize(s.ms.twoRequests);
  const one = summarize(s.ms.oneRequest);
  const tputRaw = median(s.tput.raw);
  const tputCi = median(s.tput.codeinterp);
  return {
    raw_p50_ms: round(raw.p50, 2),
    two_requests_p50_ms: round(two.p50, 2),
    two_requests_p95_ms: round(two.p95, 2),
    two_requests_over_raw_ms: round(two.p50 - raw.p50, 2),
    one_request_p50_ms: round(one.p50, 2),
    one_request_p95_ms: round(one.p95, 2),
    one_request_over_raw_ms: round(one.p50 - raw.p50, 2),
    throughput_exec_per_s: round(tputCi, 1),
    throughput_raw_exec_per_s: round(tputRaw, 1),
    throughput_ratio: round(tputCi / tputRaw, 3),
    profile_two_requests: profiles.twoRequests,
    profile_one_request: profiles.oneRequest,
    profile_throughput: profiles.throughput,
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
      for (const s of order) await latencyBlock(s);
      log(`latency block ${b + 1}/${blocks} done`);
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
      };
      results[s.name] = report(s, profiles);
      log(describeProfile(`${s.name}: per warm print(1), two requests`, profiles.twoRequests));
      log(describeProfile(`${s.name}: per warm print(1), one request`, profiles.oneRequest));
      log(describeProfile(`${s.name}: per print(1) at concurrency ${KERNELS}`, profiles.throughput));
    }
  } finally {
    for (const s of sides) {
      s.prof.twoRequests.close();
      s.prof.oneRequest.close();
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
    ["throughput, 4 concurrent (exec/s)", "throughput_exec_per_s"],
    ["  raw kernels (exec/s)", "throughput_raw_exec_per_s"],
    ["  ratio", "throughput_ratio"],
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
