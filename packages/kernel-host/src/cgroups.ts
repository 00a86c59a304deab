import { mkdir, readFile, readdir, rmdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { KernelCpuPriority, MemoryKills, MemoryLimitChange } from "@codeinterp/kernel";
import { exists } from "./fs";

/**
 * Where the launcher puts each kernel's cgroup: under one parent per Jupyter server that also caps all
 * of its kernels together. cgroup v1 (a hierarchy per controller) or v2 (one tree).
 */
export type KernelCgroupParent =
  { version: 1; dirs: { memory: string; pids: string; cpu: string } } | { version: 2; dir: string };

export type KernelCgroupSetup = { ok: true; parent: KernelCgroupParent } | { ok: false; reason: string };

/** Per-kernel caps the launcher writes into each kernel's cgroup. */
export interface KernelCgroupLimits {
  memoryBytes: number;
  /** CPU quota in cores (cfs quota / cpu.max). */
  cpus: number;
  /** Processes and threads (pids.max). */
  maxProcesses: number;
}

const CONTROLLERS = ["memory", "pids", "cpu"] as const;

/** controller -> path, from /proc/self/cgroup ("4:memory:/a/b", "1:cpu,cpuacct:/", "0::/c"). */
export function parseProcCgroup(text: string): { v1: Map<string, string>; v2: string | null } {
  const v1 = new Map<string, string>();
  let v2: string | null = null;
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    const [, id, ctrls = "", path = "/"] = m;
    if (id === "0" && ctrls === "") v2 = path;
    for (const c of ctrls.split(",")) if (c) v1.set(c, path);
  }
  return { v1, v2 };
}

const under = (base: string, path: string) => join(base, path.replace(/^\/+/, ""));

async function writeValue(path: string, value: string | number): Promise<void> {
  await writeFile(path, String(value));
}

/**
 * Creates this server's parent cgroup (named `name`) and caps all kernels together at `budgetBytes`.
 * v1: a parent in the memory, pids and cpu hierarchies, each under our own cgroup there. v2: kernels
 * need a parent with the controllers enabled, and a cgroup that enables controllers for its children
 * may hold no processes ("no internal processes"), so everything in our own cgroup moves to a `service`
 * leaf first (as in a container with its own cgroup namespace, or a systemd unit with Delegate=yes).
 */
export async function prepareKernelCgroups(opts: {
  name: string;
  budgetBytes: number;
  /** Default /sys/fs/cgroup; tests pass a temp dir standing in for cgroupfs. */
  fsRoot?: string;
  /** Contents of /proc/self/cgroup (default: read it). */
  selfCgroup?: string;
}): Promise<KernelCgroupSetup> {
  const fsRoot = opts.fsRoot ?? "/sys/fs/cgroup";
  let selfCgroup = opts.selfCgroup;
  try {
    selfCgroup ??= await readFile("/proc/self/cgroup", "utf8");
  } catch {
    return { ok: false, reason: "no /proc/self/cgroup" };
  }
  const own = parseProcCgroup(selfCgroup);
  try {
    if (CONTROLLERS.every((c) => own.v1.has(c))) {
      const dirs = Object.fromEntries(
        CONTROLLERS.map((c) => [c, join(under(join(fsRoot, c), own.v1.get(c) ?? "/"), opts.name)]),
      ) as { memory: string; pids: string; cpu: string };
      for (const d of Object.values(dirs)) await makeDirs(d);
      const memsw = join(dirs.memory, "memory.memsw.limit_in_bytes");
      const hasMemsw = await exists(memsw);
      if (hasMemsw) await writeValue(memsw, -1);
      await writeValue(join(dirs.memory, "memory.limit_in_bytes"), opts.budgetBytes);
      if (hasMemsw) await writeValue(memsw, opts.budgetBytes);
      return { ok: true, parent: { version: 1, dirs } };
    }
    if (own.v2 !== null) {
      const ownDir = under(fsRoot, own.v2);
      const available = (await readFile(join(ownDir, "cgroup.controllers"), "utf8")).split(/\s+/);
      const missing = CONTROLLERS.filter((c) => !available.includes(c));
      if (missing.length > 0)
        return { ok: false, reason: `cgroup v2 controllers not delegated to us: ${missing.join(", ")}` };
      if (own.v2 !== "/") {
        const leaf = join(ownDir, "service");
        await makeDirs(leaf);
        const procs = (await readFile(join(ownDir, "cgroup.procs"), "utf8")).split("\n").filter(Boolean);
        for (const pid of procs) {
          // A process that exited meanwhile cannot move; every live one must, or the next write fails.
          await writeValue(join(leaf, "cgroup.procs"), pid).catch((err: NodeJS.ErrnoException) => {
            if (err.code !== "ESRCH") throw err;
          });
        }
      }
      const enable = CONTROLLERS.map((c) => `+${c}`).join(" ");
      await writeValue(join(ownDir, "cgroup.subtree_control"), enable);
      const dir = join(ownDir, opts.name);
      await makeDirs(dir);
      await writeValue(join(dir, "cgroup.subtree_control"), enable);
      await writeValue(join(dir, "memory.max"), opts.budgetBytes);
      if (await exists(join(dir, "memory.swap.max"))) await writeValue(join(dir, "memory.swap.max"), 0);
      return { ok: true, parent: { version: 2, dir } };
    }
    return { ok: false, reason: "the memory, pids and cpu controllers are not available to us" };
  } catch (err) {
    return { ok: false, reason: `cannot create kernel cgroups under ${fsRoot}: ${(err as Error).message}` };
  }
}

