import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  chownSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { apiProcessEnv, loadKernelLimits, repoRoot } from "@codeinterp/config";
import { ensureDatabase, migrate } from "@codeinterp/db";
import { freePort, startLocalJupyter } from "@codeinterp/kernel-host";
import type { LocalJupyter, StartLocalJupyterOptions } from "@codeinterp/kernel-host";

/**
 * Fault-test harness. Every dependency here is a PRIVATE instance on a free port in a temp dir: a Redis,
 * a Postgres cluster, a Jupyter server, the API and the worker as child processes. Nothing in this file
 * touches the machine's shared Postgres (5432) or Redis (6379), so stopping and killing is safe while
 * other test runs use those.
 */

/**
 * A fixed pause. Only for what IS the fault or its load (how long a dependency stays down, a load generator's
 * pacing, a client's retry backoff) and for the interval of a poll with a deadline; to wait for something to
 * happen, poll for it with waitFor.
 */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export { freePort };

async function waitForPort(
  port: number,
  ms: number,
  alive: () => boolean = () => true,
  host = "127.0.0.1",
): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host);
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`process for port ${port} exited before listening`);
    if (Date.now() > until) throw new Error(`nothing listens on ${port} after ${ms} ms`);
    await sleep(100);
  }
}

export async function waitFor<T>(fn: () => Promise<T | undefined | false>, ms: number, what = "condition"): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`${what} not met within ${ms} ms`);
    await sleep(200);
  }
}

const quietLog = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

// ---------------------------------------------------------------- Redis

export interface PrivateRedis {
  url: string;
  port: number;
  start(): Promise<void>;
  /** SIGKILL (default) or SIGTERM the server and wait until it is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Persistence for the next start(); with appendonly off a restart loses every key. */
  setAppendonly(on: boolean): void;
}

/** `host`: the address it listens on (default 127.0.0.1; the cells suite binds it to its bridge). */
export async function startPrivateRedis(
  dir: string,
  opts: { appendonly: boolean; host?: string },
): Promise<PrivateRedis> {
  const host = opts.host ?? "127.0.0.1";
  let appendonly = opts.appendonly;
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  let child: ChildProcess | null = null;
  const start = async () => {
    const c = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        host,
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        appendonly ? "yes" : "no",
        "--dir",
        dir,
        "--daemonize",
        "no",
      ],
      { stdio: "ignore" },
    );
    child = c;
    await waitForPort(port, 10_000, () => c.exitCode === null && c.signalCode === null, host);
  };
  const stop = async (signal: NodeJS.Signals = "SIGKILL") => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise<void>((r) => c.once("exit", () => r()));
    c.kill(signal);
    await gone;
  };
  await start();
  return {
    url: `redis://${host}:${port}`,
    port,
    start,
    stop,
    setAppendonly: (on: boolean) => {
      appendonly = on;
    },
  };
}

// ---------------------------------------------------------------- Postgres

export interface PrivatePostgres {
  /** The server URL without a database name. */
  url(db: string): string;
  port: number;
  start(): Promise<void>;
  stop(mode?: "fast" | "immediate"): Promise<void>;
  destroy(): Promise<void>;
}

const PG_BIN = "/usr/lib/postgresql/15/bin";

