// The run's summary: the machine it ran on, and the tables printed at the end.
import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import type { Json, Target } from "./context";
import type { Hops } from "./hops";
import { describeProfile } from "./profile";
import type { ExecProfile } from "./profile";
import { round } from "./stats";

export function machine(): Json {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "?";
  let fs = "?";
  try {
    fs = execSync(`df -T ${JSON.stringify(os.tmpdir())} | tail -1 | awk '{print $2}'`)
      .toString()
      .trim();
  } catch {
    // unknown
  }
  return {
    nproc: os.availableParallelism(),
    cpu,
    memGiB: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    kernel: os.release(),
    tmpdirFs: fs,
    loadavgAtStart: os.loadavg().map((x) => round(x, 2)),
    date: new Date().toISOString(),
  };
}

export function printTable(results: Json, targets: Target[]) {
  const lat = results.latency as Record<string, { p50: number; p95: number } | number> | undefined;
  const rows: string[][] = [["path (print(1))", "p50 ms", "p95 ms", "vs e2e p50"]];
  if (lat) {
    const e2e = (lat.e2e_warm_longpoll as { p50: number }).p50;
    const add = (label: string, k: string) => {
      const s = lat[k] as { p50: number; p95: number };
      rows.push([label, String(round(s.p50, 1)), String(round(s.p95, 1)), `${round(s.p50 / e2e, 2)}×`]);
    };
    add("raw: @jupyterlab/services direct", "raw_kernel_jupyterlab_services");
    add("raw: gateway session (raw_kernel)", "raw_kernel_gateway_session");
    add("codeinterp warm, long-poll (e2e)", "e2e_warm_longpoll");
    add("codeinterp warm, SSE", "e2e_warm_sse");
    add("codeinterp first exec, new message", "first_execution_new_message");
    add("fresh kernel per exec (Open WebUI)", "fresh_kernel_per_execution");
    add("Open WebUI flow, stock Jupyter", "openwebui_flow_stock_jupyter");
    add("Open WebUI flow, codeinterp /jupyter", "openwebui_flow_codeinterp_jupyter_surface");
  }
  const tl = (lat?.timeline_warm_p50_ms ?? {}) as unknown as Record<string, { p50: number; p95: number }>;
  if (Object.keys(tl).length) {
    console.log("\nwhere the warm path's time goes (medians of each segment, ms):");
    for (const [k, v] of Object.entries(tl))
      console.log(`  ${k.padEnd(50)} p50 ${String(v.p50).padStart(6)}  p95 ${String(v.p95).padStart(6)}`);
  }
  printProfiles(results);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  console.log("");
  if (rows.length > 1) for (const r of rows) console.log(line(r));
  printUsers(results);
  console.log("");
  const tw = [Math.max(...targets.map((t) => t.name.length)), Math.max(...targets.map((t) => t.target.length))];
  for (const t of targets)
    console.log(
      `${t.met === null ? "  ?  " : t.met ? " MET " : "MISS "} ${t.name.padEnd(tw[0]!)}  target ${t.target.padEnd(tw[1]!)}  measured ${t.value}`,
    );
  console.log("");
  const keys = [
    "e2e_p50_ms",
    "e2e_p95_ms",
    "raw_kernel_p50_ms",
    "fresh_kernel_p50_ms",
    "throughput_ratio",
    "containment_start_p50_ms",
    "plain_start_p50_ms",
    "containment_start_ratio",
    "containment_print_p50_ms",
    "plain_print_p50_ms",
    "containment_print_ratio",
  ];
  console.log(
    keys
      .filter((k) => k in results)
      .map((k) => `${k}=${String(results[k])}`)
      .join("  "),
  );
}

/**
 * Per scenario, what one execution cost (statements, commands, CPU by process) and where its time went hop
 * by hop: a regression of the warm path shows which hop or which part grew.
 */
