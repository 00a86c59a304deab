import { previousKernelId } from "@codeinterp/db";
import type { Db } from "@codeinterp/db";
import type { ExecutionOutcome } from "@codeinterp/kernel";

const MiB = 1024 ** 2;

/** Why an execution whose kernel died failed: over its memory cap (the kernel's cgroup says so), or a crash. */
export function diedFailure(outcome: Pick<ExecutionOutcome, "outOfMemory">): { code: string; message: string } {
  if (outcome.outOfMemory) {
    const limit =
      outcome.outOfMemory.limitBytes === null ? "" : ` of ${Math.round(outcome.outOfMemory.limitBytes / MiB)} MB`;
    return {
      code: "memory_limit",
      message:
        `the code went over the kernel's memory limit${limit} and the kernel was stopped; ` +
        "the message's next execution runs on a new kernel, without the variables of earlier executions",
    };
  }
  return { code: "kernel_died", message: "the kernel died while running the code (crash or os._exit)" };
}

/** Why a message's variables are gone when its idle kernel made room under the live-kernel ceiling. */
export const STATE_RESET_NOTE =
  "the message's previous kernel was shut down to make room for other work (live-kernel limit): variables from earlier executions are gone; files in /mnt/data are kept";

/** The same, when the kernel went for another reason (or the ceiling's note was not owed); one note per result. */
export const KERNEL_RESET_NOTE =
  "this message's earlier executions ran on a kernel that is gone (it died, went over its memory limit, or was " +
  "stopped): variables and imports from them were reset; files in /mnt/data are kept";

/**
 * A note for an execution that runs on a new kernel although the message's earlier executions ran on
 * another one. Null for a message's first kernel.
 */
export async function kernelResetNote(
  db: Db,
  exec: { id: string; userId: string; messageId: string; createdAt: Date },
  kernelId: string,
): Promise<string | null> {
  const previous = await previousKernelId(db, exec);
  return previous !== null && previous !== kernelId ? KERNEL_RESET_NOTE : null;
}

/** An execution whose kernel's end-of-output signal was dropped (ExecutionOutcome.outputEndLost). */
export const OUTPUT_END_LOST_NOTE =
  "the code wrote output faster than the kernel's connection carries it: some of it, near the end, may be missing";

/** Outputs over the cap (ExecutionOutcome.truncated.outputsDropped): nothing else in the text shows them gone. */
export function outputsDroppedNote(dropped: number, maxOutputs: number): string {
  const what = dropped === 1 ? "1 more output was" : `${dropped} more outputs were`;
  return `${what} not kept (figures, tables, displayed values): an execution keeps at most ${maxOutputs}, within a total size limit`;
}

/** A `limits.memoryMb` this worker could not put in force (the lease's memory limit was "unavailable"). */
export const MEMORY_REQUEST_NOT_APPLIED_NOTE =
  "limits.memoryMb was not applied: this deployment's kernels have no memory limit this worker can change " +
  "(unsandboxed kernels, or a kernel gateway on another machine); the code ran under the kernel's own limit";
