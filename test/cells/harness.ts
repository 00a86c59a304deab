import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { apiProcessEnv, repoRoot } from "@codeinterp/config";
import { ensureDatabase, migrate } from "@codeinterp/db";
import { createRedis, readCellBeats } from "@codeinterp/queue";
import type { CellBeat, Redis } from "@codeinterp/queue";
import { startPrivatePostgres, startPrivateRedis, waitFor } from "../faults/harness";
import type { PrivatePostgres, PrivateRedis } from "../faults/harness";
import { startS3Server } from "../helpers/s3-server";
import type { S3Server } from "../helpers/s3-server";
import { createNetwork, removeLeftovers } from "./netns";
import type { NetNode, Network } from "./netns";

/**
 * The cells suite's deployment: every cell (scripts/cell.ts: its own Jupyter server, worker and DATA_DIR) and
 * every API instance is a machine of its own (a network namespace, ./netns.ts); Postgres, Redis and a real S3
 * server (Swift with s3api) are private instances listening on the bridge, the only thing the machines share.
 */

export const QUEUE_PREFIX = "cicells";
const API_PORT = 8080;

export interface Machine {
  name: string;
  node: NetNode;
  /** The process started on it (a cell's scripts/cell.ts, or the API). */
  readonly alive: boolean;
  /** Signals the main process only (SIGTERM drains a cell) and waits for it to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILLs every process on the machine (the worker, the Jupyter server, its kernels) at once. */
  killAll(): Promise<void>;
  logTail(lines?: number): string;
}

export interface CellMachine extends Machine {
  cellId: string;
  /** Its WORKER_ID: what the executions it ran record in `worker_id`. */
  workerId: string;
}

export interface ApiMachine extends Machine {
  url: string;
}

export interface CellsStack {
  root: string;
  net: Network;
  redis: PrivateRedis;
  postgres: PrivatePostgres;
  s3: S3Server;
  /** Commands on the stack's Redis, from the test. */
  r: Redis;
  apis: ApiMachine[];
  adminToken: string;
  sql<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  startApi(name: string): Promise<ApiMachine>;
  startCell(name: string, env?: Record<string, string>): Promise<CellMachine>;
  beats(): Promise<CellBeat[]>;
  newUser(userId?: string): Promise<{ userId: string; key: string }>;
  close(): Promise<void>;
}

function spawnOn(node: NetNode, entry: string, env: Record<string, string>, logPath: string) {
  const fd = openSync(logPath, "a");
  const { cmd, args } = node.wrap(process.execPath, ["--import", "tsx", entry]);
  const child: ChildProcess = spawn(cmd, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    get alive() {
      return alive();
    },
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      // `ip netns exec` execs the program: the child's pid is the program's.
      if (alive()) child.kill(signal);
      await exited;
    },
    async killAll() {
      node.signalAll("SIGKILL");
      await exited;
      await waitFor(
        async () => node.pids().length === 0 || (node.signalAll("SIGKILL"), false),
        10_000,
        `${node.name} dead`,
      );
    },
    logTail: (lines = 30) => readFileSync(logPath, "utf8").split("\n").slice(-lines).join("\n"),
  };
}

