import { spawn } from "node:child_process";
import { chmod, chown, copyFile, mkdir, rename, rm, writeFile } from "node:fs/promises";
import { totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { KERNEL_CPU_WEIGHTS } from "./cgroups";
import type { KernelCgroupLimits, KernelCgroupParent } from "./cgroups";
import type { Log } from "@codeinterp/kernel";
import { KERNEL_IPYTHON_ARGS } from "./kernel-ipython";
import type { TemplateLauncherConfig } from "./template";

/** Name of the kernelspec whose kernels run under bubblewrap. */
export const SANDBOX_KERNEL_NAME = "codeinterp-sandbox";

/**
 * Name of the directory whose subdirectories pool kernels wait in (a worker's data dir/kernel-pool/<slot>):
 * the launcher starts a kernel launched there at the background CPU weight (see KERNEL_CPU_WEIGHTS).
 */
export const POOL_SLOTS_DIR_NAME = "kernel-pool";

/** Kernel processes run as the owner of their workspace; owners below this uid are refused. */
export const SANDBOX_MIN_UID = 100_000;

export interface SandboxLimits {
  /** Memory of one kernel with everything it starts (cgroup; swap is not allowed on top). */
  memoryBytes: number;
  /** CPU quota of one kernel, in cores (cgroup). */
  cpus: number;
  /** Processes and threads of one kernel (cgroup pids.max): stops fork bombs. */
  maxProcesses: number;
  /** Memory of all of this server's kernels together (their parent cgroup). */
  kernelsMemoryBudgetBytes: number;
  /** Largest file a process may write, in bytes (RLIMIT_FSIZE). */
  maxFileBytes: number;
  maxOpenFiles: number;
}

const GiB = 1024 ** 3;

/** All memory but what Postgres, Redis and the service keep: max(4 GiB, a quarter). */
export function defaultKernelsMemoryBudget(totalBytes: number): number {
  return Math.max(Math.floor(totalBytes - Math.max(4 * GiB, totalBytes / 4)), GiB);
}

export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = {
  memoryBytes: 2 * GiB,
  cpus: 1,
  maxProcesses: 256,
  kernelsMemoryBudgetBytes: defaultKernelsMemoryBudget(totalmem()),
  maxFileBytes: 2 * GiB,
  maxOpenFiles: 1024,
};

/** What the launcher reads from launcher.json beside it (see sandbox-launcher.py). */
export interface LauncherConfig {
  minUid: number;
  /** Parent of every kernel's socket directory. */
  ipcRoot: string;
  cgroup: KernelCgroupParent | null;
  /** Host path of the egress proxy's unix socket, mounted read-only at /run/codeinterp/proxy.sock. */
  proxySocket: string | null;
  /** Signs each kernel's proxy credentials (egress/proxy.ts); null for a proxy that takes none. */
  proxySecret: string | null;
  /**
   * Matplotlib's font cache (fontlist-*.json) built once for this server (prepareMatplotlibCache); each
   * kernel gets a copy in its own MPLCONFIGDIR instead of building it (~1 s of CPU) on its first figure.
   */
  matplotlibCacheDir: string | null;
  /** The kernel template to fork kernels from (template.ts); null: every kernel starts its own Python. */
  template: TemplateLauncherConfig | null;
  /** Options of every kernel's `ipykernel_launcher`, started or forked (kernel-ipython.ts). */
  kernelArgs: readonly string[];
  /** Kernels started in a pool slot (parent dir named `slotsDirName`) start at this CPU weight. */
  background: { slotsDirName: string; cpuShares: number; cpuWeight: number };
  limits: KernelCgroupLimits & {
    addressSpaceBytes: number;
    rlimitProcesses: number;
    maxFileBytes: number;
    maxOpenFiles: number;
  };
}

export function launcherConfig(opts: {
  limits: SandboxLimits;
  ipcRoot: string;
  cgroup: KernelCgroupParent | null;
  proxySocket?: string | undefined;
  proxySecret?: string | undefined;
  matplotlibCacheDir?: string | null;
  template?: TemplateLauncherConfig | null;
}): LauncherConfig {
  const { limits } = opts;
  return {
    minUid: SANDBOX_MIN_UID,
    ipcRoot: opts.ipcRoot,
    cgroup: opts.cgroup,
    proxySocket: opts.proxySocket ?? null,
    proxySecret: opts.proxySecret ?? null,
    matplotlibCacheDir: opts.matplotlibCacheDir ?? null,
    template: opts.template ?? null,
    kernelArgs: KERNEL_IPYTHON_ARGS,
    background: {
      slotsDirName: POOL_SLOTS_DIR_NAME,
      cpuShares: KERNEL_CPU_WEIGHTS.background.v1,
      cpuWeight: KERNEL_CPU_WEIGHTS.background.v2,
    },
    limits: {
      memoryBytes: limits.memoryBytes,
      cpus: limits.cpus,
      maxProcesses: limits.maxProcesses,
      // A second layer under the cgroup, per process: well above it, since numpy and BLAS reserve large
      // address ranges they never touch; a single absurd allocation still gets MemoryError.
      addressSpaceBytes: Math.max(8 * GiB, 4 * limits.memoryBytes),
      // RLIMIT_NPROC counts the uid's processes machine-wide; the cgroup is what trips when it exists.
      rlimitProcesses: opts.cgroup ? 2 * limits.maxProcesses : limits.maxProcesses,
      maxFileBytes: limits.maxFileBytes,
      maxOpenFiles: limits.maxOpenFiles,
    },
  };
}

const LAUNCHER_SOURCE = fileURLToPath(new URL("./sandbox-launcher.py", import.meta.url));

/**
 * Builds matplotlib's font cache into `dir` once (what every sandboxed kernel would otherwise do on its first
 * figure, in its empty /tmp); returns the dir, or null when the kernels' Python has no matplotlib.
 */
export async function prepareMatplotlibCache(dir: string, log: Log): Promise<string | null> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ok = await new Promise<boolean>((resolve) => {
    const child = spawn("/usr/bin/python3", ["-I", "-c", "import matplotlib.font_manager"], {
      env: { MPLCONFIGDIR: dir, PATH: "/usr/bin:/bin", LANG: "C.UTF-8" },
      stdio: "ignore",
    });
    child.on("error", () => resolve(false));
    child.on("exit", (code) => resolve(code === 0));
  });
  if (!ok) log.info({}, "no matplotlib font cache prepared: the kernels' Python has no matplotlib");
  return ok ? dir : null;
}

