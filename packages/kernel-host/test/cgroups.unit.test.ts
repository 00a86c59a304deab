import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { prepareKernelCgroups, readMemoryKills, setMemoryLimit } from "../src/cgroups";

// A temp dir stands in for /sys/fs/cgroup: these check what is written where. cgroup v2 cannot be tried
// for real on the development VM (its controllers are bound to v1), so this is its only test.
const LAUNCHER = fileURLToPath(new URL("../src/sandbox-launcher.py", import.meta.url));
let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "ci-cgroupfs-"));
});
afterEach(async () => rm(root, { recursive: true, force: true }));

const read = (...p: string[]) => readFile(join(root, ...p), "utf8");
const MiB = 1024 ** 2;

/** Runs one function of the launcher, as the launcher would, against the fake cgroupfs. */
function launcher(fn: string, ...args: unknown[]) {
  const call = `import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("launcher", ${JSON.stringify(LAUNCHER)})
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
m.${fn}(*json.loads(sys.argv[1]))`;
  execFileSync("/usr/bin/python3", ["-c", call, JSON.stringify(args)]);
}

const limits = { memoryBytes: 256 * MiB, cpus: 1.5, maxProcesses: 128 };

describe("cgroup v1 (a hierarchy per controller)", () => {
  const self = "9:name=systemd:/\n8:pids:/\n4:memory:/svc/abc\n1:cpu,cpuacct:/\n0::/\n";

  it("the parent sits under our own cgroup of each controller and caps all kernels, swap included", async () => {
    await mkdir(join(root, "memory/svc/abc/ci"), { recursive: true });
    await writeFile(join(root, "memory/svc/abc/ci/memory.memsw.limit_in_bytes"), "");
    const setup = await prepareKernelCgroups({ name: "ci", budgetBytes: 1024 * MiB, fsRoot: root, selfCgroup: self });
    expect({
      setup,
      limit: await read("memory/svc/abc/ci/memory.limit_in_bytes"),
      memsw: await read("memory/svc/abc/ci/memory.memsw.limit_in_bytes"),
    }).toEqual({
      setup: {
        ok: true,
        parent: {
          version: 1,
          dirs: { memory: join(root, "memory/svc/abc/ci"), pids: join(root, "pids/ci"), cpu: join(root, "cpu/ci") },
        },
      },
      limit: String(1024 * MiB),
      memsw: String(1024 * MiB),
    });
  });

  it("the launcher gives each kernel memory without swap, pids and a CPU quota, and joins all three", async () => {
    const dirs = { memory: join(root, "memory/ci"), pids: join(root, "pids/ci"), cpu: join(root, "cpu/ci") };
    await mkdir(join(dirs.memory, "k1"), { recursive: true });
    await writeFile(join(dirs.memory, "k1/memory.memsw.limit_in_bytes"), "");
    launcher("cgroup_v1", dirs, "k1", limits, 4242);
    const files = [
      "memory/ci/k1/memory.limit_in_bytes",
      "memory/ci/k1/memory.memsw.limit_in_bytes",
      "memory/ci/k1/memory.swappiness",
      "memory/ci/k1/cgroup.procs",
      "pids/ci/k1/pids.max",
      "pids/ci/k1/cgroup.procs",
      "cpu/ci/k1/cpu.cfs_period_us",
      "cpu/ci/k1/cpu.cfs_quota_us",
      "cpu/ci/k1/cgroup.procs",
    ];
    const values = Object.fromEntries(await Promise.all(files.map(async (f) => [f, await read(f)])));
    expect(Object.values(values)).toEqual([
      String(256 * MiB),
      String(256 * MiB),
      "0",
      "4242",
      "128",
      "4242",
      "100000",
      "150000",
      "4242",
    ]);
    expect(await read("cpu/ci/k1/cpu.shares")).toBe("1024");
  });

  it("a kernel started in a pool slot gets the background CPU weight", async () => {
    const dirs = { memory: join(root, "memory/ci"), pids: join(root, "pids/ci"), cpu: join(root, "cpu/ci") };
    launcher("cgroup_v1", dirs, "k2", limits, 4242, { slotsDirName: "kernel-pool", cpuShares: 20, cpuWeight: 2 });
    expect(await read("cpu/ci/k2/cpu.shares")).toBe("20");
  });
});

