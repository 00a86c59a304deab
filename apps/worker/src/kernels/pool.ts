import { removeWorkspaceDir } from "@codeinterp/workspace";
import { executeWatched, KernelDiedError } from "@codeinterp/kernel";
import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import { enterWorkspaceCode } from "./enter-workspace";
import { warnShutdownFailed } from "./shutdown-failed";

/** Where a pooled kernel waits: its working directory, relative to the gateway root and absolute. */
export interface PoolSlot {
  path: string;
  dir: string;
  /**
   * The workspace as code in the kernel will see it once a message takes the slot, when that is known now
   * (sandboxed: /mnt/data for every message): the kernel enters it while it waits.
   */
  kernelDir?: string;
  /** The directory belongs to this kernel alone and is removed with it if no message adopted it. */
  disposable: boolean;
}

export interface PooledKernel {
  session: KernelSession;
  slot: PoolSlot;
  /** The kernel's generation when its preload (and workspace hook) ran: a restart since then lost both. */
  warmGeneration: number;
}

const CLOSE_WAIT_MS = 15_000;
const PRELOAD_TIMEOUT_MS = 60_000;
/** At the live-kernel ceiling the pool waits this long before asking for a place again. */
const FULL_RETRY_MS = 2000;

/** A place under the live-kernel ceiling for one pool kernel (see live-kernels.ts). */
export interface PoolPlace {
  bind(kernelId: string): Promise<void>;
  drop(): Promise<void>;
}

export interface KernelPoolOptions {
  gateway: KernelGateway;
  /** Kernels kept ready when no new messages come (KERNEL_POOL_SIZE). */
  size: number;
  /** Most kernels kept ready under demand (default `size`: a fixed pool). */
  maxSize?: number;
  /** Takes this recent raise the target: one more kernel ready per take in the window (default 30 s). */
  demandWindowMs?: number;
  /** Called for each ready kernel shut down because demand fell (its place under the ceiling is free). */
  onShrunk?: (kernelId: string) => Promise<void>;
  log: Logger;
  /** Makes the directory a new pool kernel waits in (never any message's workspace). */
  newSlot: () => Promise<PoolSlot>;
  onChange?: (ids: string[]) => void;
  /** A place for one more kernel, or null at the ceiling (see room.ts: a pool kernel never pushes a busy one out). */
  reservePlace?: () => Promise<PoolPlace | null>;
  /** Python run in each new pool kernel before it is handed out (@codeinterp/kernel's preloadCode). */
  preload?: string;
  /**
   * Takes a ready kernel's record (pool-owners' claim): false when another worker's eviction took it first
   * and is shutting it down. Default: always true.
   */
  claim?: (kernelId: string) => Promise<boolean>;
  /** A kernel became ready (the worker's "pool:refilled" event). */
  onReady?: (kernelId: string) => void;
}

/**
 * Pre-started kernels that have never run anyone's code, so a message's first execution does not wait
 * for a kernel start (~0.6-1 s). Refilled one kernel at a time in the background to avoid start storms.
 * With sandboxed kernels each waits in an empty directory of its own (mounted as its /mnt/data), which
 * becomes the workspace of the message it is given to.
 */
export class KernelPool {
  private readonly ready: PooledKernel[] = [];
  /** Refill loops under way: close() waits for them, so no kernel start outlives the pool. */
  private readonly fillers = new Set<Promise<void>>();
  /** Kernels being started (and preloaded) now. */
  private starting = 0;
  /** When kernels were taken, within the demand window. */
  private takes: number[] = [];
  private shrinkTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private failures = 0;

  private readonly gateway: KernelGateway;
  private readonly size: number;
  private readonly maxSize: number;
  private readonly demandWindowMs: number;
  private readonly onShrunk: (kernelId: string) => Promise<void>;
  private readonly log: Logger;
  private readonly newSlot: () => Promise<PoolSlot>;
  private readonly onChange: (ids: string[]) => void;
  private readonly reservePlace: () => Promise<PoolPlace | null>;
  private readonly preload: string;
  private readonly claimRecord: (kernelId: string) => Promise<boolean>;
  private readonly onReady: (kernelId: string) => void;

  constructor(opts: KernelPoolOptions) {
    this.gateway = opts.gateway;
    this.size = opts.size;
    // Size 0 is no pool at all, whatever the demand.
    this.maxSize = opts.size === 0 ? 0 : Math.max(opts.size, opts.maxSize ?? opts.size);
    this.demandWindowMs = opts.demandWindowMs ?? 30_000;
    this.onShrunk = opts.onShrunk ?? (async () => undefined);
    this.log = opts.log;
    this.newSlot = opts.newSlot;
    this.onChange = opts.onChange ?? (() => undefined);
    this.reservePlace =
      opts.reservePlace ?? (async () => ({ bind: async () => undefined, drop: async () => undefined }));
    this.preload = opts.preload ?? "";
    this.claimRecord = opts.claim ?? (async () => true);
    this.onReady = opts.onReady ?? (() => undefined);
  }

