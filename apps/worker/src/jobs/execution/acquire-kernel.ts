import { KernelDiedError } from "@codeinterp/kernel";
import { normalizeError } from "@codeinterp/logger";
import type { KernelLease } from "../../kernels/broker";
import { enterWorkspaceCode } from "../../kernels/enter-workspace";
import type { ExecutionContext } from "./context";
import { STATE_RESET_NOTE } from "./kernel-outcome";

export class KernelSetupError extends Error {
  override name = "KernelSetupError";
}

/**
 * A kernel that can run the message's code: its own (variables kept), or a new one set to start every cell
 * in the workspace. A kernel that turns out dead before any user code ran (deleted, server restarted) is
 * replaced once, so the execution does not fail for it.
 */
export async function acquireKernel(ctx: ExecutionContext): Promise<KernelLease> {
  const { broker, layout } = ctx.deps;
  const kernelDir = layout.kernelDir(ctx.req.workspaceDir);
  for (let attempt = 1; ; attempt++) {
    let lease: KernelLease;
    try {
      lease = await broker.acquire(ctx.turn, ctx.req);
    } catch (err) {
      // A new kernel that died while starting (e.g. a port taken by another process) gets one more try.
      if (attempt >= 2 || !(err instanceof KernelDiedError) || ctx.req.signal.aborted) throw err;
      ctx.log.warn({ err: normalizeError(err).message }, "kernel died while starting; taking another");
      continue;
    }
    try {
      if (lease.stateReset && !ctx.notes.includes(STATE_RESET_NOTE)) ctx.notes.push(STATE_RESET_NOTE);
      if (lease.reused) {
        if (!lease.session.isDead) return lease;
        throw new KernelSetupError("the message's kernel is dead");
      }
      // Once per kernel and message (a sandboxed pool kernel did it while it waited).
      if (lease.enteredDir !== kernelDir) {
        const cd = await lease.session.execute(enterWorkspaceCode(kernelDir), { timeoutMs: 15_000 });
        if (cd.status !== "ok") throw new KernelSetupError(`could not enter the workspace (${cd.status})`);
      } else if (lease.session.isDead) {
        // No setup cell to find it out: a kernel that died waiting is replaced here, before any code is sent.
        throw new KernelSetupError("the pool kernel is dead");
      }
      await broker.bind(ctx.turn, lease);
      return lease;
    } catch (err) {
      // The original error is what the execution reports; a failed release leaves the kernel to the idle sweep.
      await broker.release(ctx.turn, lease, { discard: true }).catch(() => undefined);
      if (attempt >= 2) throw err;
      ctx.log.warn({ err: normalizeError(err).message }, "kernel unusable before the code ran; taking another");
    }
  }
}

/**
 * A reused kernel is looked up on the gateway while the workspace is prepared: one deleted a moment ago
 * (its websocket had not noticed) is replaced before any code is sent.
 */
export async function confirmKernel(ctx: ExecutionContext, lease: KernelLease): Promise<KernelLease> {
  if (!lease.stillThere || (await lease.stillThere)) return lease;
  ctx.log.info("the message's kernel is gone from the gateway; taking another");
  // The kernel is gone already; its mapping is replaced by the next one recorded.
  await ctx.deps.broker.release(ctx.turn, lease, { discard: true }).catch(() => undefined);
  return acquireKernel(ctx);
}
