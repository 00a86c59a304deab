// codeinterp benchmark: latency, throughput, workspace preparation/capture and API load, side by side with
// the raw kernel (its floor) and a fresh kernel per execution (what it replaces), and what users see when
// new messages arrive without waiting for the system (arrivals, live messages holding state), in one run.
// Usage: npm run bench [-- --quick] [-- --json FILE] [-- --svg FILE] [-- --only containment,latency,mcp,...]   (see BENCHMARKS.md)
// One file per scenario under bench/scenarios/.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { renderChart } from "./chart";
import type { Bench, Json, Target } from "./context";
import { FULL, KERNELS, QUICK } from "./context";
import { machine, printTable } from "./report";
import { startStack } from "./stack";
import { round } from "./stats";
import { analysis } from "./scenarios/analysis";
import { arrivals, ARRIVAL_RUNS } from "./scenarios/arrivals";
import { bigFile } from "./scenarios/big-file";
import { capture } from "./scenarios/capture";
import { containment } from "./scenarios/containment-cost";
import { kernelPss } from "./scenarios/kernel-pss";
import { latency } from "./scenarios/latency";
import { liveState } from "./scenarios/live-state";
import { mcp } from "./scenarios/mcp";
import { polling } from "./scenarios/polling";
import { prepare } from "./scenarios/prepare";
import { sseSubscribers } from "./scenarios/sse-subscribers";
import { throughput } from "./scenarios/throughput";

// @jupyterlab/services logs every websocket it opens and every kernel that stops; keep the table readable.
for (const level of ["log", "debug", "info", "warn"] as const) {
  const original = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    if (typeof args[0] === "string" && /^(Starting WebSocket|Kernel: dead)/.test(args[0])) return;
    original(...args);
  };
}

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const argAfter = (flag: string) => {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
};
const jsonOut = argAfter("--json");
const svgOut = argAfter("--svg");
const only = argAfter("--only")?.split(",");
const P = quick ? QUICK : FULL;
const log = (msg: string) => console.error(`[bench] ${msg}`);

/** Scenarios on one shared stack (the bench config), in this order. */
const SHARED: Array<[string, (b: Bench) => Promise<void>]> = [
  ["containment", containment],
  ["latency", latency],
  ["analysis", analysis],
  ["throughput", throughput],
  ["prepare", prepare],
  ["capture", capture],
  ["big", bigFile],
  ["poll", polling],
  ["mcp", mcp],
  ["sse", sseSubscribers],
];

/**
 * Scenarios that measure what users see, each on a stack of its own with the product's default config, so
 * each starts from the same state (no kernels left by another scenario) whatever else runs. `--only users`
 * selects all of them.
 */
const USERS: Array<[string, (b: Bench) => Promise<void>]> = [
  ["kernel-pss", kernelPss],
  ...ARRIVAL_RUNS.map((r): [string, (b: Bench) => Promise<void>] => [r.name, (b) => arrivals(b, r)]),
  ["live-state", liveState],
];

const want = (name: string, group: string) => !only || only.includes(name) || only.includes(group);

async function main() {
  const t0 = Date.now();
  const results: Json = {};
  const targets: Target[] = [];
  results.machine = machine();
  results.mode = quick ? "quick" : "full";
  results.params = { kernels: KERNELS, kernelSandbox: process.env.BENCH_KERNEL_SANDBOX ?? "off", ...P };
  log(`mode ${results.mode}; ${JSON.stringify(results.machine)}`);
  const base = { quick, P, results, targets, log };

  const shared = SHARED.filter(([name]) => want(name, "shared"));
  if (shared.length > 0) {
    const b = await startStack({ ...base, config: "bench", traversableRoot: want("containment", "shared") });
    try {
      for (const [, run] of shared) await run(b);
    } finally {
      await b.stop();
    }
  }
  for (const [name, run] of USERS.filter(([n]) => want(n, "users"))) {
    const b = await startStack({ ...base, config: "product", traversableRoot: true });
    try {
      await run(b);
    } catch (err) {
      // One user scenario that fails (e.g. stopped by the memory floor) leaves the others' figures.
      log(`${name} failed: ${(err as Error).stack ?? String(err)}`);
      results[`${name}_error`] = String(err);
    } finally {
      await b.stop();
    }
  }

  results.targets = targets;
  results.elapsed_s = round((Date.now() - t0) / 1000, 1);
  printTable(results, targets);
  if (jsonOut) {
    await mkdir(path.dirname(path.resolve(jsonOut)), { recursive: true });
    await writeFile(jsonOut, JSON.stringify(results, null, 2) + "\n");
    log(`wrote ${jsonOut}`);
  }
  if (svgOut) {
    await writeFile(svgOut, renderChart(results));
    log(`wrote ${svgOut}`);
  }
  log(`done in ${results.elapsed_s} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
