import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { WorkspaceLayout } from "../workspace-layout";

export interface KernelLease {
  session: KernelSession;
  /** Taken from the pool of pre-started kernels: no start latency for this execution. */
  pooled: boolean;
  /** The message's own kernel from an earlier execution: its variables are still there. */
  reused: boolean;
  /** Time spent getting a ready kernel (ms). */
  acquireMs: number;
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
}

export interface KernelBroker {
  acquire(req: AcquireRequest): Promise<KernelLease>;
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
    async evict(_req, kernelId) {
      await gateway.shutdownKernel(kernelId).catch(() => undefined);
    },
    async close() {},
  };
}
