import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { inject } from "vitest";
import { loadApiEnv } from "../../apps/api/src/env";
import { startApiServer } from "../../apps/api/src/server";
import { loadWorkerEnv } from "../../apps/worker/src/env";
import { startWorker } from "../../apps/worker/src/start";
import type { RunningWorker } from "../../apps/worker/src/start";
import type { WorkerEvents } from "../../apps/worker/src/events";
import { apiProcessEnv, repoRoot } from "@codeinterp/config";
import { isTerminal } from "@codeinterp/db";
import { createLogger } from "@codeinterp/logger";
import { createRedis } from "@codeinterp/queue";
import { createTestDatabase } from "./database";
import { openLogFile } from "./logs";
import type { S3Server } from "./s3-server";

export interface TestStack {
  url: string;
  adminToken: string;
  dataDir: string;
  databaseUrl: string;
  queuePrefix: string;
  env: Record<string, string>;
  /** A new user with its own API key. */
  newUser(
    userId?: string,
    kind?: "user" | "tenant",
  ): Promise<{ userId: string; key: string; id: string; kind: string }>;
  /** Another worker in this process; `events` hears it from its first moment (pool refills included). */
  startWorker(overrides?: Record<string, string>, events?: WorkerEvents): Promise<RunningWorker>;
  /** A worker in a process of its own (`apps/worker/src/main.ts`), to SIGKILL or SIGTERM; the caller ends it. */
  spawnWorker(overrides?: Record<string, string>): ChildProcess;
  close(): Promise<void>;
}

/**
 * The API (on port 0) and a worker in-process, on this file's own database, queue prefix and DATA_DIR,
 * against the real Redis and the run's real Jupyter server.
 */