function printProfiles(results: Json) {
  const lat = results.latency as { profile_warm?: ExecProfile } | undefined;
  const tput = results.throughput as { profile_codeinterp?: ExecProfile; hops_codeinterp?: Hops } | undefined;
  const profiles: Array<[string, ExecProfile | undefined, Hops | undefined]> = [
    ["latency, warm print(1)", lat?.profile_warm, undefined],
    ["throughput, print(1) × 4 concurrent", tput?.profile_codeinterp, tput?.hops_codeinterp],
    [
      "analysis, follow-up",
      results.analysis_followup_profile as ExecProfile | undefined,
      results.analysis_followup_hops as Hops | undefined,
    ],
  ];
  for (const [label, p, hops] of profiles) {
    if (!p) continue;
    console.log(`\n${describeProfile(label, p)}`);
    console.log(`  pg by verb ${JSON.stringify(p.pg_statements.by_verb)}`);
    console.log(`  redis sent ${JSON.stringify(p.redis_commands_sent.by_command)}`);
    if (p.redis_commands_run) console.log(`  redis ran ${JSON.stringify(p.redis_commands_run.by_command)}`);
    for (const [k, v] of Object.entries(hops ?? {}))
      console.log(`  ${k.padEnd(50)} p50 ${String(v.p50).padStart(6)}  p95 ${String(v.p95).padStart(6)}`);
  }
}

interface ArrivalFigures {
  label: string;
  new_messages: number;
  first_analysis_ok: number;
  first_analysis_p50_ms: number;
  first_analysis_p90_ms: number;
  served_by_a_ready_pool_kernel: number;
  followups_asked: number;
  followups_lost_variables: number;
  system: {
    pool_kernels_admin: { min: number; mean: number; max: number } | null;
    mem_available_gib: { min: number } | null;
    kernels_memory_in_use_gib: { max: number } | null;
  };
}

/** What users saw: the arrival runs and the live messages holding state. */
function printUsers(results: Json) {
  const arrivals = (results.arrivals ?? {}) as Record<string, ArrivalFigures>;
  const runs = Object.values(arrivals);
  if (runs.length > 0) {
    console.log("new messages that do not wait (first analysis; pool = served by a ready pool kernel):");
    console.log(
      `  ${"arrivals".padEnd(22)} ${"n".padStart(3)} ${"p50 ms".padStart(8)} ${"p90 ms".padStart(8)} ${"pool".padStart(7)} ${"follow-ups lost".padStart(16)} ${"pool size min/mean/max".padStart(23)} ${"MemAvail min GiB".padStart(17)} ${"kernels max GiB".padStart(16)}`,
    );
    for (const r of runs) {
      const pool = r.system.pool_kernels_admin;
      console.log(
        `  ${r.label.padEnd(22)} ${String(r.new_messages).padStart(3)} ${String(r.first_analysis_p50_ms).padStart(8)} ${String(r.first_analysis_p90_ms).padStart(8)} ${`${r.served_by_a_ready_pool_kernel}/${r.first_analysis_ok}`.padStart(7)} ${`${r.followups_lost_variables}/${r.followups_asked}`.padStart(16)} ${(pool ? `${pool.min}/${pool.mean}/${pool.max}` : "-").padStart(23)} ${String(r.system.mem_available_gib?.min ?? "-").padStart(17)} ${String(r.system.kernels_memory_in_use_gib?.max ?? "-").padStart(16)}`,
      );
    }
  }
  const live = results.live_state as
    | {
        users: number;
        opened: number;
        still_had_their_variables: number;
        mem_available_before_gib: number;
        mem_available_all_opened_gib: number;
        mem_available_after_gib: number;
        mem_available_min_gib: number;
        stopped_below_memory_floor: boolean;
        kernels_memory_in_use_max_gib: number | null;
      }
    | undefined;
  if (live)
    console.log(
      `live messages holding pandas + 25 MiB: ${live.still_had_their_variables} of ${live.users} kept their variables (${live.opened} opened); MemAvailable ${live.mem_available_before_gib} → ${live.mem_available_all_opened_gib} (all opened) → ${live.mem_available_after_gib} GiB, min ${live.mem_available_min_gib}; the kernels' cgroup at most ${live.kernels_memory_in_use_max_gib ?? "-"} GiB${live.stopped_below_memory_floor ? "; STOPPED at the memory floor" : ""}`,
    );
}
