import { setTimeout as sleep } from "node:timers/promises";
import type { Kernel } from "@jupyterlab/services";
import { KernelAPI, ServerConnection } from "@jupyterlab/services";
import { GatewayUnavailableError, KernelDiedError } from "./errors";
import { runExecution } from "./execute";
import type { KernelCpuPriority, KernelHost, MemoryLimitChange } from "./host";
import type { Log } from "./log";
import { withGatewayRetry } from "./settings";
import type { ExecuteOptions, ExecutionOutcome } from "./types";

const RESTART_TIMEOUT_MS = 30_000;
const INTERRUPT_TIMEOUT_MS = 5_000;
const SHUTDOWN_RETRIES = 10;
const READY_POLL_MS = 2_000;

/** Shuts a kernel down; 404 means already gone; a 500 (jupyter_client 7.4, kernel mid-restart) is retried. */
export async function shutdownKernelById(
  id: string,
  settings: ServerConnection.ISettings,
  firstDelayMs = 0,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    if (firstDelayMs || attempt > 1) await sleep(1_000);
    try {
      await KernelAPI.shutdownKernel(id, settings);
      return;
    } catch (err) {
      if (err instanceof ServerConnection.ResponseError && err.response.status === 404) return;
      if (
        !(err instanceof ServerConnection.ResponseError && err.response.status === 500) ||
        attempt >= SHUTDOWN_RETRIES
      ) {
        throw err;
      }
    }
  }
}

const never = new AbortController().signal;

/** Bounds a gateway wait by `ms`, and ends it as soon as `down` aborts (the gateway is unresponsive). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string, down: AbortSignal = never): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onDown: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayUnavailableError(`${what} did not finish within ${ms} ms`)), ms);
    onDown = () => reject(new GatewayUnavailableError(`${what} abandoned: the kernel gateway is unresponsive`));
    if (down.aborted) onDown();
    else down.addEventListener("abort", onDown, { once: true });
  });
  return Promise.race([p, timeout]).finally(() => {
    clearTimeout(timer);
    if (onDown) down.removeEventListener("abort", onDown);
  });
}

/** One client connection to one kernel. Runs are serialized: a kernel executes one cell at a time anyway. */
export class KernelSession {
  readonly id: string;
  private dead = false;
  private deathReason = "";
  private queue: Promise<unknown> = Promise.resolve();
  private restarts = 0;
  private onDeath: (err: Error) => void = () => undefined;
  /** Rejects when the session is marked dead, so waits on the kernel end then instead of at their timeout. */
  private readonly death = new Promise<never>((_, reject) => (this.onDeath = reject));

  /** Out-of-memory kills of this kernel already known (reported, or before we attached). */
  private memoryKillsSeen: Promise<number | null>;

  constructor(
    readonly connection: Kernel.IKernelConnection,
    private readonly settings: ServerConnection.ISettings,
    private readonly log: Log,
    /** The machine the kernel runs on (see host.ts): its memory limit, kills and CPU weight. */
    private readonly host: KernelHost,
    /** Aborted while the gateway is declared unresponsive (see liveness.ts); never, without a monitor. */
    readonly gatewayDown: () => AbortSignal = () => never,
  ) {
    this.id = connection.id;
    this.memoryKillsSeen = host.memoryKills(this.id).then((k) => k?.oomKills ?? null);
    // Awaited by whoever asks how the kernel died; this only keeps an unobserved rejection handled.
    this.death.catch(() => undefined);
    // After a server autorestart the library calls reconnect() from a detached promise; if that fails (or we
    // dispose meanwhile) its rejection is unhandled and would crash the process. Failure stays visible
    // through connectionStatus, which restart() checks.
    const reconnect = connection.reconnect.bind(connection);
    // A failed reconnect shows as a dead connection, which every user of the session checks.
    connection.reconnect = () => reconnect().catch(() => undefined);
    // Likewise, on every reconnect the library sends a kernel_info request from a detached promise; a
    // restart (or crash) that cancels that request rejects it with "Canceled future", unhandled. A cancelled
    // request resolves empty instead, as the library already does when the connection is disposed.
    const requestKernelInfo = connection.requestKernelInfo.bind(connection);
    connection.requestKernelInfo = () =>
      requestKernelInfo().catch((err: unknown) => {
        if (/Canceled future/.test(String((err as Error | undefined)?.message))) return undefined;
        throw err;
      });
    // The library rejects its kernel_info promise if a reply errors, when nobody may be waiting on it: it
    // gets a handler up front (and again on every status change, which costs nothing).
    const guardInfo = () => {
      connection.info.catch(() => undefined);
    };
    guardInfo();
    connection.statusChanged.connect((_, status) => {
      guardInfo();
      if (status === "autorestarting") this.restarts++;
      if (status === "dead") this.markDead("kernel status is dead");
    });
    connection.connectionStatusChanged.connect((_, status) => {
      guardInfo();
      if (status === "disconnected" && !connection.isDisposed) this.markDead("lost the connection to the gateway");
    });
  }

  /** True once the kernel is gone for this session (dead, shut down, or unreachable for good). */
  get isDead(): boolean {
    return this.dead;
  }

  get whyDead(): string {
    return this.deathReason;
  }

  /** Counts kernel restarts (ours and the server's after a crash): a change means variables are gone. */
  get generation(): number {
    return this.restarts;
  }

  get status(): Kernel.Status {
    return this.connection.status;
  }

