import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { WorkspaceLayout } from "../workspace-layout";
import type { HeldLock } from "./lock";

export interface KernelLease {
  session: KernelSession;
  /** Taken from the pool of pre-started kernels: no start latency for this execution. */
  pooled: boolean;
  /** The message's own kernel from an earlier execution: its variables are still there. */
  reused: boolean;
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
  /** Cancelling the execution stops the wait for the message's lock. */
  signal?: AbortSignal;
  /** The message's lock, already taken for this execution (see `tryMessageLock`): acquire does not wait. */
  heldLock?: HeldLock;
}

export interface KernelBroker {
  acquire(req: AcquireRequest): Promise<KernelLease>;
  /**
   * Records a new kernel as the message's, once it is set up to run the message's code (so no other
   * execution can pick up a kernel that would run outside the message's workspace).
   */
  bind(req: AcquireRequest, lease: KernelLease): Promise<void>;
  /** The message's lock if nobody holds it, without waiting; null when another execution has it. */
  tryMessageLock(messageKey: string): Promise<HeldLock | null>;
  /** `discard`: the kernel is dead or its state unknown; shut it down rather than keep it. */
  release(req: AcquireRequest, lease: KernelLease, opts: { discard: boolean }): Promise<void>;
  /** Whether the gateway still has the kernel. */
  kernelExists(kernelId: string): Promise<boolean>;
  /** Shuts down a kernel an execution was lost on (its worker died): it may still be busy with that code. */
  evict(req: AcquireRequest, kernelId: string): Promise<void>;
  close(): Promise<void>;
}

/** The baseline: a fresh kernel per execution, shut down afterwards. */
export function createFreshKernelBroker(gateway: KernelGateway, layout: WorkspaceLayout): KernelBroker {
  return {
    async acquire(req) {
      const started = Date.now();
      await layout.ensureWorkspace(req.workspaceDir, req.uid);
      const session = await gateway.startKernel({ path: req.kernelPath });
      return { session, pooled: false, reused: false, acquireMs: Date.now() - started };
    },
    async release(_req, lease) {
      await lease.session.shutdown().catch(() => undefined);
    },
    kernelExists: (kernelId) => gateway.hasKernel(kernelId),
    async bind() {},
    // A fresh kernel per execution: nothing to serialise.
    tryMessageLock: async () => ({ firstTry: true, release: async () => undefined }),
    async evict(_req, kernelId) {
      await gateway.shutdownKernel(kernelId).catch(() => undefined);
    },
    async close() {},
  };
}
