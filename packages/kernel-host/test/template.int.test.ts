import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { chown, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SANDBOX_KERNEL_NAME, isAlive, kernelMemoryCgroup } from "../src";
import { createKernelGateway, remoteKernelHost, silentLog } from "@codeinterp/kernel";
import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { LocalJupyter } from "../src";
import { AS_CONFIGURED, cellsUnderOurSettings } from "./helpers/kernel-settings";
import { startOwnServer } from "./helpers/own-server";
import type { OwnServer } from "./helpers/own-server";

// Sandboxed kernels forked from the preloaded template (kernel-template.py), on a server of their own (as root,
// like the embedded server): each one is confined like a started kernel and inherits nothing of the template
// or of other kernels.
let own: OwnServer;
let tmp: string;
let server: LocalJupyter;
let gateway: KernelGateway;
let uid = 100_400;

beforeAll(async () => {
  own = await startOwnServer("template-int");
  ({ tmp, server, gateway } = own);
});

afterAll(async () => {
  await own?.stop();
});

async function kernelIn(name: string): Promise<{ kernel: KernelSession; uid: number }> {
  const dir = join(tmp, "root", name);
  await mkdir(dir);
  const owner = uid++;
  await chown(dir, owner, owner);
  return { kernel: await gateway.startKernel({ path: name }), uid: owner };
}

const processes = () =>
  readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
};
const parentOf = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
};
/** The template's own process: this process started it (its kernels share its command line). */
const templatePids = () =>
  processes().filter((p) => parentOf(p) === process.pid && cmdline(p).some((a) => a.endsWith("kernel-template.py")));
/** Host pids in the kernel's memory cgroup forked from the template (the sandbox's holder is a Python of its own). */
async function kernelPids(kernelId: string): Promise<number[]> {
  const cg = server.sandbox.caps.cgroup ? kernelMemoryCgroup(cgroupParent(), kernelId) : null;
  if (!cg) return [];
  const procs = (await readFile(join(cg.dir, "cgroup.procs"), "utf8")).split("\n").filter(Boolean).map(Number);
  return procs.filter((p) => cmdline(p).some((a) => a.endsWith("kernel-template.py")));
}
function cgroupParent() {
  const spec = JSON.parse(
    readFileSync(join(tmp, "state", "data", "kernels", SANDBOX_KERNEL_NAME, "kernel.json"), "utf8"),
  ) as {
    metadata: { codeinterp: { cgroup: Parameters<typeof kernelMemoryCgroup>[0] } };
  };
  return spec.metadata.codeinterp.cgroup;
}
const fdTarget = (pid: number, fd: string) => {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return "";
  }
};
/**
 * Sockets and pipes a process holds other than the Jupyter server's stdout and stderr, which every kernel
 * writes to (ipykernel keeps a copy of each while it captures output through pipes of its own).
 */
const socketInodes = (pid: number) => {
  const fds = readdirSync(`/proc/${pid}/fd`);
  const std = new Set(["1", "2"].map((fd) => fdTarget(server.pid, fd)));
  return new Set(
    fds.map((fd) => fdTarget(pid, fd)).filter((l) => (l.startsWith("socket:") || l.startsWith("pipe:")) && !std.has(l)),
  );
};

