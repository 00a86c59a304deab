import type { KernelSession } from "@codeinterp/kernel";

/** The message's kernel as recorded in Redis (any worker can attach to it). */
export interface KernelMapping {
  kernelId: string;
  lastUsed: number;
}

/**
 * One execution's turn on its message: the message's lock, held from `tryTurn`/`takeTurn` until `release`,
 * and the mapping read under it. The job that takes a turn releases it in one `try/finally`; the broker's
 * acquire/bind/release/evict only receive it. While a turn is held nobody else starts, uses, evicts or
 * removes the message's kernel or workspace.
 */
export interface MessageTurn {
  readonly messageKey: string;
  /** The message's kernel when the turn began (null: it has none), read under the lock. */
  readonly mapping: KernelMapping | null;
  /** Ends the turn: frees the lock and any place under the kernel ceiling it reserved and did not use. */
  release(): Promise<void>;
}

export interface KernelLease {
  session: KernelSession;
  /** Taken from the pool of pre-started kernels: no start latency for this execution. */
  pooled: boolean;
  /** The message's own kernel from an earlier execution: its variables are still there. */
  reused: boolean;
  /** A new kernel because the message's previous one was shut down to stay under the live-kernel ceiling. */
  stateReset: boolean;
  /** The workspace path this kernel already starts every cell in (a sandboxed pool kernel's /mnt/data). */
  enteredDir?: string;
  /** Time spent getting a ready kernel (ms). */
  acquireMs: number;
  /**
   * For a reused kernel: the gateway's answer to "does it still exist?", asked while the workspace is
   * prepared. Code goes to the kernel only after it says yes.
   */
  stillThere?: Promise<boolean>;
}

export interface AcquireRequest {
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
  acquire(turn: MessageTurn, req: AcquireRequest): Promise<KernelLease>;
  /**
   * Records a new kernel as the message's, once it is set up to run the message's code (so no other
   * execution can pick up a kernel that would run outside the message's workspace).
   */
  bind(turn: MessageTurn, lease: KernelLease): Promise<void>;
  /** Gives the kernel back; `discard`: it is dead or its state unknown, shut it down rather than keep it. */
  release(turn: MessageTurn, lease: KernelLease, opts: { discard: boolean }): Promise<void>;
  /** Whether the gateway still has the kernel. */
  kernelExists(kernelId: string): Promise<boolean>;
  /** Shuts down a kernel an execution was lost on (its worker died): it may still be busy with that code. */
  evict(turn: MessageTurn, kernelId: string): Promise<void>;
  close(): Promise<void>;
}
