// Issue 13: what a trivial execution costs in CPU across the stack (API, worker, Postgres, Redis, read from
// /proc) next to the same cell in a raw kernel, and what a preloaded pool kernel costs in memory (its cgroup)
// with the live-kernel ceiling that implies.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { KernelCgroupParent } from "@codeinterp/kernel-host";
import { kernelMemoryCgroup, SANDBOX_KERNEL_NAME } from "@codeinterp/kernel-host";
import type { apiClient } from "./client";
import { cpuDelta, cpuSnapshot } from "./services";

export async function cpuPerTrivialExecution(c: {
  ci: ReturnType<typeof apiClient>;
  raw: KernelSession;
  pids: { api: number; worker: number; jupyter: number; redis?: number | null };
  dbName: string;
  messageId: string;
  n: number;
}): Promise<{ codeinterp: Record<string, number>; rawKernel: Record<string, number> }> {
  await c.ci.run({ messageId: c.messageId, code: "print(1)" });
  let s0 = cpuSnapshot(c.pids, c.dbName);
  for (let i = 0; i < c.n; i++) await c.ci.run({ messageId: c.messageId, code: "print(1)" });
  const codeinterp = cpuDelta(s0, cpuSnapshot(c.pids, c.dbName), c.n);
  s0 = cpuSnapshot(c.pids, c.dbName);
  for (let i = 0; i < c.n; i++) await c.raw.execute("print(1)", { timeoutMs: 30_000 });
  const rawKernel = cpuDelta(s0, cpuSnapshot(c.pids, c.dbName), c.n);
  return { codeinterp, rawKernel };
}

/** Memory (MiB) of each waiting pool kernel, from its cgroup; empty when kernels have no readable cgroup. */
export async function poolKernelMemoryMiB(gateway: KernelGateway, poolKernelIds: string[]): Promise<number[]> {
  const meta = (await gateway.kernelSpecs())[SANDBOX_KERNEL_NAME]?.metadata as
    { codeinterp?: { cgroup?: KernelCgroupParent | null } } | undefined;
  const parent = meta?.codeinterp?.cgroup;
  if (!parent) return [];
  const out: number[] = [];
  for (const id of poolKernelIds) {
    const cg = kernelMemoryCgroup(parent, id);
    const text = await readFile(
      path.join(cg.dir, cg.version === 1 ? "memory.usage_in_bytes" : "memory.current"),
      "utf8",
    ).catch(() => null);
    if (text) out.push(Math.round((Number(text.trim()) / 2 ** 20) * 10) / 10);
  }
  return out;
}
