import { realpath } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { executeWatched, GatewayUnavailableError } from "@codeinterp/kernel";
import type { ExecutionOutcome, KernelEvent } from "@codeinterp/kernel";
import { normalizeError } from "@codeinterp/logger";
import { fromKernelText, toKernelCode } from "@codeinterp/workspace";
import type { KernelLease } from "../../kernels/broker";
import type { ExecutionContext } from "./context";
import { OUTPUT_END_LOST_NOTE, outputsDroppedNote } from "./kernel-outcome";

export interface RunResult {
  outcome: ExecutionOutcome;
  runMs: number;
  /** The kernel's state is unknown or it is gone: it is shut down rather than kept for the message. */
  discard: boolean;
  /** The workspace as the kernel may name it (the path and its real path). */
  realDirs: string[];
  /** Maps kernel-side paths in text back to /mnt/data. */
  back: (s: string) => string;
}

/** Where the workspace really is, looked up early so it overlaps the wait for the cancel check. */
export function resolveWorkspace(ctx: ExecutionContext): Promise<string> {
  const real = realpath(ctx.req.workspaceDir);
  // Awaited later (resolveWorkspace); this only keeps an early rejection handled.
  real.catch(() => undefined);
  return real;
}

/**
 * Runs the code in the kernel with the execution's deadline and cancel, streaming output as it comes. A
 * kernel that vanishes from the gateway during the run, or is shut down under the code, counts as died.
 */
export async function runCode(ctx: ExecutionContext, lease: KernelLease, realDir: string): Promise<RunResult> {
  const { env, layout } = ctx.deps;
  const { exec, pub, log } = ctx;
  const realDirs = [...new Set([ctx.req.workspaceDir, realDir])];
  const back = (s: string) => fromKernelText(s, realDirs);
  const onEvent = (e: KernelEvent) => {
    if (e.type === "stdout" || e.type === "stderr") void pub.publish({ type: e.type, text: back(e.text) });
    else if (e.type === "output" && !e.mimeType.startsWith("image/")) {
      void pub.publish({ type: "output", output: { type: e.mimeType, data: back(e.data) } });
    }
  };
  const tRun = Date.now();
  // Sandboxed kernels see the workspace at the real /mnt/data; a shared server needs the paths translated.
  const code = layout.sandboxed ? exec.code : toKernelCode(exec.code, ctx.req.workspaceDir);
  log.debug({ kernelId: lease.session.id }, "sending the code");
  const { outcome, vanished } = await executeWatched(lease.session, code, {
    timeoutMs: exec.timeoutMs,
    signal: ctx.req.signal,
    onEvent,
    maxStreamBytes: env.MAX_STREAM_BYTES,
    maxOutputs: env.MAX_RICH_OUTPUTS,
    interruptGraceMs: env.KERNEL_INTERRUPT_GRACE_MS,
    exists: () => lease.exists(),
    // The gateway away: the run's own race sees that (liveness monitor, lost connection).
    onLookupError: (err) =>
      log.debug({ err: normalizeError(err).message }, "could not look the kernel up during the run"),
  });
  if (vanished) {
    log.warn("the kernel vanished from the gateway during the run");
    outcome.status = "died";
  }
  const runMs = Date.now() - tRun;
  if (outcome.status === "error" && outcome.error?.ename === "KeyboardInterrupt" && (await shutDownUnderCode(lease))) {
    log.warn("the kernel was shut down under the code");
    outcome.status = "died";
  }
  const discard = outcome.status === "died" || outcome.kernelRestarted;
  if (layout.sandboxed && !discard && (outcome.status === "timeout" || outcome.status === "cancelled")) {
    // Processes the code started (a fork bomb, a background job) outlive the interrupt: kill(-1) in the
    // kernel's own pid namespace reaches exactly them.
    await lease.session
      .execute(
        "import os as _ci_os, signal as _ci_sig\ntry:\n    _ci_os.kill(-1, _ci_sig.SIGKILL)\nexcept ProcessLookupError:\n    pass\ndel _ci_os, _ci_sig",
        { timeoutMs: 5000 },
      )
      // The kernel may be gone or busy; leftover processes die with the kernel when it is discarded.
      .catch(() => undefined);
  }
  if (outcome.outputEndLost) {
    log.warn("the kernel's end of output was lost in a flood of output; the run ended when the output stopped");
    ctx.notes.push(OUTPUT_END_LOST_NOTE);
  }
  const { outputsDropped } = outcome.truncated;
  if (outputsDropped > 0) ctx.notes.push(outputsDroppedNote(outputsDropped, env.MAX_RICH_OUTPUTS));
  log.info({ outcome: outcome.status, runMs, how: lease.how }, "code ran");
  return { outcome, runMs, discard, realDirs, back };
}

/** Lookups over the server's shutdown_wait_time (5 s), the longest a kernel it shuts down stays listed. */
const SHUTDOWN_LOOKUPS = 11;
const SHUTDOWN_LOOKUP_EVERY_MS = 500;

/**
 * A KeyboardInterrupt we did not send: was the kernel being shut down under the code? jupyter_client
 * interrupts a kernel before it asks it to shut down, and the server lists the kernel until it has exited
 * (a second or less for a kernel the interrupt left idle; at most its shutdown_wait_time, 5 s). So the kernel
 * is looked up until then: gone, or the server not answering at all (stopping with it), it was shut down;
 * there throughout, the code raised the KeyboardInterrupt itself and its kernel lives on. Any other failed
 * lookup (an error answer) says nothing, and the next one decides.
 */
async function shutDownUnderCode(lease: KernelLease): Promise<boolean> {
  for (let i = 0; i < SHUTDOWN_LOOKUPS; i++) {
    if (i > 0) await sleep(SHUTDOWN_LOOKUP_EVERY_MS);
    const present = await lease.exists().catch((err: unknown) => !(err instanceof GatewayUnavailableError));
    if (!present) return true;
  }
  return false;
}
