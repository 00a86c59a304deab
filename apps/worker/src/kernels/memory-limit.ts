import type { KernelSession } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";

const MiB = 1024 ** 2;

/** Even a fresh kernel holds more memory than the execution asked for: it cannot run under that limit. */
export class MemoryRequestTooSmallError extends Error {
  override name = "MemoryRequestTooSmallError";
}

/** The limit is in force, cannot be set from here, or was refused: the kernel already holds more than it. */
export type MemoryLimitResult = "applied" | "unavailable" | { holdsBytes: number };

/**
 * Gives the kernel, just before the code is sent, the memory limit its execution runs under. A kernel serves
 * one message but many executions, each under its own limit: a raise lasts one execution. A kernel that
 * already holds more than a lower limit is left as it is (the lease replaces it): lowering the limit under
 * what a kernel holds would stop it with an out-of-memory kill at once. Only a worker on the gateway's
 * machine can reach the kernels' cgroups; elsewhere the limit is "unavailable".
 */
export async function setKernelMemoryLimit(
  session: KernelSession,
  bytes: number,
  log: Logger,
): Promise<MemoryLimitResult> {
  const change = await session.setMemoryLimit(bytes).catch((err: unknown) => {
    log.warn({ err: normalizeError(err).message, kernelId: session.id }, "could not set the kernel's memory limit");
    return null;
  });
  if (change === null) return "unavailable";
  if (!change.applied) return { holdsBytes: change.usageBytes };
  if (change.previousBytes !== bytes)
    log.info(
      {
        kernelId: session.id,
        memoryMb: bytes / MiB,
        previousMb: change.previousBytes === null ? null : change.previousBytes / MiB,
      },
      "kernel memory limit set",
    );
  return "applied";
}

export function tooSmallError(holdsBytes: number, bytes: number): MemoryRequestTooSmallError {
  return new MemoryRequestTooSmallError(
    `a new kernel already holds ${Math.ceil(holdsBytes / MiB)} MB, more than the ${bytes / MiB} MB this execution may use`,
  );
}
