/**
 * What the machine running the kernels can tell and do beyond the Jupyter protocol: their memory, their
 * out-of-memory kills, their memory limits and CPU weights. The client never reaches that machine itself; a
 * host is injected into createKernelGateway, as Enterprise Gateway's process proxies hide where a kernel
 * runs. @codeinterp/kernel-host implements it for kernels on this machine (their cgroups); remoteKernelHost
 * is the honest answer for kernels elsewhere: nothing is known and nothing can be changed.
 */
export interface KernelHost {
  /** Memory in use by all the kernels together and the host's MemAvailable; null when not known. */
  kernelsMemory(): Promise<KernelsMemoryReading | null>;
  /** How often the kernel was killed for going over its memory limit, and that limit; null when not known. */
  memoryKills(kernelId: string): Promise<MemoryKills | null>;
  /**
   * Sets the kernel's memory limit; null when the host cannot (no cgroup of its own, another machine).
   * Throws when it should be able to but the write fails (the kernel is gone).
   */
  setMemoryLimit(kernelId: string, bytes: number): Promise<MemoryLimitChange | null>;
  /** Sets the kernel's CPU weight against the other kernels; false when the host cannot. */
  setCpuPriority(kernelId: string, priority: KernelCpuPriority): Promise<boolean>;
}

/** What all of a server's kernels use together, and what the machine has left. */
export interface KernelsMemoryReading {
  /** Anonymous and active file memory of every kernel (their cgroup's usage less its inactive page cache). */
  usedBytes: number;
  /** The host's MemAvailable: other tenants of the machine count too. */
  hostAvailableBytes: number;
}

export interface MemoryKills {
  oomKills: number;
  limitBytes: number | null;
}

/** Changing a kernel's memory limit: applied, or refused because the kernel already holds more than it. */
export type MemoryLimitChange =
  { applied: true; previousBytes: number | null } | { applied: false; usageBytes: number };

/**
 * A pool kernel starts and preloads at the background weight, so refills take CPU that running executions
 * leave; handed to a message it gets the normal weight.
 */
export type KernelCpuPriority = "normal" | "background";

/** Kernels on a machine this process cannot see (Enterprise Gateway, a remote Jupyter server). */
export const remoteKernelHost: KernelHost = {
  kernelsMemory: () => Promise.resolve(null),
  memoryKills: () => Promise.resolve(null),
  setMemoryLimit: () => Promise.resolve(null),
  setCpuPriority: () => Promise.resolve(false),
};
