// What one kernel costs in memory: the processes that make it up (its cgroup's members when it has one, else
// the process started with its connection file and that process's descendants) and the sum of their
// /proc/<pid>/smaps_rollup. PSS charges each shared page to its sharers in parts, so a kernel forked from a
// preloaded template shows its private share, and a kernel started from scratch everything it loaded.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { KernelCgroupParent } from "@codeinterp/kernel-host";
import { kernelMemoryCgroup } from "@codeinterp/kernel-host";

export interface KernelMemory {
  kernelId: string;
  /** Where its processes were found. */
  source: "cgroup" | "process tree";
  pids: number[];
  commands: string[];
  rssKiB: number;
  pssKiB: number;
  pssAnonKiB: number;
  privateKiB: number;
  sharedKiB: number;
  /** The kernel's memory cgroup usage (page cache included); null without one. */
  cgroupUsageKiB: number | null;
  /** Processes whose smaps_rollup could not be read (gone, or not permitted). */
  unreadable: number;
}

const read = (p: string) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return null;
  }
};

function allProcs(): Array<{ pid: number; ppid: number; cmd: string }> {
  const out: Array<{ pid: number; ppid: number; cmd: string }> = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const stat = read(`/proc/${d}/stat`);
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    out.push({ pid: Number(d), ppid, cmd: (read(`/proc/${d}/cmdline`) ?? "").replace(/\0/g, " ").trim() });
  }
  return out;
}

/** The kernel's processes: its cgroup's members, or the process named by its connection file and descendants. */
export function kernelPids(
  kernelId: string,
  parent: KernelCgroupParent | null,
): { pids: number[]; source: KernelMemory["source"]; cgroupDir: string | null } {
  if (parent) {
    const cg = kernelMemoryCgroup(parent, kernelId);
    const procs = read(path.join(cg.dir, "cgroup.procs"));
    if (procs !== null) {
      const pids = procs.split("\n").filter(Boolean).map(Number);
      if (pids.length > 0) return { pids, source: "cgroup", cgroupDir: cg.dir };
    }
  }
  const procs = allProcs();
  const roots = procs.filter((p) => p.cmd.includes(`kernel-${kernelId}.json`)).map((p) => p.pid);
  const set = new Set(roots);
  for (let grew = true; grew;) {
    grew = false;
    for (const p of procs)
      if (set.has(p.ppid) && !set.has(p.pid)) {
        set.add(p.pid);
        grew = true;
      }
  }
  return { pids: [...set], source: "process tree", cgroupDir: null };
}

export function kernelMemory(kernelId: string, parent: KernelCgroupParent | null): KernelMemory {
  const { pids, source, cgroupDir } = kernelPids(kernelId, parent);
  const out: KernelMemory = {
    kernelId,
    source,
    pids,
    commands: [],
    rssKiB: 0,
    pssKiB: 0,
    pssAnonKiB: 0,
    privateKiB: 0,
    sharedKiB: 0,
    cgroupUsageKiB: null,
    unreadable: 0,
  };
  for (const pid of pids) {
    const text = read(`/proc/${pid}/smaps_rollup`);
    if (!text) {
      out.unreadable++;
      continue;
    }
    const kb = (f: string) => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0);
    out.rssKiB += kb("Rss");
    out.pssKiB += kb("Pss");
    out.pssAnonKiB += kb("Pss_Anon");
    out.privateKiB += kb("Private_Clean") + kb("Private_Dirty");
    out.sharedKiB += kb("Shared_Clean") + kb("Shared_Dirty");
    out.commands.push((read(`/proc/${pid}/cmdline`) ?? "").replace(/\0/g, " ").trim().slice(0, 80));
  }
  if (cgroupDir) {
    const usage = read(path.join(cgroupDir, "memory.usage_in_bytes")) ?? read(path.join(cgroupDir, "memory.current"));
    if (usage) out.cgroupUsageKiB = Math.round(Number(usage.trim()) / 1024);
  }
  return out;
}
