import { describe, expect, it } from "vitest";
import { ConfigError, loadKernelLimits } from "@codeinterp/config";
import { loadApiEnv } from "../../../apps/api/src/env";
import { loadWorkerEnv } from "../../../apps/worker/src/env";

describe("env parsing", () => {
  it("has working local defaults for everything", () => {
    const api = loadApiEnv({});
    expect(api.PORT).toBe(8080);
    expect(api.DATABASE_URL).toBe("postgresql://postgres@127.0.0.1:5432/codeinterp");
    expect(api.REDIS_URL).toBe("redis://127.0.0.1:6379");
    expect(api.ADMIN_TOKEN).toBeUndefined();
    const worker = loadWorkerEnv({ DATA_DIR: "/srv/ci" });
    expect(worker.KERNEL_ROOT_DIR).toBe("/srv/ci");
    expect(worker.WORKER_CONCURRENCY).toBe(4);
    expect(worker.KERNEL_POOL_SIZE).toBe(2);
  });

  it("the API never holds the kernel gateway's address or token; workers do", () => {
    const given = { JUPYTER_URL: "http://127.0.0.1:8888", JUPYTER_TOKEN: "gateway-secret" };
    const api = loadApiEnv(given);
    expect(Object.keys(api)).not.toContain("JUPYTER_TOKEN");
    expect(Object.keys(api)).not.toContain("JUPYTER_URL");
    expect(JSON.stringify(api)).not.toContain("gateway-secret");
    expect(loadWorkerEnv(given)).toMatchObject(given);
  });

  it("coerces numbers and booleans from strings", () => {
    const worker = loadWorkerEnv({ WORKER_CONCURRENCY: "8", KERNEL_SANDBOX: "on", EXECUTION_TIMEOUT_MS: "5000" });
    expect(worker.WORKER_CONCURRENCY).toBe(8);
    expect(worker.KERNEL_SANDBOX).toBe("on");
    expect(worker.EXECUTION_TIMEOUT_MS).toBe(5000);
  });

  it("lists every invalid setting in one ConfigError", () => {
    let err: unknown;
    try {
      loadApiEnv({ PORT: "http", DATABASE_URL: "not a url", ADMIN_TOKEN: "short" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toContain("PORT");
    expect(msg).toContain("DATABASE_URL");
    expect(msg).toContain("ADMIN_TOKEN");
  });

  it("kernel caps: 2 GiB, one core and 256 processes by default; the all-kernels budget is left to the kernel package unless set", () => {
    const MiB = 1024 ** 2;
    expect([
      loadKernelLimits({}),
      loadKernelLimits({
        KERNEL_MEMORY_MB: "512",
        KERNEL_CPUS: "0.5",
        KERNEL_MAX_PROCESSES: "64",
        KERNELS_MEMORY_BUDGET_MB: "4096",
      }),
    ]).toEqual([
      { memoryBytes: 2048 * MiB, cpus: 1, maxProcesses: 256 },
      { memoryBytes: 512 * MiB, cpus: 0.5, maxProcesses: 64, kernelsMemoryBudgetBytes: 4096 * MiB },
    ]);
    expect(() => loadKernelLimits({ KERNEL_MEMORY_MB: "lots", KERNEL_CPUS: "0" })).toThrow(
      /KERNEL_MEMORY_MB[\s\S]*KERNEL_CPUS/,
    );
  });
});
