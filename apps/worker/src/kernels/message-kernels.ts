import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import type { LiveKernels } from "./live-kernels";
import type { KernelMappings } from "./mappings";
import type { KernelSessions } from "./sessions";
import { warnShutdownFailed } from "./shutdown-failed";

/**
 * A message kernel's records change together: its mapping (which message it serves, when it was last used),
 * its lease under the live-kernel ceiling, and this worker's session to it. Called under the message's turn
 * (or its lock, for the sweeps and eviction).
 */
export class MessageKernels {
  constructor(
    private readonly gateway: KernelGateway,
    private readonly mappings: KernelMappings,
    private readonly live: LiveKernels,
    private readonly sessions: KernelSessions,
    private readonly log: Logger,
    /** A message kernel's lease under the ceiling lasts as long as its mapping. */
    readonly leaseMs: number,
  ) {}

  /** The message's kernel, used at `lastUsed` (the idle sweep and the ceiling's eviction go by it). */
  async record(messageKey: string, kernelId: string, lastUsed: number): Promise<void> {
    // Independent keys: sent together, one round trip.
    await Promise.all([
      this.mappings.record(messageKey, kernelId, lastUsed),
      this.live.extend([kernelId], this.leaseMs),
    ]);
  }

  /** The message has no kernel any more; `shutdown`: and that kernel is shut down. */
  async forget(messageKey: string, kernelId: string, shutdown: boolean): Promise<void> {
    this.sessions.forget(kernelId);
    await this.mappings.remove(messageKey);
    // Logged and gone past: the mapping is removed already, and a kernel left running is the operator's to see.
    if (shutdown) await this.gateway.shutdownKernel(kernelId).catch(warnShutdownFailed(this.log, kernelId));
    await this.live.drop(kernelId);
  }

  /**
   * A kernel started or adopted for a turn and never recorded as the message's: shut down, or it would be
   * leaked. Best effort: the caller is reporting another error.
   */
  async discard(session: KernelSession): Promise<void> {
    this.sessions.drop(session.id);
    await session.shutdown().catch(warnShutdownFailed(this.log, session.id));
    // Its place lapses with its lease if the drop fails.
    await this.live.drop(session.id).catch(() => undefined);
  }

  /** A kernel that is not (or no longer) the message's, e.g. a lost execution's: shut down by id. */
  async shutDown(kernelId: string): Promise<void> {
    await this.gateway.shutdownKernel(kernelId).catch(warnShutdownFailed(this.log, kernelId));
    await this.live.drop(kernelId);
  }
}
