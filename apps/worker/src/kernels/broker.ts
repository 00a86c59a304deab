import type { KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";

/** The message's kernel as recorded in Redis (any worker can attach to it). */
export interface KernelMapping {
  kernelId: string;
  lastUsed: number;
}

/**
 * One execution's turn on its message: the message's lock, held from `tryTurn`/`takeTurn` until `release`,
 * and the mapping read under it. The job that takes a turn releases it in one `try/finally`; the broker's
 * lease and evict only receive it. While a turn is held nobody else starts, uses, evicts or removes the
 * message's kernel or workspace.
 */
export interface MessageTurn {
  readonly messageKey: string;
  /** The message's kernel when the turn began (null: it has none), read under the lock. */
  readonly mapping: KernelMapping | null;
  /** A restart was asked for (the Jupyter surface): the turn starts the message on a fresh kernel. */
  readonly resetAsked: boolean;
  /** Ends the turn: frees the lock and any place under the kernel ceiling it reserved and did not use. */
  release(): Promise<void>;
}

export interface LeaseRequest {
  /** Identifies the (user, message) pair; a kernel never serves two of them. */
  messageKey: string;
  /** The message's workspace (absolute, on this machine). */
  workspaceDir: string;
  /** Kernel working directory relative to the gateway's root_dir. */
  kernelPath: string;
  /** Owner of the workspace when kernels are sandboxed. */
  uid: number;
  /** Cancelling the execution stops a wait for room under the live-kernel ceiling. */
  signal?: AbortSignal;
  /**
   * The memory limit the code is to run under (the execution's `limits.memoryMb`, or the gateway's
   * per-kernel default); unset: the kernel's limit is left as it is.
   */
  memoryBytes?: number;
  /** Where the lease logs, with the execution's ids (default: the broker's logger). */
  log?: Logger;
  /**
   * Runs before the lease takes a pool kernel or starts one (not when it attaches the message's own): the
   * execution shows that it is preparing. Its rejection ends the lease, with no kernel taken.
   */
  beforeNewKernel?: () => Promise<void>;
}

/**
 * Where a lease's kernel came from: the message's own kernel from an earlier execution ("attached", its
 * variables still there), a pre-started pool kernel ("adopted"), or one started for it ("started").
 */
export type LeaseSource = "attached" | "adopted" | "started";

/**
 * A kernel for one turn, set up to run the message's code in its workspace (a new one is recorded as the
 * message's). The turn uses it and gives it back with `release` (kept for the message's next execution) or
 * `retire` (shut down: dead, or its state unknown); both are idempotent, and a lease whose `ready` failed
 * has given its kernel back already.
 */
export interface KernelLease {
  /** The kernel (another one after `ready` if it had to replace it). */
  readonly session: KernelSession;
  readonly how: LeaseSource;
  /** The message had a kernel this lease does not give it (dead, gone, reset asked, over the memory limit). */
  readonly replaced: boolean;
  /** The message's previous kernel was shut down to make room for others (the ceiling's note is owed). */
  readonly stateReset: boolean;
  /** Time spent getting the kernel (ms): attaching, adopting or starting it, without its setup. */
  readonly acquireMs: number;
  /**
   * After `ready`: the request's memory limit is in force ("applied"), none was asked ("unchanged"), or this
   * worker cannot set one for this deployment's kernels ("unavailable": unsandboxed, or a remote gateway).
   */
  readonly memoryLimit: "applied" | "unchanged" | "unavailable";
  /**
   * Called once the workspace is prepared, before code is sent: makes sure the kernel still exists on the
   * gateway (one deleted a moment ago is replaced) and runs under the request's memory limit (one holding
   * more than that is replaced once by a fresh kernel; a fresh one that still does fails with
   * MemoryRequestTooSmallError). The gateway check is asked for at lease time and overlaps the preparation.
   */
  ready(): Promise<KernelSession>;
  /** Whether the gateway still has the kernel (the run's watchdog asks). */
  exists(): Promise<boolean>;
  /** Gives the kernel back for the message's next execution (one found dead is shut down instead). */
  release(): Promise<void>;
  /** Shuts the kernel down and forgets it: dead, or its state unknown after a failure half-way. */
  retire(): Promise<void>;
}

export interface KernelBroker {
  /** The message's turn if nobody has it, without waiting; null when another execution has it. */
  tryTurn(messageKey: string): Promise<MessageTurn | null>;
  /** The message's turn, waiting for whoever has it. */
  takeTurn(messageKey: string, signal?: AbortSignal): Promise<MessageTurn>;
  /**
   * Whether the turn can have a kernel now without passing the live-kernel ceiling: its own kernel, a
   * pre-started one, or a place reserved for a start (after shutting down the least recently used idle
   * kernel if needed). False: every kernel is busy; the caller waits without holding the turn.
   */
  makeRoom(turn: MessageTurn): Promise<boolean>;
  /**
   * The one way to a kernel for a turn: the message's own kernel if it is alive (and no restart was asked
   * for), else a pool kernel its workspace can adopt, else one started in a place under the ceiling; a new
   * kernel that dies while starting or is unusable before any code ran is replaced once.
   */
  lease(turn: MessageTurn, req: LeaseRequest): Promise<KernelLease>;
  /** Shuts down a kernel an execution was lost on (its worker died): it may still be busy with that code. */
  evict(turn: MessageTurn, kernelId: string): Promise<void>;
  close(): Promise<void>;
}
