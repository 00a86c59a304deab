import { describe, expect, it } from "vitest";
import { DEFAULT_SANDBOX_LIMITS, defaultKernelsMemoryBudget, launcherConfig } from "../src";

const GiB = 1024 ** 3;

describe("kernel limits", () => {
  it("kernels together leave Postgres, Redis and the service max(4 GiB, a quarter) of the machine", () => {
    expect([
      defaultKernelsMemoryBudget(24 * GiB),
      defaultKernelsMemoryBudget(8 * GiB),
      defaultKernelsMemoryBudget(64 * GiB + 3),
    ]).toEqual([18 * GiB, 4 * GiB, 48 * GiB + 2]);
  });

  it("the address-space rlimit stays well above the cgroup's memory cap, and the cgroup trips before RLIMIT_NPROC", () => {
    const cgroup = { version: 2 as const, dir: "/sys/fs/cgroup/kernels" };
    const big = launcherConfig({ limits: { ...DEFAULT_SANDBOX_LIMITS, memoryBytes: 4 * GiB }, ipcRoot: "/x", cgroup });
    const small = launcherConfig({
      limits: { ...DEFAULT_SANDBOX_LIMITS, memoryBytes: GiB / 4 },
      ipcRoot: "/x",
      cgroup: null,
    });
    expect([
      big.limits.addressSpaceBytes,
      big.limits.rlimitProcesses,
      small.limits.addressSpaceBytes,
      small.limits.rlimitProcesses,
    ]).toEqual([16 * GiB, 512, 8 * GiB, 256]);
  });
});
