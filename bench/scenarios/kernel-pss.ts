// Private memory of a pool kernel as the pool makes it (today: started and preloaded; later: forked from a
// template), next to a plain python3 kernel the gateway starts with nothing imported. Printed one line per
// kernel so that two runs (started vs forked) compare side by side.
import { SANDBOX_KERNEL_NAME } from "@codeinterp/kernel-host";
import type { KernelCgroupParent } from "@codeinterp/kernel-host";
import type { Bench } from "../context";
import type { KernelMemory } from "../kernel-memory";
import { kernelMemory } from "../kernel-memory";
import { median, round } from "../stats";
import { settlePool } from "../system-sampler";

const mib = (kib: number | null) => (kib === null ? null : round(kib / 1024, 1));

async function poolKernelIds(b: Bench): Promise<string[]> {
  const res = await fetch(`${b.apiUrl}/admin/kernels`, {
    headers: { authorization: `Bearer ${b.adminToken}`, accept: "application/json" },
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) return [];
  const body = (await res.json()) as { kernels: Array<{ kernelId: string; message: unknown }> };
  return body.kernels.filter((k) => k.message === null).map((k) => k.kernelId);
}

const row = (label: string, k: KernelMemory) => ({
  label,
  kernelId: k.kernelId,
  source: k.source,
  processes: k.pids.length,
  pss_mib: mib(k.pssKiB),
  pss_anon_mib: mib(k.pssAnonKiB),
  private_mib: mib(k.privateKiB),
  shared_mib: mib(k.sharedKiB),
  rss_mib: mib(k.rssKiB),
  cgroup_usage_mib: mib(k.cgroupUsageKiB),
  unreadable_processes: k.unreadable,
  commands: k.commands,
});

export async function kernelPss(b: Bench): Promise<void> {
  // The pool fills to its target (KERNEL_POOL_SIZE, 2 by default) one kernel after another.
  await settlePool(b);
  const ids = await poolKernelIds(b);
  const meta = (await b.gateway.kernelSpecs())[SANDBOX_KERNEL_NAME]?.metadata as
    { codeinterp?: { cgroup?: KernelCgroupParent | null } } | undefined;
  const parent = meta?.codeinterp?.cgroup ?? null;
  const rows = ids.map((id) => row("pool kernel (as the pool makes it)", kernelMemory(id, parent)));
  const plain = await b.gateway.startKernel();
  try {
    await plain.execute("1", { timeoutMs: 60_000 });
    rows.push(row("plain python3 kernel, started, nothing imported", kernelMemory(plain.id, null)));
  } finally {
    await plain.shutdown().catch(() => undefined);
  }
  const pool = rows.filter((r) => r.label.startsWith("pool"));
  const poolPss = median(pool.map((r) => r.pss_mib ?? NaN));
  b.results.kernel_memory = { kernels: rows };
  b.results.pool_kernel_pss_mib = round(poolPss, 1);
  b.results.pool_kernel_private_mib = round(median(pool.map((r) => r.private_mib ?? NaN)), 1);
  b.results.pool_kernel_rss_mib = round(median(pool.map((r) => r.rss_mib ?? NaN)), 1);
  console.log("\nkernel memory (sum over the kernel's processes, /proc/<pid>/smaps_rollup; MiB):");
  console.log(
    `  ${"kernel".padEnd(48)} ${"procs".padStart(5)} ${"PSS".padStart(7)} ${"private".padStart(8)} ${"RSS".padStart(7)} ${"cgroup".padStart(7)}  found by`,
  );
  for (const r of rows)
    console.log(
      `  ${r.label.padEnd(48)} ${String(r.processes).padStart(5)} ${String(r.pss_mib).padStart(7)} ${String(r.private_mib).padStart(8)} ${String(r.rss_mib).padStart(7)} ${String(r.cgroup_usage_mib ?? "-").padStart(7)}  ${r.source}`,
    );
  b.log(`kernel-pss: pool kernel PSS p50 ${round(poolPss, 1)} MiB over ${pool.length} kernels`);
  b.target("pool kernel private memory (PSS)", "reported (forked: a few MB)", `${round(poolPss, 1)} MiB`, null);
}
