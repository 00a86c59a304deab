import { z } from "zod";
import { parseEnv } from "./env";

const MiB = 1024 ** 2;

/**
 * Caps on the embedded Jupyter server's sandboxed kernels, enforced by the kernel (cgroups). Read by
 * whatever starts that server (`npm start`, the test and bench harnesses) and passed to startLocalJupyter.
 */
export const kernelLimitsEnvShape = {
  /** Memory of one kernel with everything it starts, in MB; going over it stops the kernel. */
  KERNEL_MEMORY_MB: z.coerce.number().int().min(64).default(2048),
  /** CPU quota of one kernel, in cores. */
  KERNEL_CPUS: z.coerce.number().positive().max(1024).default(1),
  /** Processes and threads of one kernel. */
  KERNEL_MAX_PROCESSES: z.coerce.number().int().min(16).default(256),
  /**
   * Memory of all kernels together, in MB. Unset: @codeinterp/kernel's default, all but max(4 GiB, 25%)
   * of the machine, so Postgres, Redis and the service keep theirs.
   */
  KERNELS_MEMORY_BUDGET_MB: z.coerce.number().int().min(64).optional(),
};

const kernelLimitsSchema = z.object(kernelLimitsEnvShape);

export interface KernelLimits {
  memoryBytes: number;
  cpus: number;
  maxProcesses: number;
  /** Undefined: the kernel package's default. */
  kernelsMemoryBudgetBytes?: number;
}

export function loadKernelLimits(source: Record<string, string | undefined>): KernelLimits {
  const e = parseEnv(kernelLimitsSchema, source);
  return {
    memoryBytes: e.KERNEL_MEMORY_MB * MiB,
    cpus: e.KERNEL_CPUS,
    maxProcesses: e.KERNEL_MAX_PROCESSES,
    ...(e.KERNELS_MEMORY_BUDGET_MB === undefined ? {} : { kernelsMemoryBudgetBytes: e.KERNELS_MEMORY_BUDGET_MB * MiB }),
  };
}