/**
 * \`mkdir -p\` that fails where a directory cannot be made. Node's recursive mkdir never returns when the
 * hierarchy is not mounted where /proc/self/cgroup says (seen under \`ip netns exec\`, which mounts a fresh
 * /sys: /sys/fs/cgroup is there and empty, and mkdir in it says ENOENT however often it is retried).
 */
async function makeDirs(dir: string): Promise<void> {
  const made = (err: unknown) => (err as NodeJS.ErrnoException).code === "EEXIST";
  try {
    await mkdir(dir);
  } catch (err) {
    if (made(err)) return;
    const parent = dirname(dir);
    if ((err as NodeJS.ErrnoException).code !== "ENOENT" || parent === dir) throw err;
    await makeDirs(parent);
    await mkdir(dir).catch((again: unknown) => {
      if (!made(again)) throw again;
    });
  }
}

/** Removes the kernels' cgroups (empty once the server stopped them) and the parent; best effort. */
export async function removeKernelCgroups(parent: KernelCgroupParent): Promise<void> {
  const parents = parent.version === 1 ? Object.values(parent.dirs) : [parent.dir];
  for (const p of parents) {
    const children = await readdir(p, { withFileTypes: true }).catch(() => []);
    // Best effort: a cgroup still in use or gone already; an empty leftover holds nothing.
    for (const c of children) if (c.isDirectory()) await rmdir(join(p, c.name)).catch(() => undefined);
    await rmdir(p).catch(() => undefined);
  }
}

/** The kernel's memory cgroup: where its limit and out-of-memory kill counter are. */
export function kernelMemoryCgroup(parent: KernelCgroupParent, kernelId: string): { version: 1 | 2; dir: string } {
  return parent.version === 1
    ? { version: 1, dir: join(parent.dirs.memory, kernelId) }
    : { version: 2, dir: join(parent.dir, kernelId) };
}

/**
 * How many times the kernel's processes were killed for going over its memory limit, and that limit;
 * null when the cgroup cannot be read (another machine's gateway, no cgroups).
 */
export async function readMemoryKills(cg: { version: 1 | 2; dir: string }): Promise<MemoryKills | null> {
  try {
    const [events, limit] = await Promise.all([
      readFile(join(cg.dir, cg.version === 1 ? "memory.oom_control" : "memory.events"), "utf8"),
      readFile(join(cg.dir, cg.version === 1 ? "memory.limit_in_bytes" : "memory.max"), "utf8"),
    ]);
    const kills = /^oom_kill (\d+)$/m.exec(events);
    const limitBytes = Number(limit.trim());
    return { oomKills: kills ? Number(kills[1]) : 0, limitBytes: Number.isFinite(limitBytes) ? limitBytes : null };
  } catch {
    return null;
  }
}

