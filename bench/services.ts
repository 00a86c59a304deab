// Boots what the bench measures: its own migrated database, a real local Jupyter server, and the API and
// one worker each in a child process (so the load generator does not share the API's event loop and each
// process's peak RSS can be read from /proc).
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";
import { ensureDatabase, migrate } from "@codeinterp/db";
import { freePort, startLocalJupyter } from "@codeinterp/kernel-host";
import type { LocalJupyter } from "@codeinterp/kernel-host";
import { loadKernelLimits, repoRoot } from "@codeinterp/config";
import type { CallCounts } from "./call-counter";

export const quietLog = {
  debug: () => undefined,
  info: () => undefined,
  warn: (o: unknown, m?: string) => console.warn("[jupyter]", m ?? "", typeof o === "string" ? o : JSON.stringify(o)),
  error: (o: unknown, m?: string) => console.error("[jupyter]", m ?? o),
};

function withDb(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Drops and recreates the bench database, then applies the migrations. */
/** `checkout`: the repository whose migrations make it (the A/B bench runs another checkout's code). */
export async function freshDatabase(name: string, checkout = repoRoot): Promise<string> {
  const base = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/codeinterp";
  const url = withDb(base, name);
  const admin = new pg.Client({ connectionString: withDb(base, "postgres") });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
  await ensureDatabase(url);
  await migrate({ url, migrationsDir: path.join(checkout, "prisma/migrations") });
  return url;
}

export async function dropDatabase(name: string): Promise<void> {
  const base = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/codeinterp";
  const admin = new pg.Client({ connectionString: withDb(base, "postgres") });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
}

export async function startJupyter(root: string): Promise<LocalJupyter> {
  const stateDir = path.join(root, "jupyter-state");
  await mkdir(stateDir, { recursive: true });
  return startLocalJupyter({
    rootDir: root,
    stateDir,
    port: 0,
    log: quietLog,
    sandboxLimits: loadKernelLimits(process.env),
  });
}

export interface BenchRedis {
  url: string;
  /** The server's pid (its CPU is then the stack's alone); null when the bench uses a shared REDIS_URL. */
  pid: number | null;
  stop(): Promise<void>;
}

/**
 * A Redis server of the stack's own (when redis-server is on PATH and BENCH_SHARED_REDIS is unset), so its
 * commandstats and CPU are the stack's alone; otherwise REDIS_URL, shared with whatever else uses it.
 */
export async function startRedis(): Promise<BenchRedis> {
  const shared = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  if (process.env.BENCH_SHARED_REDIS) return { url: shared, pid: null, stop: async () => undefined };
  const port = await freePort();
  const proc = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const spawned = await new Promise<boolean>((resolve) => {
    proc.once("spawn", () => resolve(true));
    proc.once("error", () => resolve(false));
  });
  if (!spawned) return { url: shared, pid: null, stop: async () => undefined };
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error("the bench's redis-server did not start");
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    pid: proc.pid!,
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export interface Child {
  pid: number;
  info: Record<string, string>;
  /** The Postgres statements and Redis commands the process has sent so far. */
  counts(): Promise<CallCounts>;
  stop(): Promise<void>;
}

/** Starts `bench/child.ts <role>` of `checkout` and resolves once it printed its ready line. */
export async function startChild(
  role: "api" | "worker",
  env: Record<string, string>,
  checkout = repoRoot,
): Promise<Child> {
  // BENCH_NODE_ARGS_API / BENCH_NODE_ARGS_WORKER, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile a child.
  const extra = (process.env[`BENCH_NODE_ARGS_${role.toUpperCase()}`] ?? "").split(" ").filter(Boolean);
  const proc: ChildProcess = spawn(
    process.execPath,
    [...extra, "--import", "tsx", path.join(checkout, "bench/child.ts"), role],
    {
      cwd: checkout,
      // The worker runs with the thread pool `npm start` and the compose file give it.
      env: {
        ...process.env,
        ...(role === "worker" ? { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "16" } : {}),
        ...env,
      },
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  // Answers to "COUNTS", in the order they were asked.
  const countWaiters: Array<(c: CallCounts) => void> = [];
  const info = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start within 180 s`)), 180_000);
    proc.once("exit", (code) => reject(new Error(`${role} exited with ${code} before it was ready`)));
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      if (line.startsWith("BENCH_COUNTS ")) {
        countWaiters.shift()?.(JSON.parse(line.slice(13)) as CallCounts);
      } else if (line.startsWith("BENCH_READY ")) {
        clearTimeout(timer);
        resolve(JSON.parse(line.slice(12)) as Record<string, string>);
      } else if (!/^(Starting WebSocket|Kernel: dead)/.test(line)) process.stderr.write(`[${role}] ${line}\n`);
    });
  });
  return {
    pid: proc.pid!,
    info,
    counts() {
      return new Promise<CallCounts>((resolve) => {
        countWaiters.push(resolve);
        proc.stdin!.write("COUNTS\n");
      });
    },
    async stop() {
      if (proc.exitCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** VmRSS / VmHWM of a process in bytes. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Resets VmHWM to the current RSS (Linux clear_refs "5"); false where not permitted. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

export const randomSuffix = () => randomBytes(4).toString("hex");

const CLK_TCK = 100;

function procStat(pid: number): { ppid: number; cpuMs: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(rest[1]), cpuMs: ((Number(rest[11]) + Number(rest[12])) * 1000) / CLK_TCK };
  } catch {
    return null;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

/**
 * CPU time (user + system, ms) used so far by each part of the stack: the API and worker processes, the
 * Jupyter server with its kernels, this bench process, the Postgres backends serving the bench database
 * (their process title names it), and the Redis server (the stack's own when it has one, else every
 * redis-server on the machine).
 */
export function cpuSnapshot(
  pids: { api: number; worker: number; jupyter: number; redis?: number | null },
  dbName: string,
): Record<string, number> {
  const all = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
  const stats = new Map<number, { ppid: number; cpuMs: number }>();
  for (const pid of all) {
    const st = procStat(pid);
    if (st) stats.set(pid, st);
  }
  const out: Record<string, number> = {
    api: 0,
    worker: 0,
    jupyter_and_kernels: 0,
    bench_driver: 0,
    postgres_bench_db: 0,
    redis_server: 0,
  };
  const descendsFrom = (pid: number, root: number) => {
    for (let p = pid, i = 0; p > 1 && i < 20; i++) {
      if (p === root) return true;
      p = stats.get(p)?.ppid ?? 0;
    }
    return false;
  };
  for (const [pid, st] of stats) {
    if (pid === pids.api) out.api! += st.cpuMs;
    else if (pid === pids.worker) out.worker! += st.cpuMs;
    else if (pid === process.pid) out.bench_driver! += st.cpuMs;
    else if (pids.redis && pid === pids.redis) out.redis_server! += st.cpuMs;
    else if (descendsFrom(pid, pids.jupyter)) out.jupyter_and_kernels! += st.cpuMs;
    else {
      const cmd = cmdline(pid);
      if (cmd.startsWith("postgres:") && cmd.includes(` ${dbName} `)) out.postgres_bench_db! += st.cpuMs;
      else if (!pids.redis && cmd.startsWith("redis-server")) out.redis_server! += st.cpuMs;
    }
  }
  return out;
}

export function cpuDelta(a: Record<string, number>, b: Record<string, number>, per: number): Record<string, number> {
  return Object.fromEntries(Object.keys(b).map((k) => [k, Math.round(((b[k]! - (a[k] ?? 0)) / per) * 100) / 100]));
}