/** Metadata of the sandbox kernelspec; workers read it to know what the kernels are promised. */
export interface SandboxSpecMetadata {
  sandbox: true;
  /** "allowlist": the kernel's own network namespace is empty, and an egress proxy opens listed destinations. */
  network: "none" | "allowlist";
  minUid: number;
  mountPoint: string;
  cgroup: KernelCgroupParent | null;
  memoryBytes: number;
  /** Memory of all this server's kernels together: workers derive their live-kernel ceiling from it. */
  kernelsMemoryBudgetBytes: number;
  /** Kernels are forked from a template that imported these modules (pools need not preload them); null: started. */
  template: { modules: string[] } | null;
}

/** Writes the launcher, its settings and its kernelspec into a Jupyter data dir (JUPYTER_DATA_DIR/kernels/...). */
export async function installSandboxKernelSpec(
  jupyterDataDir: string,
  config: LauncherConfig,
  kernelsMemoryBudgetBytes: number,
  templateModules: readonly string[] | null = null,
): Promise<void> {
  const dir = join(jupyterDataDir, "kernels", SANDBOX_KERNEL_NAME);
  await mkdir(dir, { recursive: true });
  const launcher = join(dir, "launch.py");
  await copyFile(LAUNCHER_SOURCE, launcher);
  await chmod(launcher, 0o755);
  const configFile = join(dir, "launcher.json");
  // Root only: it may hold the egress proxy's signing secret. Written beside and renamed over, so no
  // reader ever sees the secret under an older file's mode.
  const staging = `${configFile}.${process.pid}.tmp`;
  await rm(staging, { force: true });
  await writeFile(staging, JSON.stringify(config, null, 2), { mode: 0o600, flag: "wx" });
  await rename(staging, configFile);
  const metadata: SandboxSpecMetadata = {
    sandbox: true,
    network: config.proxySocket ? "allowlist" : "none",
    minUid: SANDBOX_MIN_UID,
    mountPoint: "/mnt/data",
    cgroup: config.cgroup,
    memoryBytes: config.limits.memoryBytes,
    kernelsMemoryBudgetBytes,
    template: config.template && templateModules ? { modules: [...templateModules] } : null,
  };
  const spec = {
    argv: ["/usr/bin/python3", "-I", launcher, configFile, "{connection_file}"],
    display_name: "Python 3 (codeinterp sandbox)",
    language: "python",
    // Interrupt through the control channel: a signal to the launcher's group would not reach the kernel
    // inside its own pid namespace.
    interrupt_mode: "message",
    metadata: { codeinterp: metadata },
  };
  await writeFile(join(dir, "kernel.json"), JSON.stringify(spec, null, 2));
}

/**
 * Whether this machine can run sandboxed kernels with no network: bwrap, prlimit and setpriv present, and
 * user and network namespaces allowed. Runs the real launcher's core with `true` in a scratch directory.
 */
export async function probeSandbox(scratchDir: string, log: Log): Promise<{ ok: boolean; reason?: string }> {
  if (process.getuid?.() !== 0)
    return { ok: false, reason: "the sandbox needs the service to run as root (to start kernels as other uids)" };
  // The scratch dir sits under the server's root_dir, like workspaces: kernels run as unprivileged uids,
  // so every directory above their workspace must be traversable (o+x).
  await mkdir(scratchDir, { recursive: true });
  const uid = SANDBOX_MIN_UID;
  await chown(scratchDir, uid, uid);
  const args = [
    "--nproc=64",
    "--",
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--",
    "bwrap",
    "--unshare-user",
    "--unshare-pid",
    "--unshare-net",
    "--die-with-parent",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--bind",
    scratchDir,
    "/mnt/data",
    "/usr/bin/python3",
    "-c",
    "import ipykernel",
  ];
  return new Promise((resolve) => {
    const child = spawn("prlimit", args, { cwd: scratchDir, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()).slice(-2000));
    child.on("error", (err) => resolve({ ok: false, reason: `cannot run the sandbox tools: ${err.message}` }));
    child.on("exit", (code) => {
      void rm(scratchDir, { recursive: true, force: true });
      if (code === 0) return resolve({ ok: true });
      const reason =
        `bubblewrap probe failed (exit ${code}): ${stderr.trim().split("\n").slice(-2).join(" ")}` +
        ` (kernels run as uid >= ${SANDBOX_MIN_UID}: the directories above ${scratchDir} must be traversable, chmod o+x)`;
      log.warn({ reason }, "sandbox unavailable");
      resolve({ ok: false, reason });
    });
  });
}