  get available(): number {
    return this.ready.length;
  }

  /**
   * How many kernels the pool keeps ready now: KERNEL_POOL_SIZE, plus one per kernel taken in the demand
   * window, up to maxSize. A burst of new messages raises it at once; once they stop it falls back.
   */
  get target(): number {
    const since = Date.now() - this.demandWindowMs;
    while (this.takes.length > 0 && this.takes[0]! <= since) this.takes.shift();
    return Math.min(this.maxSize, this.size + this.takes.length);
  }

  ids(): string[] {
    return this.ready.map((k) => k.session.id);
  }

  /** A never-used kernel, or null when the pool is empty (the caller starts one itself). */
  take(): PooledKernel | null {
    const kernel = this.shiftLive();
    this.taken();
    return kernel;
  }

  /** The next ready kernel that is still alive; dead ones are dropped on the way. */
  private shiftLive(): PooledKernel | null {
    let kernel: PooledKernel | undefined;
    while ((kernel = this.ready.shift())) {
      const s = kernel.session;
      if (!s.isDead && s.connection.connectionStatus === "connected" && s.status !== "dead") break;
      // Gone while waiting (server restarted, kernel deleted): drop it, and go on to the next.
      void s.shutdown().catch(warnShutdownFailed(this.log, s.id));
    }
    return kernel ?? null;
  }

  /** After a take: demand is counted, the pool's record follows, and a refill starts. */
  private taken(): void {
    if (this.maxSize > this.size) {
      this.takes.push(Date.now());
      this.scheduleShrink();
    }
    this.onChange(this.ids());
    this.refill();
  }

  /** Once the window after the last take has passed, ready kernels above the (fallen) target are shut down. */
  private scheduleShrink(): void {
    if (this.shrinkTimer) clearTimeout(this.shrinkTimer);
    this.shrinkTimer = setTimeout(() => {
      this.shrinkTimer = null;
      void this.shrink();
    }, this.demandWindowMs + 50);
    this.shrinkTimer.unref();
  }

  private async shrink(): Promise<void> {
    if (this.closed) return;
    const extra = this.ready.splice(Math.max(this.target, 0));
    if (extra.length === 0) return;
    this.onChange(this.ids());
    this.log.debug({ kernels: extra.length, target: this.target }, "kernel pool shrinks after demand fell");
    await Promise.all(
      extra.map(async (k) => {
        // Logged and gone past: the other extra kernels are shut down all the same.
        await k.session.shutdown().catch(warnShutdownFailed(this.log, k.session.id));
        // Best effort: a directory left behind holds no one's files and is removed with the pool's root.
        if (k.slot.disposable) await removeWorkspaceDir(k.slot.dir).catch(() => undefined);
        // Its place under the ceiling lapses with its lease if this fails.
        await this.onShrunk(k.session.id).catch(() => undefined);
      }),
    );
  }

  /**
   * A never-used kernel that is this caller's alone: one that another worker's eviction is shutting down
   * (it removed the kernel's record first) is passed over, so a message never starts on a kernel about to
   * vanish. Null when the pool is empty.
   */
  async claim(): Promise<PooledKernel | null> {
    for (;;) {
      // The record is claimed before the pool's own record update (taken) would remove it.
      const kernel = this.shiftLive();
      const ours = kernel ? await this.claimRecord(kernel.session.id) : true;
      this.taken();
      if (!kernel || ours) return kernel;
      this.log.info(
        { kernelId: kernel.session.id },
        "a pool kernel taken for a message was being evicted; passed over",
      );
      // The evicting worker shuts it down; so does this one, in case no one is (its record was lost to a
      // Redis error): a second shutdown of a kernel is harmless, a leaked one is not.
      void kernel.session.shutdown().catch(warnShutdownFailed(this.log, kernel.session.id));
      if (kernel.slot.disposable) await removeWorkspaceDir(kernel.slot.dir).catch(() => undefined);
    }
  }

  /** Returns an unused kernel that could not be given to the message it was taken for. */
  putBack(kernel: PooledKernel): void {
    if (this.closed || kernel.session.isDead) {
      // Dead or unwanted: not kept, whether or not the shutdown goes through.
      void kernel.session.shutdown().catch(warnShutdownFailed(this.log, kernel.session.id));
      return;
    }
    this.ready.unshift(kernel);
    this.onChange(this.ids());
  }

  /**
   * Starts refill loops up to the target: one at a time normally (no start storms), two while demand has
   * raised the target (a burst should not wait on one start after another; starts run at background CPU
   * weight, so running executions keep their share).
   */
  refill(): void {
    const parallel = this.target > this.size ? 2 : 1;
    while (!this.closed && this.fillers.size < parallel && this.ready.length + this.starting < this.target) {
      const filler: Promise<void> = this.fill().finally(() => this.fillers.delete(filler));
      this.fillers.add(filler);
      // fill() counts its start synchronously, so the loop condition sees it.
    }
  }

