export { JupyterNotInstalledError, JupyterStartError } from "./errors";
export { createLocalKernelHost } from "./local-host";
export { APT_PACKAGES, JUPYTER_PYTHON, ensureJupyterInstalled, findJupyterPython } from "./jupyter-install";
export type { JupyterRestart, LocalJupyter, StartLocalJupyterOptions } from "./local-server";
export { startLocalJupyter } from "./local-server";
export { freePort } from "./free-port";
export { JUPYTER_ZMQ_SAFETY_CONFIG } from "./jupyter-config-zmq";
export {
  DEFAULT_SANDBOX_LIMITS,
  SANDBOX_KERNEL_NAME,
  SANDBOX_MIN_UID,
  POOL_SLOTS_DIR_NAME,
  defaultKernelsMemoryBudget,
  installSandboxKernelSpec,
  launcherConfig,
  probeSandbox,
} from "./sandbox";
export type { LauncherConfig, SandboxLimits, SandboxSpecMetadata } from "./sandbox";
export {
  KERNEL_CPU_WEIGHTS,
  kernelCpuCgroup,
  kernelMemoryCgroup,
  parseProcCgroup,
  prepareKernelCgroups,
  readKernelCpuWeight,
  readMemoryKills,
  removeKernelCgroups,
  setKernelCpuPriority,
  setMemoryLimit,
} from "./cgroups";
export type { KernelCgroupLimits, KernelCgroupParent, KernelCgroupSetup } from "./cgroups";
export { EgressPolicy, EgressRuleError, isPublicAddress, parseEgressAllowlist } from "./egress/allowlist";
export type { EgressDecision, EgressRule } from "./egress/allowlist";
export { egressPassword, startEgressProxy } from "./egress/proxy";
export type { EgressProxy, EgressProxyOptions } from "./egress/proxy";
export { isAlive } from "./process-tree";
export { readHostAvailableBytes } from "./kernels-memory";
