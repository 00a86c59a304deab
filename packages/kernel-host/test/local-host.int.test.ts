import { chown, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKernelGateway, remoteKernelHost, silentLog } from "@codeinterp/kernel";
import type { KernelGateway, KernelHost, KernelSession } from "@codeinterp/kernel";
import {
  KERNEL_CPU_WEIGHTS,
  SANDBOX_KERNEL_NAME,
  createLocalKernelHost,
  kernelCpuCgroup,
  readKernelCpuWeight,
} from "../src";
import type { KernelCgroupParent, LocalJupyter, SandboxSpecMetadata } from "../src";
import { startOwnServer } from "./helpers/own-server";
import type { OwnServer } from "./helpers/own-server";

// The injected host on a sandboxed server of its own (root, bubblewrap, cgroups): what the worker does with
// a kernel's memory and CPU goes through it, and a remote host answers "not known" for the same kernel.
const MiB = 1024 ** 2;
let own: OwnServer;
let tmp: string;
let server: LocalJupyter;
let parent: KernelCgroupParent | null;
let host: KernelHost;
let gateway: KernelGateway;
let session: KernelSession;

beforeAll(async () => {
  own = await startOwnServer("local-host-int", () => ({
    kernelTemplate: false,
    sandboxLimits: { memoryBytes: 256 * MiB },
  }));
  ({ tmp, server } = own);
  await mkdir(join(tmp, "root", "ws"));
  await chown(join(tmp, "root", "ws"), 100_123, 100_123);
  // Where the worker finds the kernels' cgroups: the sandbox kernelspec's metadata.
  const specs = await own.gateway.kernelSpecs();
  parent = (specs[SANDBOX_KERNEL_NAME]?.metadata.codeinterp as SandboxSpecMetadata | undefined)?.cgroup ?? null;
  host = createLocalKernelHost({ cgroup: parent });
  gateway = createKernelGateway({
    baseUrl: server.url,
    token: server.token,
    log: silentLog,
    kernelName: SANDBOX_KERNEL_NAME,
    host,
  });
  session = await gateway.startKernel({ path: "ws" });
});

afterAll(async () => {
  await session?.shutdown().catch(() => undefined);
  await own?.stop();
});

const allocate = (mib: number) => `held = b"x" * (${mib} * 1024 * 1024)\nprint(len(held) // 1024 // 1024)`;

describe("the local kernel host", () => {
  it("runs kernels in cgroups here (without them nothing below can be checked)", () => {
    expect(server.sandbox.caps.cgroup, server.sandbox.caps.reason).not.toBeNull();
    expect(parent).not.toBeNull();
  });

  it("reads what the kernels use together and what the machine has left", async () => {
    const before = await host.kernelsMemory();
    expect(before?.usedBytes).toBeGreaterThan(0);
    expect(before?.hostAvailableBytes).toBeGreaterThan(0);
    expect((await session.execute(allocate(100))).stdout).toBe("100\n");
    const after = await host.kernelsMemory();
    expect(after!.usedBytes - before!.usedBytes).toBeGreaterThanOrEqual(90 * MiB);
    await session.execute("del held");
  });

  it("raises a kernel's memory limit, so code that would have been killed runs", async () => {
    expect(await session.setMemoryLimit(448 * MiB)).toEqual({ applied: true, previousBytes: 256 * MiB });
    const r = await session.execute(allocate(320), { timeoutMs: 30_000 });
    expect(r.status).toBe("ok");
    expect(r.stdout).toBe("320\n");
    await session.execute("del held");
  });

  it("sets a kernel's CPU weight", async () => {
    const weight = () => readKernelCpuWeight(kernelCpuCgroup(parent!, session.id));
    const { background, normal } = KERNEL_CPU_WEIGHTS;
    expect(await session.setCpuPriority("background")).toBe(true);
    expect([background.v1, background.v2]).toContain(await weight());
    expect(await session.setCpuPriority("normal")).toBe(true);
    expect([normal.v1, normal.v2]).toContain(await weight());
  });

  it("reports a kernel killed for going over its limit as a memory kill, with that limit", async () => {
    const r = await session.execute(allocate(1024), { timeoutMs: 30_000 });
    expect(r.status).toBe("died");
    expect(r.error?.ename).toBe("MemoryLimitExceeded");
    expect(r.error?.evalue).toContain("448 MiB");
  });
});

describe("the remote kernel host, for a kernel of the same server", () => {
  // Waits for the killed kernel's death to show; once, on a loaded box, that took longer than the default 60 s.
  it("knows nothing, changes nothing, and a memory kill is only a death", { timeout: 180_000 }, async () => {
    const remote = createKernelGateway({
      baseUrl: server.url,
      token: server.token,
      log: silentLog,
      kernelName: SANDBOX_KERNEL_NAME,
      host: remoteKernelHost,
    });
    // A kernel of its own: the one above was killed for its memory, and the server's restart of it may time out
    // on a loaded box (a connect to it then waits for a start that never comes; CI saw it once).
    const kernel = await remote.startKernel({ path: "ws" });
    try {
      expect(await remoteKernelHost.kernelsMemory()).toBeNull();
      expect(await kernel.setMemoryLimit(512 * MiB)).toBeNull();
      expect(await kernel.setCpuPriority("background")).toBe(false);
      const r = await kernel.execute(allocate(1024), { timeoutMs: 30_000 });
      expect(r.status).toBe("died");
      expect(r.error?.ename).toBe("KernelDied");
    } finally {
      await kernel.shutdown().catch(() => undefined);
    }
  });
});
