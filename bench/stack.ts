// The stack a scenario measures: a fresh migrated database, a real local Jupyter server, and the API and one
// worker each in a child process, with their own QUEUE_PREFIX and DATA_DIR under os.tmpdir(). Torn down
// completely by stop() (kernels, server, database, files).
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { apiProcessEnv } from "@codeinterp/config";
import { createDb } from "@codeinterp/db";
import { createKernelGateway, remoteKernelHost } from "@codeinterp/kernel";
import { cellKeyPrefix, createRedis, poolOwnersKey } from "./bench-deps";
import { apiClient } from "./client";
import type { Bench, Json, Params, Target } from "./context";
import { KERNELS, MiB, sleep } from "./context";
import { dropDatabase, freshDatabase, quietLog, startChild, startJupyter, startRedis } from "./services";
import type { Child } from "./services";
import { now } from "./stats";

export interface StackOptions {
  quick: boolean;
  P: Params;
  results: Json;
  targets: Target[];
  log: (msg: string) => void;
  /**
   * "bench": the set-up the latency, file and API scenarios were always measured with (plain python3 kernels
   * unless BENCH_KERNEL_SANDBOX says otherwise, per-execution caps raised for the file scenarios).
   * "product": what `npm start` runs (KERNEL_SANDBOX=auto and every other setting at its default), for the
   * scenarios that measure what users see.
   */
  config: "bench" | "product";
  /** Sandboxed kernels run as unprivileged uids: every directory above their workspace must be traversable. */
  traversableRoot: boolean;
  /** The checkout whose API and worker run (default this one; the A/B bench runs another beside it). */
  checkout?: string;
  /** The database's name (default BENCH_DB_NAME or codeinterp_bench); two stacks at once need two. */
  dbName?: string;
}

export interface Stack extends Bench {
  stop(): Promise<void>;
}

/**
 * Another checkout's Jupyter server, as its own bench starts it: what its kernel-host sets up (the kernels'
 * settings, the sandbox) is part of what an A/B run compares. A checkout whose bench has no startJupyter gets
 * this one's.
 */