export async function startCellsStack(opts: { env?: Record<string, string> } = {}): Promise<CellsStack> {
  removeLeftovers();
  const root = await mkdtemp(path.join(os.tmpdir(), "codeinterp-cells-"));
  await chmod(root, 0o711);
  const cleanups: Array<() => Promise<void> | void> = [];
  const net = createNetwork();
  cleanups.push(() => net.destroy());
  try {
    const host = net.bridgeIp;
    const redis = await startPrivateRedis(path.join(root, "redis"), { appendonly: true, host });
    cleanups.push(() => redis.stop());
    const postgres = await startPrivatePostgres(host);
    cleanups.push(() => postgres.destroy());
    const s3 = await startS3Server({ host });
    cleanups.push(() => s3.stop());
    const databaseUrl = postgres.url("codeinterp");
    await ensureDatabase(databaseUrl);
    await migrate({ url: databaseUrl, migrationsDir: path.join(repoRoot, "prisma/migrations") });
    const r = createRedis(redis.url, { name: "cells-test" });
    cleanups.push(() => r.disconnect());
    const sqlClient = new pg.Client({ connectionString: databaseUrl });
    sqlClient.on("error", () => undefined);
    await sqlClient.connect();
    cleanups.push(() => sqlClient.end());

    const adminToken = `admin-${randomBytes(12).toString("hex")}`;
    const base: Record<string, string> = {
      NODE_ENV: "test",
      LOG_LEVEL: process.env.CELLS_LOG_LEVEL ?? "info",
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      QUEUE_PREFIX,
      ADMIN_TOKEN: adminToken,
      // Every API instance signs and checks links with one secret.
      SIGNED_LINK_SECRET: randomBytes(32).toString("hex"),
      ...s3.env("blobs"),
      S3_FORCE_PATH_STYLE: "true",
      BLOB_CACHE_MB: "64",
      ...opts.env,
    };
    const apis: ApiMachine[] = [];
    const stack: CellsStack = {
      root,
      net,
      redis,
      postgres,
      s3,
      r,
      apis,
      adminToken,
      sql: async <T extends pg.QueryResultRow>(text: string, values?: unknown[]) =>
        (await sqlClient.query<T>(text, values as unknown[])).rows,
      async startApi(name) {
        const node = net.addNode(name);
        const dataDir = path.join(root, name, "data");
        mkdirSync(dataDir, { recursive: true });
        const env = { ...base, DATA_DIR: dataDir, HOST: node.ip, PORT: String(API_PORT) };
        const proc = spawnOn(node, "apps/api/src/main.ts", apiProcessEnv(env), path.join(root, `${name}.log`));
        const url = `http://${node.ip}:${API_PORT}`;
        await waitFor(
          async () => {
            if (!proc.alive) throw new Error(`${name} exited at start:\n${proc.logTail()}`);
            return (await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) }).catch(() => null))?.ok;
          },
          60_000,
          `${name} listening`,
        );
        const api: ApiMachine = Object.assign(proc, { name, node, url });
        apis.push(api);
        cleanups.push(() => proc.killAll());
        return api;
      },
      async startCell(name, env = {}) {
        const node = net.addNode(name);
        const cellRoot = path.join(root, name);
        const dataDir = path.join(cellRoot, "data");
        mkdirSync(dataDir, { recursive: true });
        const workerId = `${name}-worker`;
        const cellEnv: Record<string, string> = {
          ...base,
          DATA_DIR: dataDir,
          CELL_ID: name,
          WORKER_ID: workerId,
          WORKER_CONCURRENCY: "3",
          KERNEL_POOL_SIZE: "1",
          KERNEL_POOL_MAX_SIZE: "2",
          // Room for every message the cases keep alive: an eviction at the ceiling (a reset of its own) is not
          // what they test. And room beyond that: a cell's room for new messages is the smaller of its free
          // slots and what is left under the ceiling, and after the load case cell-b held 22 of 24, so new
          // messages nearly all went to cell-c and the drain case found none on cell-b (CI saw it).
          MAX_LIVE_KERNELS: "48",
          // Short, so a lost cell's jobs move on within seconds; long enough that a cell slowed by this busy
          // 2-core box is not taken for gone (its beats and its jobs' locks then lapse: see hand-on.ts).
          JOB_LOCK_DURATION_MS: "15000",
          JOB_STALLED_INTERVAL_MS: "1000",
          RECONCILE_INTERVAL_MS: "1000",
          CELL_HEARTBEAT_MS: "500",
          CELL_LOST_MS: "10000",
          SHUTDOWN_DEADLINE_MS: "20000",
          // As the fault suite: plain kernels unless CELLS_KERNEL_SANDBOX asks for the sandbox.
          KERNEL_SANDBOX: process.env.CELLS_KERNEL_SANDBOX ?? "off",
          ...env,
        };
        const proc = spawnOn(node, "scripts/cell.ts", cellEnv, path.join(root, `${name}.log`));
        const cell: CellMachine = Object.assign(proc, { name, node, cellId: name, workerId });
        cleanups.push(() => proc.killAll());
        // Ready once it beats: it serves its queues from then on. A start on a loaded 2-core box is slow.
        await waitFor(
          async () => {
            if (!proc.alive) throw new Error(`${name} exited at start:\n${proc.logTail()}`);
            return (await stack.beats()).some((b) => b.cellId === name);
          },
          180_000,
          `${name} beating`,
        ).catch((err: Error) => {
          throw new Error(`${err.message}; its log ends:\n${proc.logTail()}`);
        });
        return cell;
      },
      beats: () => readCellBeats(r, QUEUE_PREFIX),
      async newUser(userId = `user-${randomBytes(4).toString("hex")}`) {
        const res = await fetch(`${apis[0]!.url}/v1/admin/api-keys`, {
          method: "POST",
          headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
          body: JSON.stringify({ userId }),
        });
        if (res.status !== 201) throw new Error(`api key creation failed: ${res.status} ${await res.text()}`);
        return (await res.json()) as { userId: string; key: string };
      },
      async close() {
        for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
        if (!process.env.CELLS_KEEP) await rm(root, { recursive: true, force: true }).catch(() => undefined);
      },
    };
    return stack;
  } catch (err) {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

export const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/** A user's calls to one API instance. */
export function client(baseUrl: string, key: string) {
  const auth = { authorization: `Bearer ${key}` };
  const json = async (res: Response) => {
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
    } catch {
      return { status: res.status, body: text as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
    }
  };
  return {
    async submit(body: Record<string, unknown>) {
      return json(
        await fetch(`${baseUrl}/v1/executions`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(30_000),
        }),
      );
    },
    async execution(id: string, waitMs = 0) {
      return json(
        await fetch(`${baseUrl}/v1/executions/${id}?waitMs=${waitMs}`, {
          headers: auth,
          signal: AbortSignal.timeout(waitMs + 30_000),
        }),
      );
    },
    /** Runs code and waits for its end (up to `ms`). */
    async run(body: Record<string, unknown>, ms = 60_000) {
      const sub = await this.submit(body);
      if (sub.status !== 202) throw new Error(`submit: ${sub.status} ${JSON.stringify(sub.body)}`);
      const id = (sub.body as { id: string }).id;
      return waitFor(
        async () => {
          const e = await this.execution(id, 10_000);
          return ["completed", "failed", "timed_out", "cancelled"].includes(e.body?.status) ? e.body : undefined;
        },
        ms,
        `execution ${id} to end`,
      );
    },
    async upload(name: string, bytes: Buffer) {
      const form = new FormData();
      form.append("file", new Blob([bytes]), name);
      return json(
        await fetch(`${baseUrl}/v1/files`, {
          method: "POST",
          headers: auth,
          body: form,
          signal: AbortSignal.timeout(30_000),
        }),
      );
    },
    async download(fileId: string): Promise<{ status: number; bytes: Buffer }> {
      const res = await fetch(`${baseUrl}/v1/files/${fileId}/content`, {
        headers: auth,
        signal: AbortSignal.timeout(30_000),
      });
      return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
    },
  };
}

export function report(name: string, data: unknown): void {
  console.log(`[cells] ${name}: ${JSON.stringify(data)}`);
}
