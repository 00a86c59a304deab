import { chmod, chown, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createKernelGateway,
  GatewayUnavailableError,
  remoteKernelHost,
  silentLog,
  watchGateway,
} from "@codeinterp/kernel";
import { SANDBOX_KERNEL_NAME, startLocalJupyter } from "../src";
import { descendantsOf, isAlive } from "../src/process-tree";
import type { GatewayMonitor, KernelGateway } from "@codeinterp/kernel";
import type { JupyterRestart, LocalJupyter } from "../src";

async function waitFor(fn: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > until) throw new Error(`${what} not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let tmp: string;
let server: LocalJupyter;
let monitor: GatewayMonitor;
let gateway: KernelGateway;
const restarts: JupyterRestart[] = [];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "kernel-liveness-"));
  // Sandboxed kernels run as their workspace's uid: the directories above it must be traversable.
  await chmod(tmp, 0o711);
  await mkdir(join(tmp, "root", "ws"), { recursive: true });
  await chmod(join(tmp, "root"), 0o711);
  await chown(join(tmp, "root", "ws"), 100_123, 100_123);
  server = await startLocalJupyter({
    rootDir: join(tmp, "root"),
    stateDir: join(tmp, "state"),
    log: silentLog,
    supervise: true,
    liveness: { intervalMs: 250, probeTimeoutMs: 1000, unresponsiveMs: 3000 },
    onRestart: (r) => restarts.push(r),
  });
  monitor = watchGateway({
    baseUrl: server.url,
    token: server.token,
    log: silentLog,
    intervalMs: 250,
    probeTimeoutMs: 1000,
    unresponsiveMs: 3000,
  });
  gateway = createKernelGateway({
    baseUrl: server.url,
    token: server.token,
    log: silentLog,
    monitor,
    host: remoteKernelHost,
  });
});

afterAll(async () => {
  monitor?.stop();
  await server?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe("a Jupyter server that stops answering", () => {
  it("ends a run on it within seconds; the supervisor kills it with its kernels and restarts it on the same port and token", async () => {
    const session = await gateway.startKernel();
    const kernelPid = Number((await session.execute("import os; print(os.getpid())")).stdout.trim());
    expect(isAlive(kernelPid)).toBe(true);
    const run = session.execute("import time\ntime.sleep(120)", { timeoutMs: 300_000 });
    run.catch(() => undefined);
    await waitFor(() => session.status === "busy", 10_000, "kernel busy");

    const { pid, url } = server;
    const t0 = Date.now();
    process.kill(pid, "SIGSTOP");
    try {
      // Its deadline is five minutes away: the gateway going silent ends it.
      await expect(run).rejects.toBeInstanceOf(GatewayUnavailableError);
      expect(Date.now() - t0).toBeLessThan(15_000);
      await waitFor(() => restarts.length === 1 && server.pid !== pid, 20_000, "server restarted");
    } finally {
      if (isAlive(pid)) process.kill(pid, "SIGCONT");
    }
    expect(restarts[0]?.reason).toBe("unresponsive");
    expect(server.restarts).toBe(1);
    // Kernels never outlive their server.
    await waitFor(() => !isAlive(pid) && !isAlive(kernelPid), 10_000, "old server and kernel gone");

    // Same address and token: the monitor sees the restart, and a new kernel works.
    expect(server.url).toBe(url);
    expect(await monitor.whenAnswered(10_000)).toBe(true);
    expect(monitor.health()).toMatchObject({ reachable: true, restarts: 1 });
    expect(await gateway.hasKernel(session.id)).toBe(false);
    const next = await gateway.startKernel();
    expect((await next.execute("print(6 * 7)")).stdout).toBe("42\n");
    await next.shutdown();
  });

  it("kills sandboxed kernels (bubblewrap) with it too", async () => {
    expect(server.sandbox.available).toBe(true);
    const sandboxed = createKernelGateway({
      baseUrl: server.url,
      token: server.token,
      log: silentLog,
      monitor,
      kernelName: SANDBOX_KERNEL_NAME,
      host: remoteKernelHost,
    });
    const session = await sandboxed.startKernel({ path: "ws" });
    expect((await session.execute("import os; print(os.getuid())")).stdout).toBe("100123\n");
    const { pid } = server;
    const tree = descendantsOf(pid);
    expect(tree.length).toBeGreaterThanOrEqual(2);
    const before = restarts.length;
    process.kill(pid, "SIGSTOP");
    try {
      await waitFor(() => restarts.length > before && server.pid !== pid, 20_000, "server restarted");
    } finally {
      if (isAlive(pid)) process.kill(pid, "SIGCONT");
    }
    await waitFor(
      () => !isAlive(pid) && tree.every((p) => !isAlive(p)),
      10_000,
      "old server and every process below it gone",
    );
    session.dispose();
  });
});
