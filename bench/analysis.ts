// Issue 13's workload: what a chat user does first in a new message. Attach a 5,000-row CSV; read it with
// pandas, group it, draw a bar chart saved as PNG, write the summary to Excel. Measured, side by side in one
// run: codeinterp's first execution of a new message (a preloaded pool kernel), a follow-up in the same
// message, a fresh plain kernel per execution (Open WebUI's way), and a pre-warmed raw kernel (the floor).
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { apiClient } from "./client";
import { now, summarize } from "./stats";
import type { Summary } from "./stats";

export const analysis = (dir: string) => `import pandas as pd
import matplotlib.pyplot as plt
df = pd.read_csv(${JSON.stringify(`${dir}/sales.csv`)})
by_region = df.groupby("region")["amount"].sum().sort_values(ascending=False)
fig, ax = plt.subplots(figsize=(6, 4))
by_region.plot.bar(ax=ax)
fig.savefig(${JSON.stringify(`${dir}/by_region.png`)})
plt.close(fig)
by_region.to_frame().to_excel(${JSON.stringify(`${dir}/summary.xlsx`)})
print(len(df))
`;

export function salesCsv(rows: number): string {
  const regions = ["north", "south", "east", "west", "central"];
  const lines = ["date,region,product,units,amount"];
  for (let i = 0; i < rows; i++) {
    lines.push(
      `2026-${String((i % 12) + 1).padStart(2, "0")}-${String((i % 28) + 1).padStart(2, "0")},${regions[i % 5]},p${i % 37},${(i * 7) % 13},${((i * 7919) % 100_000) / 100}`,
    );
  }
  return lines.join("\n") + "\n";
}

export interface AnalysisContext {
  apiUrl: string;
  key: string;
  ci: ReturnType<typeof apiClient>;
  gateway: KernelGateway;
  /** The Jupyter server's root_dir on this machine (fresh and raw kernels read the CSV from under it). */
  root: string;
  n: number;
  msg: (tag: string) => string;
  /** Resolves once the pool has a kernel ready (or its deadline passed); returns how long that took (ms). */
  poolReady: () => Promise<number>;
  log: (msg: string) => void;
  /** Wraps each follow-up (the profile of the warm path counts around it). */
  aroundFollowup?: <T>(fn: () => Promise<T>) => Promise<T>;
}

const ok = (label: string, stdout: string | undefined) => {
  if (stdout !== "5000\n") throw new Error(`${label}: the analysis printed ${JSON.stringify(stdout)}`);
};

async function runIn(s: KernelSession, code: string, label: string): Promise<void> {
  const r = await s.execute(code, { timeoutMs: 120_000 });
  if (r.status !== "ok") throw new Error(`${label}: ${r.status} ${JSON.stringify(r.error)}`);
  ok(label, r.stdout);
}

