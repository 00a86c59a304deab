// Boots what the bench measures: its own migrated database, a real local Jupyter server, and the API and
// one worker each in a child process (so the load generator does not share the API's event loop and each
// process's peak RSS can be read from /proc).
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";
import { ensureDatabase, migrate } from "@codeinterp/db";
import { startLocalJupyter } from "@codeinterp/kernel";
import type { LocalJupyter } from "@codeinterp/kernel";
import { repoRoot } from "@codeinterp/config";

export const quietLog = {
  debug: () => undefined,
  info: () => undefined,
  warn: (o: unknown, m?: string) => console.warn("[jupyter]", m ?? o),
  error: (o: unknown, m?: string) => console.error("[jupyter]", m ?? o),
};

function withDb(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Drops and recreates the bench database, then applies the migrations. */
export async function freshDatabase(name: string): Promise<string> {
  const base = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/codeinterp";
  const url = withDb(base, name);
  const admin = new pg.Client({ connectionString: withDb(base, "postgres") });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
  await ensureDatabase(url);
  await migrate({ url, migrationsDir: path.join(repoRoot, "prisma/migrations") });
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
  return startLocalJupyter({ rootDir: root, stateDir, port: 0, log: quietLog });
}

export interface Child {
  pid: number;
  info: Record<string, string>;
  stop(): Promise<void>;
}

/** Starts `bench/child.ts <role>` and resolves once it printed its ready line. */
export async function startChild(role: "api" | "worker", env: Record<string, string>): Promise<Child> {
  const proc: ChildProcess = spawn(process.execPath, ["--import", "tsx", path.join(repoRoot, "bench/child.ts"), role], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const info = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start within 60 s`)), 60_000);
    proc.once("exit", (code) => reject(new Error(`${role} exited with ${code} before it was ready`)));
    createInterface({ input: proc.stdout! }).on("line", (line) => {
      if (line.startsWith("BENCH_READY ")) {
        clearTimeout(timer);
        resolve(JSON.parse(line.slice(12)) as Record<string, string>);
      } else process.stderr.write(`[${role}] ${line}\n`);
    });
  });
  return {
    pid: proc.pid!,
    info,
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