  /** After a crash: whether the host counted an out-of-memory kill of this kernel since the last look. */
  async newMemoryKill(): Promise<{ limitBytes: number | null } | null> {
    const seen = (await this.memoryKillsSeen) ?? 0;
    const now = await this.host.memoryKills(this.id);
    if (!now) return null;
    this.memoryKillsSeen = Promise.resolve(now.oomKills);
    return now.oomKills > seen ? { limitBytes: now.limitBytes } : null;
  }

  /**
   * Sets the kernel's memory limit; null when its host cannot (unsandboxed kernels, a gateway on another
   * machine). See KernelHost.setMemoryLimit.
   */
  setMemoryLimit(bytes: number): Promise<MemoryLimitChange | null> {
    return this.host.setMemoryLimit(this.id, bytes);
  }

  /** Sets the kernel's CPU weight; false when its host cannot. */
  setCpuPriority(priority: KernelCpuPriority): Promise<boolean> {
    return this.host.setCpuPriority(this.id, priority);
  }

  markDead(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    this.deathReason = reason;
    this.log.warn({ kernelId: this.id, reason }, "kernel session is dead");
    this.onDeath(new KernelDiedError(`kernel ${this.id} is dead: ${reason}`));
  }

  /** Waits (bounded) until the websocket is connected again, e.g. after the server restarted a crashed kernel. */
  async settle(timeoutMs: number): Promise<void> {
    const conn = this.connection;
    if (conn.isDisposed || conn.connectionStatus === "connected") return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        conn.connectionStatusChanged.disconnect(onChange);
        this.gatewayDown().removeEventListener("abort", done);
        resolve();
      };
      const onChange = (_: unknown, status: string) => {
        if (status !== "connecting") done();
      };
      const timer = setTimeout(done, timeoutMs);
      conn.connectionStatusChanged.connect(onChange);
      const down = this.gatewayDown();
      if (down.aborted) done();
      else down.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Resolves once the kernel answered kernel_info, i.e. can run code (after any restarts the server makes
   * while it starts). Rejects with KernelDiedError within seconds of the server giving the kernel up.
   */
  async ready(timeoutMs: number): Promise<void> {
    // The server gives a kernel up after its restart limit without a word on the websocket (jupyter_server
    // keeps it open): ask it every few seconds whether the kernel still exists.
    let asking = false;
    const poll = setInterval(() => {
      if (asking) return;
      asking = true;
      KernelAPI.getKernelModel(this.id, this.settings)
        .then(
          (model) => {
            if (!model || model.execution_state === "dead")
              this.markDead("the server gave the kernel up while it started");
          },
          () => undefined,
        )
        .finally(() => (asking = false));
    }, READY_POLL_MS);
    try {
      await withTimeout(
        Promise.race([this.connection.info, this.death]),
        timeoutMs,
        `kernel ${this.id} start`,
        this.gatewayDown(),
      );
    } finally {
      clearInterval(poll);
    }
  }

  execute(code: string, opts: ExecuteOptions = {}): Promise<ExecutionOutcome> {
    const calledAt = Date.now();
    const run = this.queue.then(() => {
      if (this.connection.isDisposed && !this.dead) throw new Error(`kernel session ${this.id} was disposed`);
      if (this.dead) throw new KernelDiedError(`kernel ${this.id} is dead: ${this.deathReason}`);
      return runExecution(this, code, opts, calledAt);
    });
    // The queue only orders runs; each run's own promise reports its failure.
    this.queue = run.catch(() => undefined);
    return run;
  }

  async interrupt(): Promise<void> {
    await withGatewayRetry(
      "interrupt",
      () =>
        withTimeout(
          KernelAPI.interruptKernel(this.id, this.settings),
          INTERRUPT_TIMEOUT_MS,
          "interrupt",
          this.gatewayDown(),
        ),
      { attempts: 3, retryable: () => true },
    );
  }

  /** Restarts the kernel process (same id, fresh state) and waits until it answers again. */
  async restart(): Promise<void> {
    this.restarts++;
    // The library rejects its pending kernel_info promise when a restart cancels it; nobody else awaits
    // that promise, so without this the rejection would be unhandled and crash the process.
    this.connection.info.catch(() => undefined);
    try {
      const restarting = this.connection.restart();
      this.connection.info.catch(() => undefined); // the new pending kernel_info: same reason as above
      await withTimeout(restarting, RESTART_TIMEOUT_MS, "kernel restart", this.gatewayDown());
      if (this.connection.connectionStatus !== "connected")
        throw new GatewayUnavailableError("could not reconnect after restart");
      await withTimeout(this.connection.info, RESTART_TIMEOUT_MS, "kernel restart", this.gatewayDown());
    } catch (err) {
      this.markDead(`restart failed: ${(err as Error).message}`);
      throw err;
    }
  }

  /** Stops the kernel process on the server and closes the connection. */
  async shutdown(): Promise<void> {
    // Marked first so the "dead" status the shutdown causes is not reported as a crash.
    this.dead = true;
    this.deathReason ||= "shut down";
    try {
      if (!this.connection.isDisposed)
        await withTimeout(this.connection.shutdown(), RESTART_TIMEOUT_MS, "shutdown", this.gatewayDown());
    } catch (err) {
      if (!(err instanceof ServerConnection.ResponseError)) throw err;
      // 404: already gone. 500: jupyter_client 7.4 fails while an autorestarted kernel is still starting.
      if (err.response.status !== 404) await shutdownKernelById(this.id, this.settings, 1_000);
    } finally {
      this.connection.dispose();
    }
  }

  /** Closes the websocket and leaves the kernel running, for another worker to attach to. */
  dispose(): void {
    this.connection.dispose();
  }
}