export async function startTestStack(
  opts: {
    worker?: boolean;
    /** Where the stack's own worker tells what it did, from its first moment. */
    events?: WorkerEvents;
    env?: Record<string, string>;
    /** Must lie under the test root (the gateway's root_dir). */ dataDir?: string;
    /** Blobs in this S3 server's bucket (under a prefix of this stack's own) instead of DATA_DIR/blobs. */
    s3?: Pick<S3Server, "env">;
  } = {},
): Promise<TestStack> {
  const socketsBefore = openSockets();
  const db = await createTestDatabase();
  const suffix = randomBytes(5).toString("hex");
  const dataDir = opts.dataDir ?? path.join(inject("testRoot"), `data-${suffix}`);
  await mkdir(dataDir, { recursive: true });
  const adminToken = `admin-${randomBytes(12).toString("hex")}`;
  const env: Record<string, string> = {
    NODE_ENV: "test",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "debug",
    DATABASE_URL: db.url,
    REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    QUEUE_PREFIX: `citest-${suffix}`,
    JUPYTER_URL: inject("jupyterUrl"),
    JUPYTER_TOKEN: inject("jupyterToken"),
    DATA_DIR: dataDir,
    KERNEL_ROOT_DIR: inject("testRoot"),
    ADMIN_TOKEN: adminToken,
    PORT: "0",
    HOST: "127.0.0.1",
    WORKER_CONCURRENCY: "4",
    RECONCILE_INTERVAL_MS: "2000",
    // Pool kernels start bare in tests (each preload costs ~1.5 s of CPU); test/preload.int.test.ts turns it on.
    KERNEL_PRELOAD: "",
    // A fixed pool (no growth with demand): every file's stack shares the run's Jupyter server, and
    // apps/worker/test/pool-demand.int.test.ts turns it on.
    KERNEL_POOL_MAX_SIZE: "0",
    ...(opts.s3 ? opts.s3.env(`stack-${suffix}`) : {}),
    ...opts.env,
  };
  // Printed with a failed test (see failure-logs.ts); workers spawned as processes write to the same file.
  await mkdir(path.join(inject("testRoot"), "logs"), { recursive: true });
  const logFile = openLogFile(path.join(inject("testRoot"), "logs", `stack-${suffix}.log`));
  const log = createLogger({ name: "test", level: env.LOG_LEVEL as "silent", destination: logFile.stream });
  const api = await startApiServer(loadApiEnv(apiProcessEnv(env)), log.child({ app: "api" }));
  const workers: RunningWorker[] = [];
  const stack: TestStack = {
    url: api.url,
    adminToken,
    dataDir,
    databaseUrl: db.url,
    queuePrefix: env.QUEUE_PREFIX!,
    env,
    async newUser(userId = `user-${randomBytes(4).toString("hex")}`, kind: "user" | "tenant" = "user") {
      const res = await fetch(`${api.url}/v1/admin/api-keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
        body: JSON.stringify({ userId, kind }),
      });
      if (res.status !== 201) throw new Error(`api key creation failed: ${res.status} ${await res.text()}`);
      return (await res.json()) as { userId: string; key: string; id: string; kind: string };
    },
    async startWorker(overrides = {}, events?: WorkerEvents) {
      const w = await startWorker(
        loadWorkerEnv({ ...env, ...overrides }),
        log.child({ app: "worker" }),
        events ? { events } : {},
      );
      workers.push(w);
      return w;
    },
    spawnWorker(overrides = {}) {
      return spawn(process.execPath, ["--import", "tsx", "apps/worker/src/main.ts"], {
        cwd: repoRoot,
        env: { ...process.env, ...env, ...overrides },
        stdio: ["ignore", logFile.fd, logFile.fd],
      });
    },
    async close() {
      await Promise.all(workers.map((w) => w.close(5000)));
      await api.close(2000);
      await db.drop();
      await dropKeys(env.REDIS_URL!, env.QUEUE_PREFIX!);
      logFile.close();
      await expectNoLeakedSockets(socketsBefore);
    },
  };
  if (opts.worker !== false) await stack.startWorker({}, opts.events);
  return stack;
}

/** Uploads `bytes` as `name` to POST /v1/files with the key (multipart, as a browser sends it); `type` is the part's type. */
export async function uploadFile(
  baseUrl: string,
  key: string,
  bytes: Buffer | string,
  name: string,
  opts: { type?: string; headers?: Record<string, string> } = {},
) {
  const form = new FormData();
  form.append("file", new Blob([bytes], opts.type !== undefined ? { type: opts.type } : {}), name);
  const res = await fetch(`${baseUrl}/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, ...opts.headers },
    body: form,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

/** fetch with the user's key and JSON in and out; `always` headers go on every call (e.g. X-End-User). */
export function client(baseUrl: string, key: string, always: Record<string, string> = {}) {
  const call = async (method: string, p: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${baseUrl}${p}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
        ...always,
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return { status: res.status, headers: res.headers, body: json as any };
  };
  return {
    get: (p: string) => call("GET", p),
    post: (p: string, body?: unknown, headers?: Record<string, string>) => call("POST", p, body, headers),
    del: (p: string) => call("DELETE", p),
    /** Polls until the execution reaches `status`; throws if it has not within `ms`. */
    async waitForStatus(id: string, status: string, ms = 20_000) {
      const until = Date.now() + ms;
      for (;;) {
        const current = (await call("GET", `/v1/executions/${id}`)).body?.status;
        if (current === status) return;
        if (Date.now() > until)
          throw new Error(`execution ${id} did not reach ${status} within ${ms} ms (is ${current})`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    /**
     * Submits code and waits (long-polls of up to 30 s each) until the execution ends or `waitMs` has
     * passed; returns the execution as last seen (or the error body of a failed poll).
     */
    async run(body: Record<string, unknown>, waitMs = 45_000) {
      const created = await call("POST", "/v1/executions", {
        chatId: "chat-1",
        messageId: `msg-${randomBytes(4).toString("hex")}`,
        ...body,
      });
      if (created.status !== 202) throw new Error(`submit failed: ${created.status} ${JSON.stringify(created.body)}`);
      const until = Date.now() + waitMs;
      for (;;) {
        const left = Math.max(0, until - Date.now());
        const done = await call("GET", `/v1/executions/${created.body.id}?waitMs=${Math.min(left, 30_000)}`);
        if (done.status !== 200 || isTerminal(done.body?.status) || left === 0) return done.body;
      }
    },
  };
}

/** Removes this file's queues, events and kernel records from the shared Redis. */
async function dropKeys(url: string, prefix: string): Promise<void> {
  const redis = createRedis(url, { name: "test-cleanup" });
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
}

const openSockets = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;

/**
 * Fails the test file when closing the stack left sockets open (a worker, Redis, Postgres or kernel
 * connection someone forgot to close). Sockets close asynchronously, so give them a moment.
 */
async function expectNoLeakedSockets(before: number): Promise<void> {
  for (let i = 0; i < 100 && openSockets() > before; i++) await new Promise((r) => setTimeout(r, 50));
  const leaked = openSockets() - before;
  if (leaked > 0) throw new Error(`the test stack leaked ${leaked} open socket(s) after close()`);
}