  private async fill(): Promise<void> {
    let counted = false;
    try {
      while (!this.closed && this.ready.length + this.starting < this.target) {
        this.starting++;
        counted = true;
        const place = await this.reservePlace();
        if (!place) {
          if (!this.closed) setTimeout(() => this.refill(), FULL_RETRY_MS).unref();
          break;
        }
        const slot = await this.newSlot().catch(async (err: unknown) => {
          await place.drop();
          throw err;
        });
        // Best effort: a directory left behind holds no one's files and is removed with the pool's root.
        const dropSlot = () => (slot.disposable ? removeWorkspaceDir(slot.dir).catch(() => undefined) : undefined);
        const session = this.closed
          ? null
          : await this.startWarm(slot).catch(async (err: unknown) => {
              await dropSlot();
              // An unused place lapses with its lease if the drop fails.
              await place.drop().catch(() => undefined);
              throw err;
            });
        if (!session || this.closed) {
          // Closing or closed: the pool does not keep it, whether or not the shutdown goes through.
          if (session) await session.shutdown().catch(warnShutdownFailed(this.log, session.id));
          await dropSlot();
          // An unused place lapses with its lease if the drop fails.
          await place.drop().catch(() => undefined);
          break;
        }
        // Without the binding the place still counts until its lease lapses: the ceiling stays safe.
        await place.bind(session.id).catch(() => undefined);
        this.ready.push({ session, slot, warmGeneration: session.generation });
        this.starting--;
        counted = false;
        this.failures = 0;
        this.onChange(this.ids());
        this.onReady(session.id);
        // Started for demand that has passed meanwhile: not kept.
        if (this.ready.length > this.target) void this.shrink();
      }
    } catch (err) {
      if (this.closed) return;
      this.failures++;
      this.log.warn({ err: normalizeError(err), failures: this.failures }, "kernel pool refill failed");
      // Back off so a gateway outage does not turn into a tight loop of failed starts.
      const delay = Math.min(1000 * 2 ** this.failures, 30_000);
      setTimeout(() => this.refill(), delay).unref();
    } finally {
      if (counted) this.starting--;
    }
  }

  /**
   * A kernel started in the slot, with the preload run in it: a message's first analysis finds pandas and
   * matplotlib imported and their first-use costs paid (a module that does not import is skipped inside).
   */
  private async startWarm(slot: PoolSlot): Promise<KernelSession> {
    const session = await this.gateway.startKernel({ path: slot.path });
    const code = [this.preload, slot.kernelDir ? enterWorkspaceCode(slot.kernelDir) : ""].filter(Boolean).join("\n");
    if (code && !this.closed) {
      const t0 = Date.now();
      // Watched as user code is: a kernel lost with a server restart (or deleted) never answers, and the pool
      // would wait out the whole preload timeout with its refill stuck behind it. (Its run then ends as a
      // cancel does, after an interrupt and a restart that fail: seconds, not the timeout.)
      let failure: Error | null = null;
      try {
        const { outcome, vanished } = await executeWatched(session, code, {
          timeoutMs: PRELOAD_TIMEOUT_MS,
          exists: () => this.gateway.hasKernel(session.id),
          onLookupError: (err) =>
            this.log.debug({ kernelId: session.id, err: normalizeError(err).message }, "pool kernel lookup failed"),
        });
        if (vanished)
          failure = new KernelDiedError(`pool kernel ${session.id} vanished from the server during its preload`);
        else if (outcome.status !== "ok")
          failure = new Error(`pool kernel ${session.id} preload ended ${outcome.status}`);
      } catch (err) {
        failure =
          err instanceof KernelDiedError ? err : new Error(`pool kernel ${session.id} preload ended with an error`);
      }
      if (failure) {
        // Still busy, or dead: no message gets a kernel in that state (the error says why it failed).
        await session.shutdown().catch(warnShutdownFailed(this.log, session.id));
        throw failure;
      }
      this.log.debug({ kernelId: session.id, ms: Date.now() - t0 }, "pool kernel preloaded");
    }
    return session;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.shrinkTimer) clearTimeout(this.shrinkTimer);
    // A start under way ends by shutting its kernel down (the loop sees `closed`); wait for that, within
    // reason, so closing leaves no kernel or request behind.
    if (this.fillers.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.fillers), new Promise((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
      clearTimeout(timer);
    }
    const kernels = this.ready.splice(0);
    this.onChange([]);
    await Promise.all(
      kernels.map(async (k) => {
        // Closing: the others are shut down and the directory removed all the same.
        await k.session.shutdown().catch(warnShutdownFailed(this.log, k.session.id));
        if (k.slot.disposable) await removeWorkspaceDir(k.slot.dir).catch(() => undefined);
      }),
    );
  }
}
