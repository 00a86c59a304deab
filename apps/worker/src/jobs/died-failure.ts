import type { ExecutionOutcome } from "@codeinterp/kernel";

const MiB = 1024 ** 2;

/** Why an execution whose kernel died failed: over its memory cap (the kernel's cgroup says so), or a crash. */
export function diedFailure(outcome: Pick<ExecutionOutcome, "outOfMemory">): { code: string; message: string } {
  if (outcome.outOfMemory) {
    const limit = outcome.outOfMemory.limitBytes === null ? "" : ` of ${Math.round(outcome.outOfMemory.limitBytes / MiB)} MB`;
    return {
      code: "memory_limit",
      message:
        `the code went over the kernel's memory limit${limit} and the kernel was stopped; ` +
        "the message's next execution runs on a new kernel, without the variables of earlier executions",
    };
  }
  return { code: "kernel_died", message: "the kernel died while running the code (crash or os._exit)" };
}