describe("kernels forked from the preloaded template", () => {
  it("start with the preload in memory, as the workspace's uid, with no capabilities, network or host view", async () => {
    expect(server.sandbox.available).toBe(true);
    expect(templatePids()).toHaveLength(1);
    const { kernel, uid: owner } = await kernelIn("confined");
    try {
      const r = await kernel.execute(`
import os, sys, socket
status = dict(l.split(":\\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\\t" in l)
try:
    socket.create_connection(("127.0.0.1", ${new URL(server.url).port}), timeout=2)
    net = "reached the server"
except OSError:
    net = "no network"
print("pandas" in sys.modules, "matplotlib.pyplot" in sys.modules)
print(os.getuid(), os.getgid(), os.getcwd(), status["CapEff"].strip(), status["NoNewPrivs"].strip())
print(net, len([p for p in os.listdir("/proc") if p.isdigit()]) < 10)`);
      expect(r.stdout.split("\n")).toEqual([
        "True True",
        `${owner} ${owner} /mnt/data 0000000000000000 1`,
        "no network True",
        "",
      ]);
      // Host side: the kernel process sits in its own cgroup (its caps apply), and is not the template.
      if (server.sandbox.caps.cgroup) {
        const pids = await kernelPids(kernel.id);
        expect(pids).toHaveLength(1);
        expect(templatePids()).not.toContain(pids[0]);
      }
    } finally {
      await kernel.shutdown();
    }
  });

  it("inherits nothing: no variable, file, environment, descriptor or RNG state of the template or another kernel", async () => {
    const a = await kernelIn("first");
    const b = await kernelIn("second");
    try {
      await a.kernel.execute(
        `secret = "alpha"\nopen("/mnt/data/a.txt", "w").write("a")\nopen("/tmp/a.txt", "w").write("a")`,
      );
      const probe = `
import os, random, numpy
print("secret" in globals(), sorted(os.listdir("/mnt/data")), sorted(n for n in os.listdir("/tmp") if n != "matplotlib" and not n.startswith(".")))
print(sorted(os.environ))
print(repr(numpy.random.rand()), repr(random.random()))`;
      const [ra, rb] = [await a.kernel.execute(probe), await b.kernel.execute(probe)];
      const [la, lb] = [ra.stdout.split("\n"), rb.stdout.split("\n")];
      expect(lb[0]).toBe("False [] []");
      expect(la[0]).toBe("True ['a.txt'] ['a.txt']");
      // Exactly what a started kernel's sandbox sets (bwrap --clearenv plus the launcher's list), and what
      // ipykernel adds for itself; nothing of the template's or the service's environment.
      expect(JSON.parse((lb[1] ?? "").replaceAll("'", '"'))).toEqual(
        expect.arrayContaining(["HOME", "LANG", "MPLBACKEND", "MPLCONFIGDIR", "PATH", "PYTHONDONTWRITEBYTECODE"]),
      );
      expect(lb[1]).not.toMatch(/JUPYTER|NODE|DATABASE|REDIS|TOKEN|SECRET/);
      // Two kernels from one template draw different numbers: RNG state was not inherited.
      expect(la[2]).not.toBe(lb[2]);
      expect((la[2] ?? "").split(" ")[0]).not.toBe((lb[2] ?? "").split(" ")[0]);
      if (server.sandbox.caps.cgroup) {
        const [pa] = await kernelPids(a.kernel.id);
        const [pb] = await kernelPids(b.kernel.id);
        const [template] = templatePids();
        const shared = (x: Set<string>, y: Set<string>) => [...x].filter((s) => y.has(s));
        expect(shared(socketInodes(pa!), socketInodes(template!))).toEqual([]);
        expect(shared(socketInodes(pa!), socketInodes(pb!))).toEqual([]);
      }
    } finally {
      await Promise.all([a.kernel.shutdown(), b.kernel.shutdown()]);
    }
  });

  it("keep their history in memory only and reply without a pause, with all of each cell's output, as the server's plain kernels do", async () => {
    const { kernel } = await kernelIn("history");
    const plain = createKernelGateway({
      baseUrl: server.url,
      token: server.token,
      log: silentLog,
      kernelName: "python3",
      host: remoteKernelHost,
    });
    const unsandboxed = await plain.startKernel({ path: "history" });
    try {
      expect(await cellsUnderOurSettings(kernel)).toEqual({ printed: AS_CONFIGURED, counted: 1, lostOutput: 0 });
      expect(await cellsUnderOurSettings(unsandboxed)).toEqual({ printed: AS_CONFIGURED, counted: 1, lostOutput: 0 });
    } finally {
      await Promise.all([kernel.shutdown(), unsandboxed.shutdown()]);
    }
  });

  it("a shut-down kernel leaves no process behind", async () => {
    if (!server.sandbox.caps.cgroup) return;
    const { kernel } = await kernelIn("gone");
    const [pid] = await kernelPids(kernel.id);
    expect(pid).toBeDefined();
    await kernel.shutdown();
    await expect.poll(() => isAlive(pid!), { timeout: 10_000 }).toBe(false);
  });

  it("while the template is down kernels start the plain way, and forked again once it is back", async () => {
    const [template] = templatePids();
    process.kill(template!, "SIGKILL");
    await expect.poll(() => templatePids().includes(template!), { timeout: 5_000 }).toBe(false);
    const plain = await kernelIn("plain");
    try {
      const r = await plain.kernel.execute(`import sys\nprint("pandas" in sys.modules)`);
      // Started by its own Python unless the supervisor brought the template back in between.
      expect(["False\n", "True\n"]).toContain(r.stdout);
    } finally {
      await plain.kernel.shutdown();
    }
    await expect.poll(() => templatePids().length, { timeout: 60_000 }).toBe(1);
    await expect
      .poll(
        async () => {
          const k = await kernelIn(`again-${uid}`);
          try {
            return (await k.kernel.execute(`import sys\nprint("pandas" in sys.modules)`)).stdout;
          } finally {
            await k.kernel.shutdown();
          }
        },
        { timeout: 60_000, interval: 500 },
      )
      .toBe("True\n");
  });
});
