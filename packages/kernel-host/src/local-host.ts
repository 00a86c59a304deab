import type { KernelHost } from "@codeinterp/kernel";
import { remoteKernelHost } from "@codeinterp/kernel";
import { kernelCpuCgroup, kernelMemoryCgroup, readMemoryKills, setKernelCpuPriority, setMemoryLimit } from "./cgroups";
import type { KernelCgroupParent } from "./cgroups";
import { readKernelsMemory } from "./kernels-memory";

/**
 * Kernels on this machine, each in its own cgroup under `cgroup` (the sandbox launcher's, advertised in the
 * sandbox kernelspec's metadata). Without one (unsandboxed kernels, no cgroups) nothing is known, as for a
 * remote host. A parent this process cannot read (a gateway on another machine that advertised its own
 * paths) reads as not known too; writes to it throw (setMemoryLimit) or report false (setCpuPriority).
 */
export function createLocalKernelHost(opts: { cgroup: KernelCgroupParent | null }): KernelHost {
  const parent = opts.cgroup;
  if (!parent) return remoteKernelHost;
  return {
    kernelsMemory: () => readKernelsMemory(parent).catch(() => null),
    memoryKills: (kernelId) => readMemoryKills(kernelMemoryCgroup(parent, kernelId)),
    setMemoryLimit: (kernelId, bytes) => setMemoryLimit(kernelMemoryCgroup(parent, kernelId), bytes),
    setCpuPriority: (kernelId, priority) => setKernelCpuPriority(kernelCpuCgroup(parent, kernelId), priority),
  };
}
