import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { DEFAULT_PRELOAD_MODULES, PYTHON_MODULE_NAME } from "@codeinterp/kernel";
import { blobStoreEnvShape, parseEnv, sharedEnvShape, workspaceDiskEnvShape } from "@codeinterp/config";
import { CELL_ID } from "@codeinterp/queue";

const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

const workerEnvSchema = z
  .object({
    ...sharedEnvShape,
    ...blobStoreEnvShape,
    ...workspaceDiskEnvShape,
    WORKER_ID: z.string().default(`${os.hostname()}-${process.pid}`),
    /**
     * The cell this worker belongs to: one machine (or pod) with its own Jupyter server and DATA_DIR. Workers
     * sharing a Jupyter server share a CELL_ID; each machine has its own (apps/worker/src/cells).
     */
    CELL_ID: z
      .string()
      .regex(CELL_ID, "a cell id is letters, digits, '.', '_' or '-' (a hostname or pod name)")
      .default(os.hostname()),
    /** How often the cell says it is alive, with its free room (new messages are placed by it). */
    CELL_HEARTBEAT_MS: int(2_000, 100),
    /**
     * A cell silent this long is gone: its queued executions go to the other cells, its messages' next
     * executions run there in workspaces rebuilt from object storage (variables reset).
     */
    CELL_LOST_MS: int(10_000, 500),
    // The kernel gateway: only workers hold its address and token (the API never drives kernels).
    /** Unset: the embedded local Jupyter server started by `npm start`. */
    JUPYTER_URL: z.url().optional(),
    JUPYTER_TOKEN: z.string().default(""),
    /** How often the worker checks that the gateway answers (GET /api/status, 2 s deadline). */
    GATEWAY_PROBE_INTERVAL_MS: int(1_000, 100),
    /** Without an answer this long the gateway is unresponsive: runs on it end, waits on it stop. */
    GATEWAY_UNRESPONSIVE_MS: int(10_000, 500),
    /**
     * How long (from its first attempt) an execution that has not reached a kernel keeps being retried
     * while the gateway is unavailable; then it ends failed with gateway_unavailable.
     */
    GATEWAY_RETRY_BUDGET_MS: int(60_000, 1_000),
    /**
     * Executions a worker runs at once from each of its two queues: the shared one (new messages) and its
     * cell's (the follow-ups of messages it holds), so up to twice this in all. What they use is bounded by the
     * live-kernel ceiling and admission by memory, not by this.
     */
    WORKER_CONCURRENCY: int(4, 1),
    /**
     * Node's own thread-pool size, read by Node when the process starts (so it has to come from the
     * environment, as `npm start` and the compose file set it): capture and attachment placement are many
     * small file-system calls and fsyncs that overlap in these threads. Checked here, not used.
     */
    UV_THREADPOOL_SIZE: z.coerce.number().int().min(1).max(1024).optional(),
    /** Where the kernel gateway's root_dir is on this machine (default DATA_DIR); workspaces live under it. */
    KERNEL_ROOT_DIR: z.string().optional(),
    /** Pre-started, never-used kernels kept ready (0 disables the pool). */
    KERNEL_POOL_SIZE: int(2, 0),
    /**
     * Most pool kernels kept ready while new messages keep coming (one more per new message in the demand
     * window); under KERNEL_ADMISSION=count never more than a quarter of the live-kernel ceiling; falls back
     * to KERNEL_POOL_SIZE when idle.
     */
    KERNEL_POOL_MAX_SIZE: int(8, 0),
    /** How far back new messages count as demand for pool kernels. */
    KERNEL_POOL_DEMAND_WINDOW_MS: int(30_000, 100),
    /**
     * Modules each pool kernel imports (and warms: pandas' CSV/Excel paths, matplotlib's first figure) before
     * a message gets it, comma-separated; empty: none. Counts against the kernel's memory cap (~70 MB).
     */
    KERNEL_PRELOAD: z
      .string()
      .default(DEFAULT_PRELOAD_MODULES.join(","))
      .transform((v) =>
        v
          .split(",")
          .map((m) => m.trim())
          .filter(Boolean),
      )
      .pipe(z.array(z.string().regex(PYTHON_MODULE_NAME, "not a Python module name"))),
    /** A message's kernel is shut down after this long without executions. */
    KERNEL_IDLE_TTL_MS: int(10 * 60_000, 1000),
    /** A worker silent for three of these is gone: other workers shut down its pre-started pool kernels. */
    WORKER_HEARTBEAT_MS: int(10_000, 100),
    /** After an interrupt at the deadline, how long the kernel may stay busy before it is restarted. */
    KERNEL_INTERRUPT_GRACE_MS: int(2000, 100),
    /** copy | reflink | auto: how attachments are placed; see packages/workspace/README.md. */
    ATTACHMENT_LINK_MODE: z.enum(["copy", "reflink", "auto"]).default("auto"),
    MAX_STREAM_BYTES: int(1024 * 1024, 1024),
    MAX_RICH_OUTPUTS: int(50, 0),
    MAX_GENERATED_FILES: int(200, 0),
    MAX_GENERATED_FILE_BYTES: int(512 * 1024 * 1024, 1),
    MAX_GENERATED_TOTAL_BYTES: int(1024 * 1024 * 1024, 1),
    /** Comma-separated globs; empty means every file. Hidden files and caches are skipped regardless. */
    CAPTURE_INCLUDE: z.string().default(""),
    CAPTURE_EXCLUDE: z.string().default(""),
    /** Workspaces unused this long are removed (their registered files stay downloadable). */
    WORKSPACE_RETENTION_MS: int(7 * 24 * 3600_000, 1000),
    WORKSPACE_SWEEP_INTERVAL_MS: int(3600_000, 1000),
    SHUTDOWN_DEADLINE_MS: int(30_000, 1000),
    /** BullMQ job lock: a worker that stops renewing it (killed, frozen) loses the job after this long. */
    JOB_LOCK_DURATION_MS: int(30_000, 1000),
    /** How often workers look for jobs whose lock expired. */
    JOB_STALLED_INTERVAL_MS: int(15_000, 500),
    RECONCILE_INTERVAL_MS: int(10_000, 500),
    /**
     * auto: use the gateway's bubblewrap kernelspec (codeinterp-sandbox) when it offers one; on: require it;
     * off: plain python3 kernels on a shared server (paths translated).
     */
    KERNEL_SANDBOX: z.enum(["auto", "on", "off"]).default("auto"),
    /**
     * Where the gateway runs its kernels. local: on this machine, so the worker reads and sets their cgroups
     * (memory in use, memory limits, out-of-memory kills, CPU weights); remote (Enterprise Gateway, a server
     * elsewhere): none of that is known, and admission falls back to counting kernels at their cap.
     */
    KERNEL_HOST: z.enum(["local", "remote"]).default("local"),
    /**
     * Live kernels (pool kernels included) across all workers sharing QUEUE_PREFIX. Unset: as many as fit
     * the kernels' memory budget at their cap (see defaultMaxLiveKernels in kernels/live-kernels.ts).
     */
    MAX_LIVE_KERNELS: z.coerce.number().int().min(1).optional(),
    /**
     * memory: new kernels are admitted while the kernels' memory in use (their parent cgroup, readable when
     * the gateway runs on this machine) leaves room, and idle kernels are evicted above a high watermark;
     * count: by MAX_LIVE_KERNELS kernels at their cap alone. Memory falls back to count where it cannot read.
     */
    KERNEL_ADMISSION: z.enum(["memory", "count"]).default("memory"),
    /** Above this share of the kernels' memory budget, idle kernels are evicted (pool kernels first)... */
    KERNELS_MEMORY_HIGH_PERCENT: int(85, 10),
    /** ...until memory in use is back under this share. */
    KERNELS_MEMORY_LOW_PERCENT: int(75, 5),
    /** Room a new kernel needs under the high watermark: what one takes after a first analysis. */
    KERNEL_NEW_MB: int(128, 1),
    /**
     * MemAvailable the host keeps (at most a tenth of its memory): below it no new kernel is admitted, and
     * idle kernels are evicted down to the low watermark.
     */
    HOST_MEMORY_FLOOR_MB: int(1024, 0),
    /**
     * Under memory admission, a message kernel used this recently is not evicted for a new message (the new
     * message waits); under the count ceiling alone the least recently used idle kernel goes at once.
     */
    KERNEL_EVICTION_PROTECT_MS: int(60_000, 0),
  })
  .transform((e) => ({ ...e, KERNEL_ROOT_DIR: path.resolve(e.KERNEL_ROOT_DIR ?? e.DATA_DIR) }));

export type WorkerEnv = z.infer<typeof workerEnvSchema>;

/** The only reader of process.env in the worker. */
export function loadWorkerEnv(source: Record<string, string | undefined> = process.env): WorkerEnv {
  return parseEnv(workerEnvSchema, source);
}

export const splitGlobs = (s: string) =>
  s
    .split(",")
    .map((g) => g.trim())
    .filter(Boolean);
