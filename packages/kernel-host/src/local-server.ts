import { setTimeout as sleep } from "node:timers/promises";
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { freePort } from "./free-port";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { prepareKernelCgroups, removeKernelCgroups } from "./cgroups";
import type { KernelCgroupParent } from "./cgroups";
import { JupyterStartError } from "./errors";
import { JUPYTER_SERVER_CONFIG } from "./jupyter-config";
import { JUPYTER_ZMQ_SAFETY_CONFIG } from "./jupyter-config-zmq";
import { JUPYTER_PYTHON } from "./jupyter-install";
import { IPYTHON_KERNEL_CONFIG } from "./kernel-ipython";
import { DEFAULT_PRELOAD_MODULES, defaultLiveness, probeGateway } from "@codeinterp/kernel";
import type { Log } from "@codeinterp/kernel";
import { killTree } from "./process-tree";
import type { EgressPolicy } from "./egress/allowlist";
import { startEgressProxy } from "./egress/proxy";
import type { EgressProxy } from "./egress/proxy";
import {
  DEFAULT_SANDBOX_LIMITS,
  SANDBOX_KERNEL_NAME,
  installSandboxKernelSpec,
  launcherConfig,
  prepareMatplotlibCache,
  probeSandbox,
} from "./sandbox";
import type { SandboxLimits } from "./sandbox";
import { startKernelTemplate } from "./template";
import type { KernelTemplate } from "./template";

export type LocalJupyter = {
  url: string;
  token: string;
  rootDir: string;
  /** The current server process; changes when a supervised server is restarted. */
  readonly pid: number;
  /**
   * Kernels of the `codeinterp-sandbox` kernelspec run under bubblewrap with no network (false: not
   * possible here; plain kernels can then reach everything this machine can). `caps`: whether each kernel
   * gets its memory, CPU and process caps from a cgroup, or only per-process rlimits.
   */
  sandbox: { available: boolean; reason?: string; caps: { cgroup: 1 | 2 | null; reason?: string } };
  /** Times a supervised server was restarted (it exited, or stopped answering and was killed). */
  readonly restarts: number;
  stop(): Promise<void>;
};

export type JupyterRestart = {
  reason: "exited" | "unresponsive";
  /** Restarts so far, this one included. */
  restarts: number;
  at: number;
};

export type StartLocalJupyterOptions = {
  rootDir: string;
  /** Holds Jupyter's runtime, data and config dirs, so nothing lands in $HOME. */
  stateDir: string;
  /** 0 or absent: pick a free port. */
  port?: number;
  token?: string;
  log: Log;
  /**
   * Restart the server (same port and token) when it exits unexpectedly, or when it stops answering HTTP
   * for `liveness.unresponsiveMs` (then it is SIGKILLed first, with every kernel it started).
   */
  supervise?: boolean;
  /** How a supervised server is watched; defaults: a look every 1 s, 2 s each, unresponsive after 10 s. */
  liveness?: { intervalMs?: number; probeTimeoutMs?: number; unresponsiveMs?: number };
  /** Python appended to the generated server config (after JUPYTER_ZMQ_SAFETY_CONFIG, which is always in). */
  extraConfig?: string;
  /** Called after a supervised server was restarted and answers again. */
  onRestart?: (restart: JupyterRestart) => void;
  python?: string;
  /** Install the sandboxed kernelspec when the machine supports it (default true). */
  sandbox?: boolean;
  /** Per-kernel caps and the budget of all kernels together; unset fields take DEFAULT_SANDBOX_LIMITS. */
  sandboxLimits?: Partial<SandboxLimits>;
  /**
   * Host path of a unix socket where an HTTP(S) proxy listens: sandboxed kernels reach it as
   * http://127.0.0.1:3128 (HTTP_PROXY/HTTPS_PROXY are set), their only way out.
   */
  proxySocket?: string;
  /**
   * Egress for sandboxed kernels: the server runs the allowlisting proxy (egress/proxy.ts) on a socket in its
   * state dir and gives each kernel signed credentials for it. Unset: kernels have no way out at all.
   */
  egress?: { policy: EgressPolicy };
  /**
   * Sandboxed kernels are forked from a template process that imported ipykernel and these modules once
   * (template.ts); default DEFAULT_PRELOAD_MODULES. false: every kernel starts its own Python.
   */
  kernelTemplate?: { modules: readonly string[] } | false;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
};