/**
 * Sets the memory limit of a kernel's cgroup (swap stays excluded). A kernel that already holds more than
 * the new limit is left as it is: lowering the limit under its usage would make the kernel reclaim into
 * an out-of-memory kill at once. Throws when the cgroup cannot be written (gone, another machine's).
 */
export async function setMemoryLimit(cg: { version: 1 | 2; dir: string }, bytes: number): Promise<MemoryLimitChange> {
  const file = (name: string) => join(cg.dir, name);
  const limitFile = file(cg.version === 1 ? "memory.limit_in_bytes" : "memory.max");
  const [usageText, limitText] = await Promise.all([
    readFile(file(cg.version === 1 ? "memory.usage_in_bytes" : "memory.current"), "utf8"),
    readFile(limitFile, "utf8"),
  ]);
  const current = Number(limitText.trim());
  const previousBytes = Number.isFinite(current) ? current : null;
  if (previousBytes === bytes) return { applied: true, previousBytes };
  const usageBytes = Number(usageText.trim());
  if (usageBytes > bytes) return { applied: false, usageBytes };
  if (cg.version === 2) {
    await writeValue(limitFile, bytes);
    return { applied: true, previousBytes };
  }
  // v1: memsw (memory + swap) must stay >= the memory limit at every step, and equal to it after.
  const memsw = file("memory.memsw.limit_in_bytes");
  const hasMemsw = await exists(memsw);
  const raising = previousBytes === null || bytes > previousBytes;
  if (hasMemsw && raising) await writeValue(memsw, bytes);
  await writeValue(limitFile, bytes);
  if (hasMemsw && !raising) await writeValue(memsw, bytes);
  return { applied: true, previousBytes };
}

/**
 * CPU weight of a kernel against the other kernels of its server. A pool kernel starts and preloads at the
 * background weight (the launcher sees its slot directory), so refills take CPU that running executions
 * leave; handed to a message it gets the normal weight. Weights only matter under contention: an idle
 * machine runs a background kernel at full speed. v1 cpu.shares (default 1024), v2 cpu.weight (default 100).
 */
export const KERNEL_CPU_WEIGHTS = {
  normal: { v1: 1024, v2: 100 },
  background: { v1: 20, v2: 2 },
} as const satisfies Record<KernelCpuPriority, { v1: number; v2: number }>;

/** The kernel's cpu cgroup (v1 its own hierarchy, v2 the kernel's one cgroup). */
export function kernelCpuCgroup(parent: KernelCgroupParent, kernelId: string): { version: 1 | 2; dir: string } {
  return parent.version === 1
    ? { version: 1, dir: join(parent.dirs.cpu, kernelId) }
    : { version: 2, dir: join(parent.dir, kernelId) };
}

/** Sets the kernel's CPU weight; false when its cgroup cannot be written (another machine's gateway, none). */
export async function setKernelCpuPriority(
  cg: { version: 1 | 2; dir: string },
  priority: KernelCpuPriority,
): Promise<boolean> {
  const w = KERNEL_CPU_WEIGHTS[priority];
  try {
    await writeValue(join(cg.dir, cg.version === 1 ? "cpu.shares" : "cpu.weight"), cg.version === 1 ? w.v1 : w.v2);
    return true;
  } catch {
    return false;
  }
}

/** CPU weight the kernel has now (cpu.shares or cpu.weight), or null when unreadable. */
export async function readKernelCpuWeight(cg: { version: 1 | 2; dir: string }): Promise<number | null> {
  try {
    const n = Number((await readFile(join(cg.dir, cg.version === 1 ? "cpu.shares" : "cpu.weight"), "utf8")).trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}