describe("cgroup v2 (one tree)", () => {
  const self = "0::/system.slice/ci.service\n";

  it("moves our processes to a leaf, enables the controllers and caps all kernels without swap", async () => {
    const ownDir = join(root, "system.slice/ci.service");
    await mkdir(join(ownDir, "kernels"), { recursive: true });
    await writeFile(join(ownDir, "cgroup.controllers"), "cpuset cpu io memory pids\n");
    await writeFile(join(ownDir, "cgroup.procs"), "77\n");
    await writeFile(join(ownDir, "kernels/memory.swap.max"), "max\n");
    const setup = await prepareKernelCgroups({
      name: "kernels",
      budgetBytes: 2048 * MiB,
      fsRoot: root,
      selfCgroup: self,
    });
    const at = (p: string) => readFile(join(ownDir, p), "utf8");
    expect({
      setup,
      moved: await at("service/cgroup.procs"),
      enabled: [await at("cgroup.subtree_control"), await at("kernels/cgroup.subtree_control")],
      max: await at("kernels/memory.max"),
      swap: await at("kernels/memory.swap.max"),
    }).toEqual({
      setup: { ok: true, parent: { version: 2, dir: join(ownDir, "kernels") } },
      moved: "77",
      enabled: ["+memory +pids +cpu", "+memory +pids +cpu"],
      max: String(2048 * MiB),
      swap: "0",
    });
  });

  it("says which controllers are missing instead of half-configuring", async () => {
    const ownDir = join(root, "system.slice/ci.service");
    await mkdir(ownDir, { recursive: true });
    await writeFile(join(ownDir, "cgroup.controllers"), "cpu io\n");
    const setup = await prepareKernelCgroups({ name: "kernels", budgetBytes: MiB, fsRoot: root, selfCgroup: self });
    expect(setup).toEqual({ ok: false, reason: "cgroup v2 controllers not delegated to us: memory, pids" });
  });

  it("the launcher writes memory.max, no swap, oom.group, pids.max and cpu.max, then joins", async () => {
    const parent = join(root, "kernels");
    await mkdir(join(parent, "k1"), { recursive: true });
    await writeFile(join(parent, "k1/memory.swap.max"), "max\n");
    launcher("cgroup_v2", parent, "k1", limits, 4242);
    const files = ["memory.max", "memory.swap.max", "memory.oom.group", "pids.max", "cpu.max", "cgroup.procs"];
    const values = await Promise.all(files.map((f) => read("kernels/k1", f)));
    expect(values).toEqual([String(256 * MiB), "0", "1", "128", "150000 100000", "4242"]);
  });
});

describe("out-of-memory kills", () => {
  it("are counted from memory.oom_control (v1) and memory.events (v2), with the limit", async () => {
    await writeFile(join(root, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    await writeFile(join(root, "memory.limit_in_bytes"), `${256 * MiB}\n`);
    await writeFile(join(root, "memory.events"), "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 1\n");
    await writeFile(join(root, "memory.max"), `${512 * MiB}\n`);
    expect([
      await readMemoryKills({ version: 1, dir: root }),
      await readMemoryKills({ version: 2, dir: root }),
      await readMemoryKills({ version: 2, dir: join(root, "gone") }),
    ]).toEqual([{ oomKills: 2, limitBytes: 256 * MiB }, { oomKills: 1, limitBytes: 512 * MiB }, null]);
  });
});

describe("an execution's memory limit", () => {
  it("is raised and lowered in place (v1 keeps memsw equal to it), and refused under what the kernel holds", async () => {
    await writeFile(join(root, "memory.limit_in_bytes"), String(512 * MiB));
    await writeFile(join(root, "memory.memsw.limit_in_bytes"), String(512 * MiB));
    await writeFile(join(root, "memory.usage_in_bytes"), String(300 * MiB));
    const v1 = { version: 1 as const, dir: root };
    const raised = await setMemoryLimit(v1, 1024 * MiB);
    const afterRaise = [await read("memory.limit_in_bytes"), await read("memory.memsw.limit_in_bytes")];
    const refused = await setMemoryLimit(v1, 256 * MiB);
    const lowered = await setMemoryLimit(v1, 512 * MiB);
    const afterLower = [await read("memory.limit_in_bytes"), await read("memory.memsw.limit_in_bytes")];
    await writeFile(join(root, "memory.max"), "max\n");
    await writeFile(join(root, "memory.current"), String(100 * MiB));
    const v2 = await setMemoryLimit({ version: 2, dir: root }, 1024 * MiB);
    expect({ raised, afterRaise, refused, lowered, afterLower, v2, v2File: await read("memory.max") }).toEqual({
      raised: { applied: true, previousBytes: 512 * MiB },
      afterRaise: [String(1024 * MiB), String(1024 * MiB)],
      refused: { applied: false, usageBytes: 300 * MiB },
      lowered: { applied: true, previousBytes: 1024 * MiB },
      afterLower: [String(512 * MiB), String(512 * MiB)],
      v2: { applied: true, previousBytes: null },
      v2File: String(1024 * MiB),
    });
  });
});
