// `npm start`: the embedded local Jupyter server (unless JUPYTER_URL is set), then the API and one worker,
// in the foreground. Ctrl-C / SIGTERM drains and stops all of them.
// `--cell`: a cell of a deployment past one machine (deploy/kustomize, docs/kubernetes.md): the embedded
// server and the worker only; API instances run elsewhere.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { apiProcessEnv, defaultDataDir, loadKernelEgress, loadKernelLimits, repoRoot } from "@codeinterp/config";
import { EgressPolicy, parseEgressAllowlist, startLocalJupyter } from "@codeinterp/kernel-host";
import type { LocalJupyter } from "@codeinterp/kernel-host";

const say = (msg: string) => console.error(`[start] ${msg}`);
const cell = process.argv.includes("--cell");
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

const env: Record<string, string | undefined> = {
  ...process.env,
  DATA_DIR: dataDir,
  ...(cell ? {} : { ADMIN_TOKEN: await adminToken() }),
};
let jupyter: LocalJupyter | null = null;
if (!process.env.JUPYTER_URL) {
  const line = (o: unknown, m?: string) => say(`jupyter: ${m ? `${m} ${JSON.stringify(o)}` : JSON.stringify(o)}`);
  const log = { debug: () => undefined, info: line, warn: line, error: line };
  // Kernels have no network unless KERNEL_EGRESS=allowlist opens the listed destinations through a proxy.
  const egress = loadKernelEgress(process.env);
  if (egress) say(`kernels may reach, through the egress proxy only: ${egress.allow}`);
  jupyter = await startLocalJupyter({
    rootDir: dataDir,
    stateDir: path.join(dataDir, ".jupyter"),
    port: Number(process.env.JUPYTER_PORT ?? 0),
    log,
    // Restarted (same port and token) when it exits, or when it stops answering HTTP for
    // GATEWAY_UNRESPONSIVE_MS (the workers' setting, 10 s): then it is SIGKILLed with its kernels. Workers
    // see the restart through their own liveness probe.
    supervise: true,
    liveness: { unresponsiveMs: Number(process.env.GATEWAY_UNRESPONSIVE_MS ?? 10_000) },
    onRestart: (r) => say(`jupyter: restarted (${r.reason}); ${r.restarts} restart(s) so far`),
    sandboxLimits: loadKernelLimits(process.env),
    ...(egress ? { egress: { policy: new EgressPolicy(parseEgressAllowlist(egress.allow)) } } : {}),
  });
  env.JUPYTER_URL = jupyter.url;
  env.JUPYTER_TOKEN = jupyter.token;
  say(`local Jupyter server on ${jupyter.url} (root ${dataDir})`);
  const { sandbox } = jupyter;
  say(
    sandbox.available
      ? `kernels: sandboxed, no network, ${sandbox.caps.cgroup ? `memory/CPU/process caps (cgroup v${sandbox.caps.cgroup})` : `rlimits only (${sandbox.caps.reason})`}`
      : `kernels are NOT sandboxed and have the network (${sandbox.reason}): use this only for yourself; see SECURITY.md`,
  );
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
  say(cell ? "stopping (draining the worker)" : "stopping (draining the worker, closing the API)");
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
if (!cell) launch("api", "apps/api/src/main.ts", apiProcessEnv(env));
// Capture and workspace preparation are many small file-system calls: more libuv threads let them (and
// their fsyncs, which the file system commits together) overlap. Node reads this once, at start.
launch("worker", "apps/worker/src/main.ts", { ...env, UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "16" });
if (!cell)
  say(
    `API on http://127.0.0.1:${env.PORT ?? 8080}  (admin token: ${process.env.ADMIN_TOKEN ? "from ADMIN_TOKEN" : path.join(dataDir, "admin-token")})`,
  );