const STDERR_TAIL_LINES = 40;
const SUPERVISE_MAX_BACKOFF_MS = 30_000;
/** A server that stayed up this long is considered healthy again, so backoff starts over. */
const SUPERVISE_HEALTHY_MS = 60_000;

/** sun_path holds 107 bytes; the server's socket paths are <runtime>/kernel-<36-char id>-ipc-<n>. */
const MAX_RUNTIME_DIR_LENGTH = 107 - "/kernel-00000000-0000-0000-0000-000000000000-ipc-5".length;

type Running = { child: ChildProcess; exited: Promise<void>; stderrTail: string[]; startedAt: number; hung?: boolean };

function launch(
  python: string,
  args: string[],
  dirs: { runtime: string; data: string; config: string; ipython: string },
  log: Log,
): Running {
  // /usr/bin/env adds the Jupyter dirs while inheriting the rest of our environment, and execs python,
  // so the pid we hold is the server's own.
  const child = spawn(
    "/usr/bin/env",
    [
      `JUPYTER_RUNTIME_DIR=${dirs.runtime}`,
      `JUPYTER_DATA_DIR=${dirs.data}`,
      `JUPYTER_CONFIG_DIR=${dirs.config}`,
      // Plain kernels inherit it, and with it their IPython settings (kernel-ipython.ts). It replaces the
      // server user's ~/.ipython for them: a profile or startup script put there no longer applies.
      `IPYTHONDIR=${dirs.ipython}`,
      "PYTHONUNBUFFERED=1",
      python,
      "-m",
      "jupyter_server",
      ...args,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const stderrTail: string[] = [];
  const pipe = (stream: NodeJS.ReadableStream | null, name: "stdout" | "stderr") => {
    let partial = "";
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        if (!line) continue;
        log.debug({ jupyter: name, pid: child.pid }, line);
        if (name === "stderr") {
          stderrTail.push(line);
          if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
        }
      }
    });
  };
  pipe(child.stdout, "stdout");
  pipe(child.stderr, "stderr");
  const exited = new Promise<void>((r) => {
    child.once("exit", () => r());
    child.once("error", (err) => {
      stderrTail.push(String(err));
      r();
    });
  });
  return { child, exited, stderrTail, startedAt: Date.now() };
}

async function waitReady(url: string, token: string, running: Running, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void running.exited.then(() => (exited = true));
  let lastError = "";
  while (Date.now() < deadline && !exited) {
    try {
      const res = await fetch(`${url}/api/status`, {
        headers: { Authorization: `token ${token}` },
        signal: AbortSignal.timeout(2_000),
      });
      if (res.ok) return;
      lastError = `HTTP ${res.status}`;
    } catch (err) {
      lastError = String((err as Error).cause ?? err);
    }
    await sleep(100);
  }
  const why = exited
    ? `exited with code ${running.child.exitCode}`
    : `did not answer within ${timeoutMs} ms (${lastError})`;
  throw new JupyterStartError(
    `Jupyter server ${why}. Last stderr lines:\n${running.stderrTail.slice(-15).join("\n") || "(none)"}`,
  );
}

