import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { migrate, ensureDatabase } from "@codeinterp/db";
import { startLocalJupyter } from "@codeinterp/kernel-host";
import type { LocalJupyter } from "@codeinterp/kernel-host";
import { loadKernelLimits, repoRoot } from "@codeinterp/config";
import { openLogFile } from "./helpers/logs";

declare module "vitest" {
  export interface ProvidedContext {
    templateDatabaseUrl: string;
    jupyterUrl: string;
    jupyterToken: string;
    testRoot: string;
  }
}

export const TEST_MAX_FILE_BYTES = 64 * 1024 * 1024;
/** Small, so the hostile-code tests can go over a kernel's memory cap quickly; pandas and plots fit easily. */
export const TEST_KERNEL_MEMORY_MB = 512;

const baseUrl = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/codeinterp";

function withDb(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * Once per run: a migrated template database that each test file clones, and one real Jupyter server
 * (unless JUPYTER_URL points at one) whose root_dir holds every test file's DATA_DIR.
 */
export default async function setup(project: TestProject) {
  const template = `codeinterp_test_tpl_${process.pid}`;
  const templateUrl = withDb(baseUrl, template);
  const admin = new pg.Client({ connectionString: withDb(baseUrl, "postgres") });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
  await admin.end();
  await ensureDatabase(templateUrl);
  await migrate({ url: templateUrl, migrationsDir: path.join(repoRoot, "prisma/migrations") });

  const testRoot = await mkdtemp(path.join(os.tmpdir(), "codeinterp-test-"));
  // Sandboxed kernels run as unprivileged uids that must be able to traverse to their workspace.
  await chmod(testRoot, 0o711);
  // Every test stack's logs, and the Jupyter server's: printed with a failed test (helpers/failure-logs.ts).
  await mkdir(path.join(testRoot, "logs"), { recursive: true });
  const jupyterLog = openLogFile(path.join(testRoot, "logs", "jupyter.log"));
  let jupyter: LocalJupyter | null = null;
  let jupyterUrl = process.env.JUPYTER_URL;
  let jupyterToken = process.env.JUPYTER_TOKEN ?? "";
  if (!jupyterUrl) {
    await mkdir(path.join(testRoot, "jupyter-state"), { recursive: true });
    jupyter = await startLocalJupyter({
      rootDir: testRoot,
      stateDir: path.join(testRoot, "jupyter-state"),
      port: 0,
      log: fileLog(jupyterLog.stream),
      // Small enough that the hostile-code tests hit the file-size and memory limits quickly.
      sandboxLimits: {
        ...loadKernelLimits({ ...process.env, KERNEL_MEMORY_MB: String(TEST_KERNEL_MEMORY_MB) }),
        maxFileBytes: TEST_MAX_FILE_BYTES,
      },
    });
    jupyterUrl = jupyter.url;
    jupyterToken = jupyter.token;
  }
  project.provide("templateDatabaseUrl", templateUrl);
  project.provide("jupyterUrl", jupyterUrl);
  project.provide("jupyterToken", jupyterToken);
  project.provide("testRoot", testRoot);

  return async () => {
    await jupyter?.stop();
    // The server's pipes may still deliver a line after it exited: the log drops writes once closed.
    jupyterLog.close();
    const c = new pg.Client({ connectionString: withDb(baseUrl, "postgres") });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
    await c.end();
    await rm(testRoot, { recursive: true, force: true });
  };
}

/** The Jupyter server's output and our notes on it, one line each, into the run's jupyter.log. */
function fileLog(out: { write(line: string): void }) {
  const line = (level: string) => (o: unknown, m?: string) => {
    out.write(
      `${new Date().toISOString()} ${level} ${m ?? ""} ${typeof o === "object" && o ? JSON.stringify(o) : String(o)}\n`,
    );
  };
  return {
    debug: line("debug"),
    info: line("info"),
    warn: (o: unknown, m?: string) => {
      line("warn")(o, m);
      console.warn("[jupyter]", m ?? o);
    },
    error: (o: unknown, m?: string) => {
      line("error")(o, m);
      console.error("[jupyter]", m ?? o);
    },
  };
}
