import { describe, expect, it } from "vitest";
import { ConfigError, loadBlobStore, loadKernelLimits } from "@codeinterp/config";
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

  it("blobs: local by default; s3://bucket/prefix with endpoint, path style, credentials and a per-process cache", () => {
    expect(loadBlobStore(loadApiEnv({ DATA_DIR: "/srv/ci" }), "api")).toEqual({ kind: "local", dataDir: "/srv/ci" });
    expect(loadBlobStore(loadApiEnv({ DATA_DIR: "/srv/ci", BLOB_STORE_URL: "file:" }), "api").kind).toBe("local");
    const s3 = loadBlobStore(
      loadWorkerEnv({
        DATA_DIR: "/srv/ci",
        BLOB_STORE_URL: "s3://ci-blobs/prod/v1/",
        S3_ENDPOINT: "http://10.0.0.5:8080",
        AWS_ACCESS_KEY_ID: "AKIA",
        AWS_SECRET_ACCESS_KEY: "secret",
        BLOB_CACHE_MB: "10",
      }),
      "worker",
    );
    expect(s3).toEqual({
      kind: "s3",
      bucket: "ci-blobs",
      prefix: "prod/v1/",
      endpoint: "http://10.0.0.5:8080",
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "AKIA", secretAccessKey: "secret" },
      cacheDir: "/srv/ci/blob-cache/worker",
      cacheBytes: 10 * 1024 * 1024,
    });
    // AWS itself: virtual-hosted style, the SDK's own credential chain.
    const aws = loadBlobStore(loadApiEnv({ BLOB_STORE_URL: "s3://ci-blobs", S3_REGION: "eu-west-1" }), "api");
    expect(aws).toMatchObject({ kind: "s3", prefix: "", region: "eu-west-1", forcePathStyle: false });
    expect(aws).not.toHaveProperty("credentials");
    expect(() => loadApiEnv({ BLOB_STORE_URL: "gs://bucket" })).toThrow(ConfigError);
  });
});
