import { z } from "zod";
import { ConfigError, parseEnv } from "./env";

const MiB = 1024 ** 2;

/**
 * Caps on the embedded Jupyter server's sandboxed kernels, enforced by the kernel (cgroups). Read by
 * whatever starts that server (`npm start`, the test and bench harnesses) and passed to startLocalJupyter.
 */
/**
 * The memory an execution may ask for its kernel (POST /v1/executions `limits.memoryMb`): read by the API,
 * which refuses requests above the maximum, and by whatever starts the Jupyter server (the default cap).
 */
export const executionMemoryEnvShape = {
  /** Memory of one kernel with everything it starts, in MB; going over it stops the kernel. */
  KERNEL_MEMORY_MB: z.coerce.number().int().min(64).default(2048),
  /** The most one execution may ask for its kernel, in MB. Unset: KERNEL_MEMORY_MB (no execution gets more). */
  KERNEL_MEMORY_MAX_MB: z.coerce.number().int().min(64).optional(),
};

/** The least an execution may ask: a fresh kernel with pandas loaded already holds ~100 MB. */
export const MIN_EXECUTION_MEMORY_MB = 256;

export interface ExecutionMemoryBounds {
  /** What an execution that asks nothing gets (MB). */
  defaultMb: number;
  /** The most one may ask (MB), at least defaultMb. */
  maxMb: number;
}

export function executionMemoryBounds(e: {
  KERNEL_MEMORY_MB: number;
  KERNEL_MEMORY_MAX_MB?: number | undefined;
}): ExecutionMemoryBounds {
  const maxMb = e.KERNEL_MEMORY_MAX_MB ?? e.KERNEL_MEMORY_MB;
  if (maxMb < e.KERNEL_MEMORY_MB)
    throw new ConfigError(`KERNEL_MEMORY_MAX_MB (${maxMb}) must be at least KERNEL_MEMORY_MB (${e.KERNEL_MEMORY_MB})`);
  return { defaultMb: e.KERNEL_MEMORY_MB, maxMb };
}

export const kernelLimitsEnvShape = {
  ...executionMemoryEnvShape,
  /** CPU quota of one kernel, in cores. */
  KERNEL_CPUS: z.coerce.number().positive().max(1024).default(1),
  /** Processes and threads of one kernel. */
  KERNEL_MAX_PROCESSES: z.coerce.number().int().min(16).default(256),
  /**
   * Memory of all kernels together, in MB. Unset: @codeinterp/kernel-host's default, all but max(4 GiB, 25%)
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
  executionMemoryBounds(e);
  return {
    memoryBytes: e.KERNEL_MEMORY_MB * MiB,
    cpus: e.KERNEL_CPUS,
    maxProcesses: e.KERNEL_MAX_PROCESSES,
    ...(e.KERNELS_MEMORY_BUDGET_MB === undefined ? {} : { kernelsMemoryBudgetBytes: e.KERNELS_MEMORY_BUDGET_MB * MiB }),
  };
}
