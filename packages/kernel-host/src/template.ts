import { spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Log } from "@codeinterp/kernel";

const TEMPLATE_SOURCE = fileURLToPath(new URL("./kernel-template.py", import.meta.url));
const READY_TIMEOUT_MS = 90_000;
const RESTART_MAX_BACKOFF_MS = 30_000;

/** What the sandbox launcher reads from launcher.json to ask the template for a kernel. */
export interface TemplateLauncherConfig {
  socket: string;
}

export interface KernelTemplate {
  /** Unix socket the template listens on (root only); launchers fall back to a plain start while it is absent. */
  readonly socket: string;
  /** Modules every forked kernel has in memory (the kernelspec advertises them, so pools skip the preload). */
  readonly modules: readonly string[];
  /** Times the template process was started again after it exited. */
  readonly restarts: number;
  stop(): Promise<void>;
}

export interface StartKernelTemplateOptions {
  stateDir: string;
  modules: readonly string[];
  /** The kernels' matplotlib font cache (prepareMatplotlibCache), read once by the template. */
  matplotlibCacheDir: string | null;
  log: Log;
  python?: string;
}

/**
 * Starts the kernel template (kernel-template.py) as a supervised child: it preloads ipykernel and `modules`
 * once, and forks each sandboxed kernel from then on. Resolves when it listens. The child watches its stdin
 * and exits when this process goes, however it goes.
 */
export async function startKernelTemplate(opts: StartKernelTemplateOptions): Promise<KernelTemplate> {
  const dir = join(opts.stateDir, "template");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const socket = join(dir, "kernel.sock");
  const python = opts.python ?? "/usr/bin/python3";
  let stopping = false;
  let restarts = 0;

  const launch = (): { child: ChildProcess; ready: Promise<void>; exited: Promise<void> } => {
    const child = spawn(python, ["-I", "-Xfrozen_modules=off", TEMPLATE_SOURCE, socket, JSON.stringify(opts.modules)], {
      stdio: ["pipe", "pipe", "pipe"],
      // What a kernel's sandbox sets, so the preload sees what kernels will; one BLAS/OpenMP thread, since
      // a pool that existed before the fork would be copied without its threads.
      env: {
        PATH: "/usr/bin:/bin",
        LANG: "C.UTF-8",
        HOME: dir,
        MPLCONFIGDIR: opts.matplotlibCacheDir ?? dir,
        MPLBACKEND: "module://matplotlib_inline.backend_inline",
        OPENBLAS_NUM_THREADS: "1",
        OMP_NUM_THREADS: "1",
        MKL_NUM_THREADS: "1",
        PYTHONDONTWRITEBYTECODE: "1",
      },
    });
    const exited = new Promise<void>((r) => child.once("close", () => r()));
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (d: string) => {
      for (const line of d.split("\n")) if (line) opts.log.warn({ template: child.pid }, line);
    });
    const ready = new Promise<void>((resolve, reject) => {
      let out = "";
      child.stdout?.setEncoding("utf8");
      child.stdout?.on("data", (d: string) => {
        out += d;
        if (out.includes("ready\n")) resolve();
      });
      void exited.then(() => reject(new Error(`the kernel template exited (code ${child.exitCode})`)));
      child.once("error", reject);
      setTimeout(() => reject(new Error("the kernel template did not get ready")), READY_TIMEOUT_MS).unref();
    });
    return { child, ready, exited };
  };

  let current = launch();
  try {
    await current.ready;
  } catch (err) {
    // Never left running (as root) behind a start that failed.
    current.child.kill("SIGKILL");
    throw err;
  }
  opts.log.info({ pid: current.child.pid, modules: opts.modules }, "kernel template ready");

  const supervise = async () => {
    let backoff = 1_000;
    while (!stopping) {
      await current.exited;
      if (stopping) return;
      // Until it is back, launchers find no socket and start kernels the plain way.
      opts.log.error({ code: current.child.exitCode, signal: current.child.signalCode }, "kernel template exited");
      await sleep(backoff);
      backoff = Math.min(backoff * 2, RESTART_MAX_BACKOFF_MS);
      if (stopping) return;
      current = launch();
      try {
        await current.ready;
        restarts++;
        backoff = 1_000;
        opts.log.info({ pid: current.child.pid, restarts }, "kernel template restarted");
      } catch (err) {
        opts.log.error({ err: (err as Error).message }, "kernel template restart failed");
        current.child.kill("SIGKILL");
      }
    }
  };
  void supervise();

  return {
    socket,
    modules: opts.modules,
    get restarts() {
      return restarts;
    },
    async stop() {
      stopping = true;
      current.child.stdin?.end();
      const done = await Promise.race([current.exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!done) {
        current.child.kill("SIGKILL");
        await current.exited;
      }
    },
  };
}