async function terminate(running: Running, timeoutMs: number): Promise<void> {
  const { child } = running;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const killed = await Promise.race([running.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (!killed) {
    // A server that ignores SIGTERM (wedged, stopped) cannot shut its kernels down: they die with it.
    if (child.pid) killTree(child.pid);
    await running.exited;
  }
}

export async function startLocalJupyter(opts: StartLocalJupyterOptions): Promise<LocalJupyter> {
  const { log } = opts;
  const python = opts.python ?? JUPYTER_PYTHON;
  const rootDir = resolve(opts.rootDir);
  const stateDir = resolve(opts.stateDir);
  const token = opts.token ?? randomBytes(24).toString("hex");
  const startTimeoutMs = opts.startTimeoutMs ?? 60_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 8_000;
  const preferredRuntime = join(stateDir, "runtime");
  // The ipc transport puts sockets in the runtime dir: a deep state dir gets a short private one instead.
  const runtime =
    preferredRuntime.length <= MAX_RUNTIME_DIR_LENGTH ? preferredRuntime : await mkdtemp(join(tmpdir(), "ci-rt-"));
  const dirs = {
    runtime,
    data: join(stateDir, "data"),
    config: join(stateDir, "config"),
    ipython: join(stateDir, "ipython"),
  };
  const ipcRoot = join(stateDir, "ipc");
  const ipythonProfile = join(dirs.ipython, "profile_default");
  await Promise.all([rootDir, ...Object.values(dirs), ipythonProfile].map((d) => mkdir(d, { recursive: true })));
  await Promise.all([
    writeFile(
      join(dirs.config, "jupyter_server_config.py"),
      JUPYTER_SERVER_CONFIG + JUPYTER_ZMQ_SAFETY_CONFIG + (opts.extraConfig ?? ""),
    ),
    writeFile(join(ipythonProfile, "ipython_kernel_config.py"), IPYTHON_KERNEL_CONFIG),
  ]);
  let sandbox: LocalJupyter["sandbox"] = {
    available: false,
    reason: "disabled",
    caps: { cgroup: null, reason: "no sandbox" },
  };
  let cgroupParent: KernelCgroupParent | null = null;
  let egressProxy: EgressProxy | null = null;
  let template: KernelTemplate | null = null;
  let proxy: { proxySocket?: string; proxySecret?: string } = opts.proxySocket ? { proxySocket: opts.proxySocket } : {};
  /** What this server set up beside its process; removed by stop(), or at once when the start fails. */
  const releaseResources = async () => {
    await template?.stop();
    if (cgroupParent) await removeKernelCgroups(cgroupParent);
    await egressProxy?.close();
    await rm(ipcRoot, { recursive: true, force: true });
    if (runtime !== preferredRuntime) await rm(runtime, { recursive: true, force: true });
  };
  try {
    if (opts.sandbox !== false) {
      const probe = await probeSandbox(join(rootDir, ".codeinterp-sandbox-probe"), log);
      if (probe.ok) {
        const limits = { ...DEFAULT_SANDBOX_LIMITS, ...opts.sandboxLimits };
        // One parent per server (several may share a machine), named after its state dir so a restart reuses it.
        const cg = await prepareKernelCgroups({
          name: `codeinterp-${createHash("sha256").update(stateDir).digest("hex").slice(0, 12)}`,
          budgetBytes: limits.kernelsMemoryBudgetBytes,
        });
        if (cg.ok) cgroupParent = cg.parent;
        else log.warn({ reason: cg.reason }, "no per-kernel cgroups: kernels get per-process rlimits only");
        sandbox = {
          available: true,
          caps: cg.ok ? { cgroup: cg.parent.version } : { cgroup: null, reason: cg.reason },
        };
        await mkdir(ipcRoot, { recursive: true, mode: 0o711 });
        if (opts.egress) {
          const secret = randomBytes(32).toString("hex");
          egressProxy = await startEgressProxy({
            socketPath: join(stateDir, "egress.sock"),
            policy: opts.egress.policy,
            secret,
            log,
          });
          proxy = { proxySocket: egressProxy.socketPath, proxySecret: secret };
        }
        const matplotlibCacheDir = await prepareMatplotlibCache(join(stateDir, "matplotlib-cache"), log);
        // Kernels with an egress proxy start the plain way (the launcher's forwarder runs before the kernel).
        if (opts.kernelTemplate !== false && !proxy.proxySocket) {
          const modules = opts.kernelTemplate?.modules ?? DEFAULT_PRELOAD_MODULES;
          // Without it kernels start the plain way: slower, the same sandbox.
          template = await startKernelTemplate({ stateDir, modules, matplotlibCacheDir, log }).catch((err: unknown) => {
            log.error({ err: (err as Error).message }, "kernel template did not start; kernels start the plain way");
            return null;
          });
        }
        await installSandboxKernelSpec(
          dirs.data,
          launcherConfig({
            limits,
            ipcRoot,
            cgroup: cgroupParent,
            ...proxy,
            matplotlibCacheDir,
            template: template ? { socket: template.socket } : null,
          }),
          limits.kernelsMemoryBudgetBytes,
          template?.modules ?? null,
        );
      } else {
        sandbox = {
          available: false,
          ...(probe.reason ? { reason: probe.reason } : {}),
          caps: { cgroup: null, reason: "no sandbox" },
        };
      }
    }
  } catch (err) {
    // The start's error is rethrown; what could not be released dies with the process.
    await releaseResources().catch(() => undefined);
    throw err;
  }
  // A kernelspec left by an earlier start would make workers believe kernels are sandboxed.
  if (!sandbox.available) await rm(join(dirs.data, "kernels", SANDBOX_KERNEL_NAME), { recursive: true, force: true });

  const argsFor = (port: number) => [
    "--ServerApp.ip=127.0.0.1",
    `--ServerApp.port=${port}`,
    "--ServerApp.port_retries=0",
    `--ServerApp.token=${token}`,
    `--ServerApp.root_dir=${rootDir}`,
    "--ServerApp.open_browser=False",
    "--ServerApp.iopub_data_rate_limit=0",
    "--allow-root",
  ];

  // A port picked by us may be taken before the server binds it; only then is a retry worth it.
  const attempts = opts.port ? 1 : 3;
  let port = opts.port ?? 0;
  let running: Running | undefined;
  for (let attempt = 1; ; attempt++) {
    if (!opts.port) port = await freePort();
    running = launch(python, argsFor(port), dirs, log);
    try {
      await waitReady(`http://127.0.0.1:${port}`, token, running, startTimeoutMs);
      break;
    } catch (err) {
      await terminate(running, stopTimeoutMs);
      if (attempt >= attempts) {
        // The start's error is rethrown; what could not be released dies with the process.
        await releaseResources().catch(() => undefined);
        throw err;
      }
      log.warn({ port, attempt }, "Jupyter server did not start; retrying on another port");
    }
  }
  const url = `http://127.0.0.1:${port}`;
  log.info({ url, pid: running.child.pid, rootDir }, "local Jupyter server started");

  let current: Running = running;
  let stopping = false;
  const onProcessExit = () => {
    // Last resort when our process exits without stop(): SIGTERM lets Jupyter shut its kernels down.
    current.child.kill("SIGTERM");
  };
  process.once("exit", onProcessExit);

  let restarts = 0;
  const liveness = { ...defaultLiveness, ...opts.liveness };
  const supervise = async () => {
    let backoff = 1_000;
    while (!stopping) {
      const watching = watchLiveness(current);
      await current.exited;
      watching.stop();
      if (stopping) return;
      const upFor = Date.now() - current.startedAt;
      if (upFor > SUPERVISE_HEALTHY_MS) backoff = 1_000;
      const reason = current.hung ? "unresponsive" : "exited";
      // A hung server was killed on purpose: no reason to wait before the next one.
      const delay = current.hung ? 0 : backoff;
      log.error(
        {
          code: current.child.exitCode,
          signal: current.child.signalCode,
          reason,
          stderr: current.stderrTail.slice(-5),
        },
        `Jupyter server ${reason === "unresponsive" ? "was killed after it stopped answering" : "exited unexpectedly"}; restarting in ${delay} ms`,
      );
      await sleep(delay);
      if (!current.hung) backoff = Math.min(backoff * 2, SUPERVISE_MAX_BACKOFF_MS);
      if (stopping) return;
      current = launch(python, argsFor(port), dirs, log);
      try {
        await waitReady(url, token, current, startTimeoutMs);
        restarts++;
        log.info({ url, pid: current.child.pid, restarts, reason }, "local Jupyter server restarted");
        opts.onRestart?.({ reason, restarts, at: Date.now() });
      } catch (err) {
        log.error({ err: (err as Error).message }, "Jupyter server restart failed");
        await terminate(current, stopTimeoutMs);
      }
    }
  };

  /**
   * While `running` lives, asks it for /api/status every interval; with no good answer for
   * `unresponsiveMs` (frozen, or wedged in a blocking ZMQ send) it is SIGKILLed with its kernels, and
   * the supervise loop starts a new one.
   */
  const watchLiveness = (running: Running) => {
    let stopped = false;
    let lastOk = Date.now();
    const loop = async () => {
      while (!stopped && !stopping) {
        const r = await probeGateway(url, token, liveness.probeTimeoutMs);
        if (stopped || stopping || running.child.exitCode !== null || running.child.signalCode !== null) return;
        if (r.ok) lastOk = Date.now();
        else if (Date.now() - lastOk >= liveness.unresponsiveMs) {
          running.hung = true;
          const kernels = running.child.pid ? killTree(running.child.pid) : 0;
          log.error(
            { pid: running.child.pid, silentMs: Date.now() - lastOk, err: r.error, processesKilled: kernels },
            "Jupyter server stopped answering HTTP; killed it and its kernels",
          );
          return;
        }
        await sleep(liveness.intervalMs);
      }
    };
    void loop();
    return { stop: () => (stopped = true) };
  };
  if (opts.supervise) void supervise();

  return {
    url,
    token,
    rootDir,
    sandbox,
    get restarts() {
      return restarts;
    },
    get pid() {
      return current.child.pid ?? -1;
    },
    async stop() {
      stopping = true;
      process.removeListener("exit", onProcessExit);
      await terminate(current, stopTimeoutMs);
      await releaseResources();
      log.info({ url }, "local Jupyter server stopped");
    },
  };
}
