import { normalizeError } from "@codeinterp/logger";
import type { KernelLease } from "../../kernels/broker";
import { acquireKernel, confirmKernel } from "./acquire-kernel";
import type { ExecutionContext } from "./context";

const MiB = 1024 ** 2;

/** Even a fresh kernel holds more memory than the execution asked for: it cannot run under that limit. */
export class MemoryRequestTooSmallError extends Error {
  override name = "MemoryRequestTooSmallError";
}

export const MEMORY_REQUEST_NOT_APPLIED_NOTE =
  "limits.memoryMb was not applied: this deployment's kernels have no memory limit this worker can change " +
  "(unsandboxed kernels, or a kernel gateway on another machine); the code ran under the kernel's own limit";

/**
 * Gives the kernel, just before the code is sent, the memory limit this execution asked for
 * (`limits.memoryMb`), or the gateway's per-kernel default when it asked nothing. A kernel serves one message
 * but many executions, each under its own limit: a raise lasts one execution. A kernel that already holds
 * more than a lower limit (an earlier execution asked more and kept it in variables) is replaced by a fresh
 * one, whose result says variables were reset: lowering the limit under what a kernel holds would stop it
 * with an out-of-memory kill at once. Only a worker on the gateway's machine can reach the kernels' cgroups.
 */
export async function applyMemoryLimit(ctx: ExecutionContext, lease: KernelLease): Promise<KernelLease> {
  const asked = ctx.exec.memoryMb;
  const bytes = asked === null ? ctx.deps.kernelMemoryBytes : asked * MiB;
  if (bytes === undefined) return lease;
  for (let attempt = 1; ; attempt++) {
    const change = await lease.session.setMemoryLimit(bytes).catch((err: unknown) => {
      ctx.log.warn(
        { err: normalizeError(err).message, kernelId: lease.session.id },
        "could not set the kernel's memory limit",
      );
      return null;
    });
    if (change === null) {
      if (asked !== null) ctx.notes.push(MEMORY_REQUEST_NOT_APPLIED_NOTE);
      return lease;
    }
    if (change.applied) {
      if (change.previousBytes !== bytes)
        ctx.log.info(
          {
            kernelId: lease.session.id,
            memoryMb: bytes / MiB,
            previousMb: change.previousBytes === null ? null : change.previousBytes / MiB,
          },
          "kernel memory limit set",
        );
      return lease;
    }
    const usageMb = Math.ceil(change.usageBytes / MiB);
    if (attempt >= 2) {
      // The execution fails either way; a kernel the release could not shut down is swept as an orphan.
      await ctx.deps.broker.release(ctx.turn, lease, { discard: true }).catch(() => undefined);
      throw new MemoryRequestTooSmallError(
        `a new kernel already holds ${usageMb} MB, more than the ${bytes / MiB} MB this execution may use`,
      );
    }
    ctx.log.info(
      { kernelId: lease.session.id, usageMb, memoryMb: bytes / MiB },
      "the kernel holds more than this execution's memory limit; taking a fresh one",
    );
    await ctx.deps.broker.release(ctx.turn, lease, { discard: true });
    lease = await confirmKernel(ctx, await acquireKernel(ctx));
  }
}