export async function benchAnalysis(c: AnalysisContext): Promise<{
  summaries: Record<string, Summary>;
  first: number[];
  fresh: number[];
  messageIds: string[];
  followupRuns: Array<{ id: string; wall: { submit: number; posted: number; end: number } }>;
}> {
  const csv = salesCsv(5000);
  const form = new FormData();
  form.append("file", new Blob([csv], { type: "text/csv" }), "sales.csv");
  const up = await fetch(`${c.apiUrl}/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${c.key}` },
    body: form,
  });
  if (up.status !== 201) throw new Error(`upload answered ${up.status}`);
  const fileId = ((await up.json()) as { id: string }).id;
  const plainDir = path.join(c.root, "bench-analysis");
  await mkdir(plainDir, { recursive: true });
  await writeFile(path.join(plainDir, "sales.csv"), csv);

  const first: number[] = [];
  const followup: number[] = [];
  const fresh: number[] = [];
  const freshWithShutdown: number[] = [];
  const raw: number[] = [];
  const poolWaits: number[] = [];
  const messageIds: string[] = [];
  const followupRuns: Array<{ id: string; wall: { submit: number; posted: number; end: number } }> = [];
  const rawSession = await c.gateway.startKernel();
  await runIn(rawSession, analysis(plainDir), "raw warm-up");
  for (let i = 0; i < c.n; i++) {
    // The pool refills (start + preload) between chat messages, as it would between users' messages. At the
    // live-kernel ceiling (earlier scenarios leave message kernels behind) a refill waits for a message
    // kernel idle for a minute; the wait is reported, not hidden.
    poolWaits.push(await c.poolReady());
    const messageId = c.msg("analysis");
    messageIds.push(messageId);
    const r1 = await c.ci.run({ messageId, fileIds: [fileId], code: analysis("/mnt/data") });
    ok("first", r1.exec.result?.stdout);
    first.push(r1.ms);
    const runFollowup = () => c.ci.run({ messageId, code: analysis("/mnt/data") });
    const r2 = await (c.aroundFollowup ? c.aroundFollowup(runFollowup) : runFollowup());
    ok("follow-up", r2.exec.result?.stdout);
    followup.push(r2.ms);
    followupRuns.push({ id: r2.exec.id, wall: r2.wall });

    const a = now();
    const s = await c.gateway.startKernel();
    await runIn(s, analysis(plainDir), "fresh");
    fresh.push(now() - a);
    await s.shutdown();
    freshWithShutdown.push(now() - a);

    const b = now();
    await runIn(rawSession, analysis(plainDir), "raw");
    raw.push(now() - b);
  }
  await rawSession.shutdown();
  return {
    summaries: {
      first_analysis_new_message: summarize(first),
      followup_analysis: summarize(followup),
      fresh_kernel_analysis_until_result: summarize(fresh),
      fresh_kernel_analysis_with_shutdown: summarize(freshWithShutdown),
      raw_warm_kernel_analysis: summarize(raw),
      wait_for_a_ready_pool_kernel: summarize(poolWaits),
    },
    first,
    fresh,
    messageIds,
    followupRuns,
  };
}

/**
 * Matplotlib's first figure in a new sandboxed Python process, CPU ms (not wall: the box is shared): with the
 * font cache the server prepared once (copied into each kernel's MPLCONFIGDIR) vs an empty config dir, as
 * every sandboxed kernel had before. Run as subprocesses of one message's kernel, so both are sandboxed alike.
 */
export async function benchFirstFigure(
  ci: ReturnType<typeof apiClient>,
  messageId: string,
  n: number,
): Promise<{ withCacheCpuMs: Summary; emptyDirCpuMs: Summary; cacheFound: boolean }> {
  const code = `import json, os, subprocess, sys, tempfile
probe = "import time; t = time.process_time(); import io, matplotlib; matplotlib.use('agg'); import matplotlib.pyplot as plt; fig, ax = plt.subplots(); ax.bar([1, 2], [3, 4]); fig.savefig(io.BytesIO(), format='png'); print((time.process_time() - t) * 1000)"
def run(d):
    env = dict(os.environ, MPLCONFIGDIR=d)
    return float(subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout)
cache = os.environ.get("MPLCONFIGDIR", "/tmp")
found = any(n.startswith("fontlist-") for n in os.listdir(cache))
out = {"found": found, "cache": [], "empty": []}
for i in range(${n}):
    out["cache"].append(run(cache))
    out["empty"].append(run(tempfile.mkdtemp()))
print(json.dumps(out))
`;
  const r = await ci.run({ messageId, code }, 300_000);
  if (r.exec.status !== "completed") throw new Error(`first-figure probe: ${JSON.stringify(r.exec.result)}`);
  const out = JSON.parse(r.exec.result?.stdout ?? "") as { found: boolean; cache: number[]; empty: number[] };
  return { withCacheCpuMs: summarize(out.cache), emptyDirCpuMs: summarize(out.empty), cacheFound: out.found };
}