function asPostgres(cmd: string, args: string[]): void {
  // Postgres refuses to run as root: every binary runs as the postgres OS user.
  const r = spawnSync(
    "setpriv",
    ["--reuid=postgres", "--regid=postgres", "--init-groups", path.join(PG_BIN, cmd), ...args],
    {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", HOME: "/tmp" },
      timeout: 60_000,
    },
  );
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr || r.stdout}`);
}

/** `host`: the address it listens on (default 127.0.0.1). */
export async function startPrivatePostgres(host = "127.0.0.1"): Promise<PrivatePostgres> {
  const port = await freePort();
  // Its own temp dir (owned by postgres), not under the stack's root, which is private to root.
  const dir = mkdtempSync(path.join(os.tmpdir(), "codeinterp-faults-pg-"));
  const uid = Number(spawnSync("id", ["-u", "postgres"], { encoding: "utf8" }).stdout.trim());
  const gid = Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim());
  chownSync(dir, uid, gid);
  const pgdata = path.join(dir, "pgdata");
  asPostgres("initdb", ["-D", pgdata, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"]);
  // Bound to a bridge, it takes its clients there too (initdb's trust covers loopback only).
  if (host !== "127.0.0.1") appendFileSync(path.join(pgdata, "pg_hba.conf"), "host all all samenet trust\n");
  const logFile = path.join(dir, "postgres.log");
  const start = async () => {
    asPostgres("pg_ctl", [
      "-D",
      pgdata,
      "-l",
      logFile,
      "-w",
      "-t",
      "30",
      "-o",
      `-p ${port} -k ${dir} -c listen_addresses=${host} -c fsync=off -c full_page_writes=off -c max_connections=200`,
      "start",
    ]);
  };
  const stop = async (mode: "fast" | "immediate" = "fast") => {
    asPostgres("pg_ctl", ["-D", pgdata, "-m", mode, "-w", "-t", "30", "stop"]);
  };
  await start();
  return {
    url: (db) => `postgresql://postgres@${host}:${port}/${db}`,
    port,
    start,
    stop,
    async destroy() {
      try {
        await stop("immediate");
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- the stack

export interface ChildApp {
  readonly pid: number;
  readonly alive: boolean;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** RSS of the process in bytes, from /proc. */
  rss(): number;
}

export interface WorkerApp extends ChildApp {
  /** Its WORKER_ID: what executions it claimed record in `worker_id`. */
  readonly workerId: string;
}

export interface FaultStack {
  root: string;
  dataDir: string;
  apiUrl: string;
  adminToken: string;
  env: Record<string, string>;
  redis: PrivateRedis;
  postgres: PrivatePostgres;
  jupyter: LocalJupyter;
  jupyterPort: number;
  api: ChildApp;
  worker: WorkerApp | null;
  /** A pg client on the stack's own database. */
  sql<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  newUser(userId?: string): Promise<{ userId: string; key: string }>;
  startWorker(overrides?: Record<string, string>): Promise<WorkerApp>;
  restartJupyter(): Promise<void>;
  close(): Promise<void>;
}

function spawnApp(entry: string, env: Record<string, string>, logPath: string): ChildApp {
  const fd = openSync(logPath, "a");
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  return {
    get pid() {
      return child.pid ?? -1;
    },
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    async kill(signal: NodeJS.Signals = "SIGKILL") {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill(signal);
      await gone;
    },
    rss() {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      const m = /VmRSS:\s+(\d+) kB/.exec(status);
      return m ? Number(m[1]) * 1024 : 0;
    },
  };
}

/**
 * A whole private deployment: Redis, Postgres (migrated), a local Jupyter server, the API and (unless
 * `worker: false`) one worker, the two apps as child processes so a test can SIGKILL them and read their RSS.
 */
export async function startFaultStack(
  opts: {
    appendonly?: boolean;
    worker?: boolean;
    env?: Record<string, string>;
    /** Extra options for the local Jupyter server, e.g. `supervise: true` as `npm start` runs it. */
    jupyter?: Pick<StartLocalJupyterOptions, "supervise" | "liveness" | "onRestart">;
  } = {},
): Promise<FaultStack> {
  const root = await mkdtemp(path.join(os.tmpdir(), "codeinterp-faults-"));
  // Sandboxed kernels (FAULTS_KERNEL_SANDBOX, or a test's KERNEL_SANDBOX) run as other uids: they must traverse it.
  await chmod(root, 0o711);
  const dataDir = path.join(root, "data");
  mkdirSync(dataDir, { recursive: true });
  const cleanups: Array<() => Promise<void>> = [];
  try {
    const redis = await startPrivateRedis(path.join(root, "redis"), { appendonly: opts.appendonly ?? true });
    cleanups.push(() => redis.stop());
    const postgres = await startPrivatePostgres();
    cleanups.push(() => postgres.destroy());
    const databaseUrl = postgres.url("codeinterp");
    await ensureDatabase(databaseUrl);
    await migrate({ url: databaseUrl, migrationsDir: path.join(repoRoot, "prisma/migrations") });

    const jupyterPort = await freePort();
    const jupyterState = path.join(root, "jupyter-state");
    const token = randomBytes(16).toString("hex");
    const startJupyter = () =>
      startLocalJupyter({
        rootDir: root,
        stateDir: jupyterState,
        port: jupyterPort,
        token,
        log: quietLog,
        sandboxLimits: loadKernelLimits(process.env),
        ...opts.jupyter,
      });
    let jupyter = await startJupyter();
    cleanups.push(() => jupyter.stop());

    const apiPort = await freePort();
    const adminToken = `admin-${randomBytes(12).toString("hex")}`;
    const env: Record<string, string> = {
      NODE_ENV: "test",
      LOG_LEVEL: process.env.FAULTS_LOG_LEVEL ?? "warn",
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      QUEUE_PREFIX: "cifaults",
      JUPYTER_URL: jupyter.url,
      JUPYTER_TOKEN: token,
      DATA_DIR: dataDir,
      KERNEL_ROOT_DIR: root,
      ADMIN_TOKEN: adminToken,
      PORT: String(apiPort),
      HOST: "127.0.0.1",
      WORKER_CONCURRENCY: "4",
      KERNEL_POOL_SIZE: "2",
      JOB_LOCK_DURATION_MS: "2000",
      JOB_STALLED_INTERVAL_MS: "1000",
      RECONCILE_INTERVAL_MS: "1000",
      SHUTDOWN_DEADLINE_MS: "3000",
      // The bubblewrap sandbox is being built (issue 6); until it is stable, faults run against plain kernels.
      // FAULTS_KERNEL_SANDBOX=auto|on runs them sandboxed.
      KERNEL_SANDBOX: process.env.FAULTS_KERNEL_SANDBOX ?? "off",
      ...opts.env,
    };
    const api = spawnApp("apps/api/src/main.ts", apiProcessEnv(env), path.join(root, "api.log"));
    cleanups.push(() => api.kill());
    await waitForPort(apiPort, 30_000, () => api.alive);
    const apiUrl = `http://127.0.0.1:${apiPort}`;

    const sqlClient = new pg.Client({ connectionString: databaseUrl });
    // The stack's Postgres is stopped on purpose in one test: a dead connection must not crash the run.
    sqlClient.on("error", () => undefined);
    await sqlClient.connect();
    let sqlConn: pg.Client = sqlClient;
    const sql = async <T extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]> => {
      try {
        return (await sqlConn.query<T>(text, values as unknown[])).rows;
      } catch (err) {
        // Reconnect once after an outage.
        const c = new pg.Client({ connectionString: databaseUrl });
        c.on("error", () => undefined);
        await c.connect();
        void sqlConn.end().catch(() => undefined);
        sqlConn = c;
        if ((err as { code?: string }).code && !/^(57P01|08)/.test(String((err as { code?: string }).code))) throw err;
        return (await sqlConn.query<T>(text, values as unknown[])).rows;
      }
    };

    let workerSeq = 0;
    const stack: FaultStack = {
      root,
      dataDir,
      apiUrl,
      adminToken,
      env,
      redis,
      postgres,
      get jupyter() {
        return jupyter;
      },
      jupyterPort,
      api,
      worker: null,
      sql,
      async newUser(userId = `user-${randomBytes(4).toString("hex")}`) {
        const res = await fetch(`${apiUrl}/v1/admin/api-keys`, {
          method: "POST",
          headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
          body: JSON.stringify({ userId }),
        });
        if (res.status !== 201) throw new Error(`api key creation failed: ${res.status} ${await res.text()}`);
        return (await res.json()) as { userId: string; key: string };
      },
      async startWorker(overrides = {}) {
        const workerEnv = { ...env, LOG_LEVEL: "info", WORKER_ID: `faults-worker-${++workerSeq}`, ...overrides };
        const w: WorkerApp = Object.assign(
          spawnApp("apps/worker/src/main.ts", workerEnv, path.join(root, `worker-${workerSeq}.log`)),
          { workerId: workerEnv.WORKER_ID },
        );
        stack.worker = w;
        cleanups.push(() => w.kill());
        // Ready once it logged so (the worker logs at info into its own file).
        const logPath = path.join(root, `worker-${workerSeq}.log`);
        await waitFor(
          async () => {
            if (!w.alive) throw new Error(`worker exited at start; see ${logPath}`);
            return readFileSync(logPath, "utf8").includes('"msg":"worker ready"') ? true : undefined;
          },
          30_000,
          "worker start",
        );
        return w;
      },
      async restartJupyter() {
        await jupyter.stop();
        jupyter = await startJupyter();
      },
      async close() {
        await sqlConn.end().catch(() => undefined);
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
        if (!process.env.FAULTS_KEEP) await rm(root, { recursive: true, force: true }).catch(() => undefined);
      },
    };
    if (opts.worker !== false) await stack.startWorker();
    return stack;
  } catch (err) {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await rm(root, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------- API calls and invariants

/** A client's backoff between retries of a submit the API answered 503 (pacing, not a wait for anything). */
const SUBMIT_RETRY_MS = 300;

export function api(baseUrl: string, key: string) {
  const call = async (method: string, p: string, body?: unknown, timeoutMs = 30_000) => {
    const res = await fetch(`${baseUrl}${p}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    return { status: res.status, body: json as any };
  };
  return {
    get: (p: string, timeoutMs?: number) => call("GET", p, undefined, timeoutMs),
    post: (p: string, body?: unknown, timeoutMs?: number) => call("POST", p, body, timeoutMs),
    /** Submits; retries while the API answers 503 (a dependency away), as a well-behaved client would. */
    async submit(body: Record<string, unknown>): Promise<string> {
      for (let i = 0; ; i++) {
        const r = await call("POST", "/v1/executions", body).catch((err: unknown) => ({
          status: 0,
          body: String(err),
        }));
        if (r.status === 202) return (r.body as { id: string }).id;
        if ((r.status === 503 || r.status === 0) && i < 100) {
          await sleep(SUBMIT_RETRY_MS);
          continue;
        }
        throw new Error(`submit failed: ${r.status} ${JSON.stringify(r.body)}`);
      }
    },
  };
}

export const TERMINAL = ["completed", "failed", "timed_out", "cancelled"];

export interface Census {
  total: number;
  byStatus: Record<string, number>;
  failureCodes: Record<string, number>;
  /** One message per failure code, to say what happened. */
  failureSamples: Record<string, string>;
  stuck: string[];
  duplicates: number;
}

/** Waits until every execution in the stack's database is terminal (or the deadline), then counts. */
export async function settle(stack: FaultStack, ms: number, chatId?: string): Promise<Census> {
  const until = Date.now() + ms;
  let active: Array<{ id: string; status: string }>;
  for (;;) {
    active = await stack.sql<{ id: string; status: string }>(
      `SELECT id, status FROM executions WHERE status NOT IN ('completed','failed','timed_out','cancelled') AND ($1::text IS NULL OR chat_id = $1)`,
      [chatId ?? null],
    );
    if (active.length === 0 || Date.now() > until) break;
    await sleep(500);
  }
  if (active.length > 0)
    reportLogsOf(
      stack,
      active.map((a) => a.id),
    );
  return census(
    stack,
    active.map((a) => `${a.id}:${a.status}`),
    chatId,
  );
}

/**
 * What the stack's API and worker logs say about executions left non-terminal (or a failed follow-up), so a
 * failure on a CI machine (whose stack is gone with its logs) shows where they stopped.
 */
function reportLogsOf(stack: FaultStack, ids: string[]): void {
  // Each log read once: its lines, named after their file.
  const lines = readdirSync(stack.root)
    .filter((f) => f.endsWith(".log"))
    .flatMap((f) =>
      readFileSync(path.join(stack.root, f), "utf8")
        .split("\n")
        .map((l) => ({ f, l })),
    );
  for (const id of ids) {
    report(
      `logs of ${id}`,
      lines
        .filter(({ l }) => l.includes(id))
        .map(({ f, l }) => `${f}: ${l.slice(0, 600)}`)
        .slice(-25),
    );
  }
  // Kernel-level warnings carry kernel ids, not execution ids.
  const warnings = lines.filter(({ l }) => /"level":(40|50|60)/.test(l)).map(({ f, l }) => `${f}: ${l.slice(0, 400)}`);
  report("warnings", warnings.slice(-30));
}

/**
 * Waits until a chat's flow is under way: one of its executions has completed and another is running now, so
 * a fault injected next lands mid-run with work both behind and ahead of it.
 */
export async function waitForFlowUnderWay(stack: FaultStack, chatId: string, ms = 30_000): Promise<void> {
  await waitFor(
    async () => {
      const [row] = await stack.sql<{ completed: string; running: string }>(
        `SELECT count(*) FILTER (WHERE status = 'completed') AS completed, count(*) FILTER (WHERE status = 'running') AS running
         FROM executions WHERE chat_id = $1`,
        [chatId],
      );
      return Number(row?.completed ?? 0) > 0 && Number(row?.running ?? 0) > 0;
    },
    ms,
    `chat ${chatId}: an execution completed and another running`,
  );
}

/** Counts executions (of one chat, or all) by status and failure code; finds duplicate file registrations. */
export async function census(stack: FaultStack, stuck: string[] = [], chatId?: string): Promise<Census> {
  const rows = await stack.sql<{ status: string; code: string | null; n: string; msg: string | null }>(
    `SELECT status, failure->>'code' AS code, count(*) AS n, min(failure->>'message') AS msg FROM executions WHERE ($1::text IS NULL OR chat_id = $1) GROUP BY 1, 2`,
    [chatId ?? null],
  );
  const failureSamples: Record<string, string> = {};
  const byStatus: Record<string, number> = {};
  const failureCodes: Record<string, number> = {};
  let total = 0;
  for (const r of rows) {
    total += Number(r.n);
    byStatus[r.status] = (byStatus[r.status] ?? 0) + Number(r.n);
    if (r.code) failureCodes[r.code] = (failureCodes[r.code] ?? 0) + Number(r.n);
    if (r.code && r.msg) failureSamples[r.code] = r.msg.slice(0, 300);
  }
  const dup = await stack.sql(
    `SELECT execution_id, path, count(*) FROM files WHERE execution_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1`,
  );
  const badTerminal = await stack.sql<{ id: string }>(
    `SELECT id FROM executions WHERE status IN ('completed','failed','timed_out','cancelled') AND finished_at IS NULL`,
  );
  return {
    total,
    byStatus,
    failureCodes,
    failureSamples,
    stuck: [...stuck, ...badTerminal.map((b) => `${b.id}:no finished_at`)],
    duplicates: dup.length,
  };
}

/** Terminal rows must not move again: snapshot (status, finished_at) to compare later. */
export async function terminalSnapshot(stack: FaultStack): Promise<Map<string, string>> {
  const rows = await stack.sql<{ id: string; status: string; finished_at: Date }>(
    `SELECT id, status, finished_at FROM executions WHERE status IN ('completed','failed','timed_out','cancelled')`,
  );
  return new Map(rows.map((r) => [r.id, `${r.status}@${r.finished_at.toISOString()}`]));
}

/**
 * The code every fault workload runs: appends its token to the message's run log (so a run counted twice
 * would show), writes one output file, sleeps a little so faults land mid-run, prints the token.
 */
export function workloadCode(token: string, sleepS = 0.4): string {
  return [
    "import time",
    `open('/mnt/data/runs.log', 'a').write('${token}\\n')`,
    `open('/mnt/data/out-${token}.txt', 'w').write('${token}')`,
    `time.sleep(${sleepS})`,
    `print('${token}')`,
  ].join("\n");
}

export interface SubmittedRun {
  id: string;
  token: string;
  /** A message id belongs to one chat: its follow-up is sent in the same one. */
  chatId: string;
  messageId: string;
}

/**
 * After a fault: every completed execution's token appears exactly once in its message's run log, no
 * token appears twice (no code ran twice), and every completed execution's output file is still there
 * and readable by a follow-up execution of the same message (the workspace is intact).
 */
export async function checkWorkspaces(
  stack: FaultStack,
  key: string,
  runs: SubmittedRun[],
): Promise<{
  messagesChecked: number;
  ranTwice: string[];
  missingCompleted: string[];
  /** What each of those executions reported (its error, the start of its stdout), to tell what happened. */
  missingWhy: string[];
  followUpFailures: string[];
}> {
  const a = api(stack.apiUrl, key);
  const status = new Map(
    (await stack.sql<{ id: string; status: string }>(`SELECT id, status FROM executions`)).map((r) => [r.id, r.status]),
  );
  const byMessage = new Map<string, SubmittedRun[]>();
  for (const r of runs) byMessage.set(r.messageId, [...(byMessage.get(r.messageId) ?? []), r]);
  const ranTwice: string[] = [];
  const missingCompleted: string[] = [];
  const followUpFailures: string[] = [];
  for (const [messageId, list] of byMessage) {
    const chatId = list[0]!.chatId;
    const completed = list.filter((r) => status.get(r.id) === "completed").map((r) => r.token);
    const code = [
      "import json, os",
      "log = open('/mnt/data/runs.log').read().split() if os.path.exists('/mnt/data/runs.log') else []",
      `want = ${JSON.stringify(completed)}`,
      "files = {t: open(f'/mnt/data/out-{t}.txt').read() == t for t in want if os.path.exists(f'/mnt/data/out-{t}.txt')}",
      "print(json.dumps({'log': log, 'files': files}))",
    ].join("\n");
    const id = await a.submit({ chatId, messageId, code });
    const done = await a.get(`/v1/executions/${id}?waitMs=30000`, 40_000);
    if (done.body?.status !== "completed" || done.body.result?.error) {
      reportLogsOf(stack, [id]);
      followUpFailures.push(
        `${messageId}: ${done.body?.status} ${JSON.stringify(done.body?.failure ?? done.body?.result?.error)}`,
      );
      continue;
    }
    const seen = JSON.parse(String(done.body.result.stdout)) as { log: string[]; files: Record<string, boolean> };
    const counts = new Map<string, number>();
    for (const t of seen.log) counts.set(t, (counts.get(t) ?? 0) + 1);
    for (const [t, n] of counts) if (n > 1) ranTwice.push(`${t} x${n}`);
    for (const t of completed) if (counts.get(t) !== 1 || seen.files[t] !== true) missingCompleted.push(t);
  }
  const missingIds = runs.filter((r) => missingCompleted.includes(r.token)).map((r) => r.id);
  const missingWhy = (
    await stack.sql<{ id: string; error: string | null; stdout: string | null }>(
      `SELECT id, result->'error'->>'ename' || ': ' || (result->'error'->>'evalue') AS error, left(result->>'stdout', 80) AS stdout
       FROM executions WHERE id = ANY($1::uuid[])`,
      [missingIds],
    )
  ).map((r) => `${r.id}: error ${r.error ?? "none"}; stdout ${JSON.stringify(r.stdout)}`);
  return { messagesChecked: byMessage.size, ranTwice, missingCompleted, missingWhy, followUpFailures };
}

/** Kernels the Jupyter server currently runs. */
export async function listKernels(stack: FaultStack): Promise<Array<{ id: string; execution_state: string }>> {
  const res = await fetch(`${stack.jupyter.url}/api/kernels`, {
    headers: { authorization: `token ${stack.env.JUPYTER_TOKEN}` },
  });
  // jupyter_server 1.23 sometimes answers 500 while kernels start or stop: treat it as "none seen this time".
  const body = (await res.json().catch(() => null)) as unknown;
  return Array.isArray(body) ? (body as Array<{ id: string; execution_state: string }>) : [];
}

export async function deleteKernel(stack: FaultStack, id: string): Promise<number> {
  const res = await fetch(`${stack.jupyter.url}/api/kernels/${id}`, {
    method: "DELETE",
    headers: { authorization: `token ${stack.env.JUPYTER_TOKEN}` },
  });
  return res.status;
}

export function report(name: string, data: unknown): void {
  console.log(`[faults] ${name}: ${JSON.stringify(data)}`);
}
