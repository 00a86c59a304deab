import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";

/** A kernel released this recently by this worker is reused without asking the gateway whether it exists. */
export const RECENT_MS = 3000;

export function isLive(session: KernelSession): boolean {
  return !session.isDead && session.connection.connectionStatus === "connected" && session.status !== "dead";
}

/** A session to a message's kernel, and (when it was not used moments ago) the gateway's "is it still there?". */
export interface Attached {
  session: KernelSession;
  stillThere?: Promise<boolean>;
}

/**
 * This worker's websockets to message kernels, so reusing a kernel costs no reconnect; which of them run an
 * execution here now (their leases under the ceiling are kept alive by the worker's beat); and when each was
 * last given back.
 */
export class KernelSessions {
  private readonly sessions = new Map<string, KernelSession>();
  private readonly lastReleased = new Map<string, number>();
  private readonly busy = new Set<string>();

  constructor(
    private readonly gateway: KernelGateway,
    private readonly log: Logger,
  ) {}

  /** The message kernel `kernelId`, connected if it is not already; null when it is gone. */
  async attach(kernelId: string): Promise<Attached | null> {
    const known = this.sessions.get(kernelId);
    // A kernel deleted on the server, or a restarted server, leaves a cached session that is reconnecting
    // to nothing: only a live connection is reused as it is.
    // One REST round trip (~2 ms) also catches a kernel deleted a moment ago whose websocket has not
    // noticed yet (sending code to it would wait for the whole timeout); the lease awaits it only before
    // code is sent, so it overlaps preparing the workspace.
    // A kernel this worker finished using moments ago skips the check: it cannot have idled into a culler,
    // and a deletion in that window is still caught by the watchdog during the run.
    if (known && isLive(known)) {
      const idleMs = Date.now() - (this.lastReleased.get(kernelId) ?? 0);
      return idleMs < RECENT_MS
        ? { session: known }
        : { session: known, stillThere: this.gateway.hasKernel(kernelId).catch(() => false) };
    }
    this.forget(kernelId);
    try {
      const s = await this.gateway.connectKernel(kernelId);
      this.sessions.set(kernelId, s);
      return { session: s };
    } catch (err) {
      this.log.info({ kernelId, err: normalizeError(err).message }, "message kernel is gone; starting another");
      return null;
    }
  }

  /** A kernel now running an execution here (a new one is remembered for the message's next). */
  use(session: KernelSession): void {
    this.sessions.set(session.id, session);
    this.busy.add(session.id);
  }

  /** Given back, kept for the message: the next execution here reuses it without asking the gateway. */
  released(kernelId: string): void {
    this.busy.delete(kernelId);
    this.lastReleased.set(kernelId, Date.now());
  }

  /** Closes this worker's websocket to the kernel (the kernel itself is the caller's to shut down). */
  forget(kernelId: string): void {
    this.sessions.get(kernelId)?.dispose();
    this.drop(kernelId);
  }

  /** Lets go of a kernel the caller shuts down through its session (a disposed session could not). */
  drop(kernelId: string): void {
    this.sessions.delete(kernelId);
    this.lastReleased.delete(kernelId);
    this.busy.delete(kernelId);
  }

  /** Message kernels running an execution in this worker now. */
  inUse(): string[] {
    return [...this.busy];
  }

  /** Message kernels stay on the gateway for the next worker; only this worker's websockets close. */
  close(): void {
    for (const s of this.sessions.values()) s.dispose();
    this.sessions.clear();
  }
}