async function jupyterOf(checkout: string, log: (msg: string) => void): Promise<typeof startJupyter> {
  try {
    const theirs = (await import(pathToFileURL(path.join(path.resolve(checkout), "bench/services.ts")).href)) as {
      startJupyter?: typeof startJupyter;
    };
    if (theirs.startJupyter) return theirs.startJupyter;
    log(`${checkout}: its bench has no startJupyter; using this one's`);
  } catch (err) {
    log(`${checkout}: its bench cannot start its Jupyter server (${(err as Error).message}); using this one's`);
  }
  return startJupyter;
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const t0 = Date.now();
  const root = await mkdtemp(path.join(os.tmpdir(), "codeinterp-bench-"));
  // mkdtemp makes it 0700, which fails the sandbox probe.
  const sandboxed = o.config === "product" || (process.env.BENCH_KERNEL_SANDBOX ?? "off") !== "off";
  if (o.traversableRoot || sandboxed) await chmod(root, 0o711);
  const dataDir = path.join(root, "data");
  await mkdir(dataDir, { recursive: true });
  // BENCH_DB_NAME: several checkouts benching on one Postgres must not drop each other's database.
  const dbName = o.dbName ?? process.env.BENCH_DB_NAME ?? "codeinterp_bench";
  const databaseUrl = await freshDatabase(dbName, o.checkout);
  const jupyter = await (o.checkout ? await jupyterOf(o.checkout, o.log) : startJupyter)(root);
  const redis = await startRedis();
  const adminToken = `admin-${randomBytes(12).toString("hex")}`;
  const env: Record<string, string> = {
    NODE_ENV: "production",
    LOG_LEVEL: "warn",
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    QUEUE_PREFIX: `cibench-${randomBytes(4).toString("hex")}`,
    // Named, so the bench finds the cell's kernel records (its pool) under `<prefix>:cell:bench`.
    CELL_ID: BENCH_CELL,
    JUPYTER_URL: jupyter.url,
    JUPYTER_TOKEN: jupyter.token,
    DATA_DIR: dataDir,
    KERNEL_ROOT_DIR: root,
    ADMIN_TOKEN: adminToken,
    PORT: "0",
    HOST: "127.0.0.1",
    ...(o.config === "bench"
      ? {
          WORKER_CONCURRENCY: String(KERNELS),
          KERNEL_POOL_SIZE: "2",
          // The plain python3 kernelspec, like the raw and fresh baselines; BENCH_KERNEL_SANDBOX=auto|on
          // measures bubblewrap-sandboxed kernels instead (where the worker supports them).
          KERNEL_SANDBOX: process.env.BENCH_KERNEL_SANDBOX ?? "off",
          MAX_WAIT_MS: "120000",
          EXECUTION_TIMEOUT_MS: "180000",
          // The capture and attachment scenarios go past the default per-execution caps on purpose.
          MAX_FILES_PER_EXECUTION: "1000",
          MAX_GENERATED_FILES: "5000",
          MAX_GENERATED_FILE_BYTES: String(2 * 1024 * MiB),
          MAX_GENERATED_TOTAL_BYTES: String(4 * 1024 * MiB),
        }
      : {}),
  };
  let api: Child | null = null;
  let worker: Child | null = null;
  const db = createDb({ url: databaseUrl, poolSize: 4 });
  const poolRedis = createRedis(env.REDIS_URL!, { name: "bench-pool" });
  const poolSize = () => poolRedis.hlen(poolOwnersKey(benchKernelPrefix(env)));
  const gateway = createKernelGateway({
    baseUrl: jupyter.url,
    token: jupyter.token,
    log: quietLog,
    host: remoteKernelHost,
  });
  const stop = async () => {
    poolRedis.disconnect();
    await api?.stop().catch(() => undefined);
    await worker?.stop().catch(() => undefined);
    // Kernels the worker left (message kernels, its pool) and any of ours.
    for (const k of await gateway.listKernels().catch(() => []))
      await gateway.shutdownKernel(k.id).catch(() => undefined);
    await jupyter.stop().catch(() => undefined);
    await redis.stop().catch(() => undefined);
    await db.$disconnect().catch(() => undefined);
    await dropDatabase(dbName).catch(() => undefined);
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    [api, worker] = await Promise.all([
      startChild("api", apiProcessEnv(env), o.checkout),
      startChild("worker", env, o.checkout),
    ]);
    const apiUrl = api.info.url!;
    const keyRes = await fetch(`${apiUrl}/v1/admin/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ userId: "bench-user" }),
    });
    if (keyRes.status !== 201) throw new Error(`api key: ${keyRes.status} ${await keyRes.text()}`);
    const key = ((await keyRes.json()) as { key: string }).key;
    o.log(
      `stack (${o.config} config) up in ${((Date.now() - t0) / 1000).toFixed(1)} s (api pid ${api.pid}, worker pid ${worker.pid}, ${redis.pid ? `own redis-server pid ${redis.pid}` : "shared Redis"})`,
    );
    return {
      quick: o.quick,
      P: o.P,
      root,
      dataDir,
      dbName,
      env,
      jupyter,
      redisPid: redis.pid,
      api,
      worker,
      apiUrl,
      key,
      adminToken,
      ci: apiClient(apiUrl, key),
      db,
      gateway,
      results: o.results,
      target: (name, target, value, met) => o.targets.push({ name, target, value, met }),
      log: o.log,
      msg: (tag) => `bench-${tag}-${randomBytes(3).toString("hex")}`,
      async metricsOf(ids) {
        const rows = await db.execution.findMany({ where: { id: { in: ids } }, select: { id: true, metrics: true } });
        return new Map(rows.map((r) => [r.id, (r.metrics ?? {}) as Record<string, number | boolean>]));
      },
      /**
       * Waits until the worker's pool has `atLeast` kernels ready (it records them in Redis, pool-owners);
       * returns the wait (ms). 75 s covers a refill that must wait, at the live-kernel ceiling, for a message
       * kernel idle for a minute (earlier scenarios leave message kernels behind).
       */
      async poolReady(atLeast = 1) {
        // Demand may have raised the pool above its base size and since let it shrink back: no more is waited for.
        const want = Math.min(atLeast, Math.max(1, Number(env.KERNEL_POOL_SIZE ?? 2)));
        const t = now();
        const deadline = Date.now() + 75_000;
        while ((await poolSize()) < want && Date.now() < deadline) await sleep(50);
        return now() - t;
      },
      poolSize,
      lastCompletedId: "",
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

const BENCH_CELL = "bench";

/** Where the bench worker keeps its kernel records (pool owners, mappings): its cell's keys. */
export function benchKernelPrefix(env: Record<string, string | undefined>): string {
  return cellKeyPrefix(env.QUEUE_PREFIX!, env.CELL_ID ?? BENCH_CELL);
}
