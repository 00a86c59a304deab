// `npm start`: the embedded local Jupyter server (unless JUPYTER_URL is set), then the API and one worker,
// in the foreground. Ctrl-C / SIGTERM drains and stops all of them.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { apiProcessEnv, defaultDataDir, repoRoot } from "@codeinterp/config";
import type { LocalJupyter } from "@codeinterp/kernel-host";
import { startEmbeddedJupyter } from "./embedded-jupyter";

const say = (msg: string) => console.error(`[start] ${msg}`);
// The worker drains for SHUTDOWN_DEADLINE_MS and exits by itself 5 s later; its children are killed only past that.
const stopDeadlineMs = Number(process.env.SHUTDOWN_DEADLINE_MS ?? 30_000) + 10_000;
const dataDir = path.resolve(process.env.DATA_DIR ?? defaultDataDir);
await mkdir(dataDir, { recursive: true });

/** Without ADMIN_TOKEN nobody could create an API key on a fresh machine, so the local default makes one. */
async function adminToken(): Promise<string> {
  if (process.env.ADMIN_TOKEN) return process.env.ADMIN_TOKEN;
  const file = path.join(dataDir, "admin-token");
  if (existsSync(file)) return (await readFile(file, "utf8")).trim();
  const token = randomBytes(24).toString("base64url");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}

const env: Record<string, string | undefined> = { ...process.env, DATA_DIR: dataDir, ADMIN_TOKEN: await adminToken() };
let jupyter: LocalJupyter | null = null;
if (!process.env.JUPYTER_URL) {
  jupyter = await startEmbeddedJupyter(dataDir, say);
  env.JUPYTER_URL = jupyter.url;
  env.JUPYTER_TOKEN = jupyter.token;
}

const children = new Map<string, ChildProcess>();
function launch(name: string, entry: string, childEnv: Record<string, string | undefined>) {
  const child = spawn(process.execPath, ["--import", "tsx", entry], {
    cwd: repoRoot,
    env: childEnv,
    stdio: ["ignore", "inherit", "inherit"],
  });
  children.set(name, child);
  child.on("exit", (code, signal) => {
    children.delete(name);
    if (!stopping) {
      say(`${name} exited unexpectedly (${signal ?? code}); stopping everything`);
      void stop(1);
    }
  });
}

let stopping = false;
async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  say("stopping (draining the worker, closing the API)");
  const exits = [...children.values()].map((c) => new Promise((r) => c.once("exit", r)));
  for (const c of children.values()) c.kill("SIGTERM");
  const deadline = setTimeout(() => {
    for (const c of children.values()) c.kill("SIGKILL");
  }, stopDeadlineMs);
  await Promise.all(exits);
  clearTimeout(deadline);
  await jupyter?.stop();
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

// The HTTP edge never holds the gateway's address or token: only the worker can run code.
launch("api", "apps/api/src/main.ts", apiProcessEnv(env));
// Capture and workspace preparation are many small file-system calls: more libuv threads let them (and
// their fsyncs, which the file system commits together) overlap. Node reads this once, at start.
launch("worker", "apps/worker/src/main.ts", { ...env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "16" });
say(
  `API on http://127.0.0.1:${env.PORT ?? 8080}  (admin token: ${process.env.ADMIN_TOKEN ? "from ADMIN_TOKEN" : path.join(dataDir, "admin-token")})`,
);
