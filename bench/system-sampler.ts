// What the deployment holds while users drive it, sampled once a second: the pool and live kernels as the
// operators' surfaces show them (/admin/kernels JSON and the codeinterp_kernels_* gauges of /metrics) and the
// host's MemAvailable. Every figure is optional: a surface that does not answer leaves its fields out.
import { readFileSync } from "node:fs";
import path from "node:path";
import { SANDBOX_KERNEL_NAME } from "@codeinterp/kernel-host";
import type { KernelCgroupParent } from "@codeinterp/kernel-host";
import type { Bench } from "./context";
import { round } from "./stats";

const GiB = 1024 ** 3;

/** MemAvailable of the host (bytes), from /proc/meminfo. */
export function memAvailable(): number {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

export const gib = (bytes: number) => round(bytes / GiB, 2);

/**
 * The memory usage file of the parent cgroup of all of the stack's kernels (from its sandbox kernelspec),
 * or null (unsandboxed, no cgroups). Unlike MemAvailable it counts only this stack's kernels, not the other
 * work sharing the machine.
 */
export async function kernelsCgroupUsageFile(b: Bench): Promise<string | null> {
  const meta = ((await b.gateway.kernelSpecs().catch(() => ({}))) as Record<string, { metadata?: unknown }>)[
    SANDBOX_KERNEL_NAME
  ]?.metadata as { codeinterp?: { cgroup?: KernelCgroupParent | null } } | undefined;
  const cg = meta?.codeinterp?.cgroup;
  if (!cg) return null;
  return cg.version === 1 ? path.join(cg.dirs.memory, "memory.usage_in_bytes") : path.join(cg.dir, "memory.current");
}

/** Bytes in use by the stack's kernels together (their parent cgroup), NaN when unreadable. */
export function kernelsMemoryInUse(file: string | null): number {
  if (!file) return NaN;
  try {
    return Number(readFileSync(file, "utf8").trim());
  } catch {
    return NaN;
  }
}

export interface Sample {
  /** Seconds since the sampler started. */
  t: number;
  memAvailableGiB: number;
  /** Memory in use by this stack's kernels together (their parent cgroup); absent without one. */
  kernelsGiB?: number;
  /** /admin/kernels: kernels holding a place under the ceiling, those with no message yet (the pool), starting. */
  live?: number;
  poolKernels?: number;
  starting?: number;
  ceiling?: number | null;
  evictions?: number;
  capacityWaits?: number;
  /** /metrics gauges named codeinterp_kernels_*, summed over workers (pool_available, pool_target, in_use, ...). */
  gauges?: Record<string, number>;
}

interface AdminKernels {
  live: number;
  ceiling: number | null;
  evictions: number;
  capacityWaits: number;
  starting: number;
  kernels: Array<{ message: unknown }>;
}

/** Sums each `codeinterp_kernels_*` series of a Prometheus text body by metric name. */
export function kernelGauges(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^(codeinterp_kernels?_[a-z_]+)(?:\{[^}]*\})?\s+([-+0-9.eE]+|NaN)$/.exec(line);
    if (m && Number.isFinite(Number(m[2]))) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

export interface Sampler {
  samples: Sample[];
  /** Stops sampling and waits for the sample in flight. */
  stop(): Promise<void>;
}

/** One sample of the surfaces and MemAvailable; t is seconds since t0 (Date.now() ms). */
export async function sampleOnce(b: Bench, t0: number, cgroupFile: string | null = null): Promise<Sample> {
  const s: Sample = { t: round((Date.now() - t0) / 1000, 1), memAvailableGiB: gib(memAvailable()) };
  const kernels = kernelsMemoryInUse(cgroupFile);
  if (Number.isFinite(kernels)) s.kernelsGiB = gib(kernels);
  const [admin, metrics] = await Promise.all([
    fetch(`${b.apiUrl}/admin/kernels`, {
      headers: { authorization: `Bearer ${b.adminToken}`, accept: "application/json" },
      signal: AbortSignal.timeout(2000),
    })
      .then(async (r) => (r.ok ? ((await r.json()) as AdminKernels) : null))
      .catch(() => null),
    fetch(`${b.apiUrl}/metrics`, { signal: AbortSignal.timeout(2000) })
      .then(async (r) => (r.ok ? await r.text() : null))
      .catch(() => null),
  ]);
  if (admin) {
    s.live = admin.live;
    s.poolKernels = admin.kernels.filter((k) => k.message === null).length;
    s.starting = admin.starting;
    s.ceiling = admin.ceiling;
    s.evictions = admin.evictions;
    s.capacityWaits = admin.capacityWaits;
  }
  if (metrics) s.gauges = kernelGauges(metrics);
  return s;
}

export function startSampler(b: Bench, everyMs = 1000): Sampler {
  const samples: Sample[] = [];
  const t0 = Date.now();
  const file = kernelsCgroupUsageFile(b);
  const take = async () => {
    samples.push(await sampleOnce(b, t0, await file));
  };
  let inFlight: Promise<void> = take();
  const timer = setInterval(() => {
    inFlight = inFlight.then(take);
  }, everyMs);
  return {
    samples,
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
  };
}

/**
 * Waits (bounded) until the pool holds as many ready kernels as the worker's target for it, as a deployment
 * has them before traffic starts; returns the wait (ms) and the pool size reached.
 */
export async function settlePool(b: Bench, timeoutMs = 120_000): Promise<{ ms: number; pool: number; target: number }> {
  const t0 = Date.now();
  for (;;) {
    const s = await sampleOnce(b, t0);
    const target = Math.max(1, s.gauges?.codeinterp_kernels_pool_target ?? 1);
    const pool = s.poolKernels ?? 0;
    if ((pool >= target && (s.starting ?? 0) === 0) || Date.now() - t0 > timeoutMs)
      return { ms: Date.now() - t0, pool, target };
    await new Promise((r) => setTimeout(r, 250));
  }
}

const stats = (xs: number[]) =>
  xs.length === 0
    ? null
    : {
        min: round(Math.min(...xs), 2),
        mean: round(xs.reduce((a, c) => a + c, 0) / xs.length, 2),
        max: round(Math.max(...xs), 2),
      };

/** min/mean/max of each sampled figure, and the share of samples in which no pool kernel was ready. */
export function summarizeSamples(samples: Sample[]) {
  const pick = (f: (s: Sample) => number | null | undefined) =>
    samples.map(f).filter((x): x is number => typeof x === "number" && Number.isFinite(x));
  const poolAvailable = pick((s) => s.gauges?.codeinterp_kernels_pool_available);
  const poolKernels = pick((s) => s.poolKernels);
  const evictions = pick((s) => s.evictions);
  return {
    samples: samples.length,
    mem_available_gib: stats(pick((s) => s.memAvailableGiB)),
    kernels_memory_in_use_gib: stats(pick((s) => s.kernelsGiB)),
    live_kernels: stats(pick((s) => s.live)),
    pool_kernels_admin: stats(poolKernels),
    pool_available_gauge: stats(poolAvailable),
    pool_target_gauge: stats(pick((s) => s.gauges?.codeinterp_kernels_pool_target)),
    share_of_samples_with_an_empty_pool:
      poolKernels.length > 0 ? round(poolKernels.filter((x) => x === 0).length / poolKernels.length, 2) : null,
    evictions_during: evictions.length > 1 ? evictions[evictions.length - 1]! - evictions[0]! : null,
    ceiling: samples.find((s) => s.ceiling !== undefined)?.ceiling ?? null,
  };
}

/** The timeline as columns (t, pool, live, MemAvailable), compact for the results JSON. */
export function timelineColumns(samples: Sample[]) {
  return {
    t_s: samples.map((s) => s.t),
    pool_kernels: samples.map((s) => s.poolKernels ?? null),
    pool_available_gauge: samples.map((s) => s.gauges?.codeinterp_kernels_pool_available ?? null),
    live_kernels: samples.map((s) => s.live ?? null),
    mem_available_gib: samples.map((s) => s.memAvailableGiB),
    kernels_memory_in_use_gib: samples.map((s) => s.kernelsGiB ?? null),
  };
}
