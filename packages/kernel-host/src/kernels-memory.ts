import { readFile } from "node:fs/promises";
import type { KernelsMemoryReading } from "@codeinterp/kernel";
import type { KernelCgroupParent } from "./cgroups";

async function readNumber(path: string): Promise<number> {
  return Number((await readFile(path, "utf8")).trim());
}

async function readStat(path: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await readFile(path, "utf8")).split("\n")) {
    const [k, v] = line.split(" ");
    if (k && v) out.set(k, Number(v));
  }
  return out;
}

export async function readHostAvailableBytes(): Promise<number> {
  const m = /^MemAvailable:\s+(\d+) kB/m.exec(await readFile("/proc/meminfo", "utf8"));
  return m?.[1] ? Number(m[1]) * 1024 : Number.POSITIVE_INFINITY;
}

/**
 * Memory in use by the kernels under `parent` (prepareKernelCgroups). Page cache a kernel read once and left
 * (inactive file pages) is not counted: the kernel reclaims it before it would OOM anyone.
 */
export async function readKernelsMemory(parent: KernelCgroupParent): Promise<KernelsMemoryReading> {
  let usedBytes: number;
  if (parent.version === 1) {
    const [usage, stat] = await Promise.all([
      readNumber(`${parent.dirs.memory}/memory.usage_in_bytes`),
      readStat(`${parent.dirs.memory}/memory.stat`),
    ]);
    usedBytes = usage - (stat.get("total_inactive_file") ?? 0);
  } else {
    const [current, stat] = await Promise.all([
      readNumber(`${parent.dir}/memory.current`),
      readStat(`${parent.dir}/memory.stat`),
    ]);
    usedBytes = current - (stat.get("inactive_file") ?? 0);
  }
  return { usedBytes: Math.max(0, usedBytes), hostAvailableBytes: await readHostAvailableBytes() };
}
