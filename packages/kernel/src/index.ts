export type { Log, LogFn } from "./log";
export { silentLog } from "./log";
export {
  GatewayUnavailableError,
  InvalidKernelPathError,
  JupyterNotInstalledError,
  JupyterStartError,
  KernelDiedError,
  KernelNotFoundError,
} from "./errors";
export { APT_PACKAGES, JUPYTER_PYTHON, ensureJupyterInstalled, findJupyterPython } from "./jupyter-install";
export type { JupyterRestart, LocalJupyter, StartLocalJupyterOptions } from "./local-server";
export type { GatewayHealth, GatewayMonitor, LivenessOptions, ProbeResult } from "./liveness";
export { defaultLiveness, probeGateway, watchGateway } from "./liveness";
export { startLocalJupyter } from "./local-server";
export { JUPYTER_ZMQ_SAFETY_CONFIG } from "./jupyter-config-zmq";
export type { KernelGateway, KernelGatewayOptions, KernelInfo } from "./gateway";
export { createKernelGateway, normalizeKernelPath } from "./gateway";
export type { KernelSession } from "./session";
export type {
  ExecuteOptions,
  ExecutionOutcome,
  ExecutionStatus,
  KernelError,
  KernelEvent,
  RichOutput,
  Truncation,
} from "./types";
export { stripAnsi } from "./ansi";
export { truncationMarker } from "./stream-cap";
export { selectBundle } from "./outputs";
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
export type {
  KernelCgroupLimits,
  KernelCgroupParent,
  KernelCgroupSetup,
  KernelCpuPriority,
  MemoryLimitChange,
} from "./cgroups";
export { EgressPolicy, EgressRuleError, isPublicAddress, parseEgressAllowlist } from "./egress/allowlist";
export type { EgressDecision, EgressRule } from "./egress/allowlist";
export { egressPassword, startEgressProxy } from "./egress/proxy";
export type { EgressProxy, EgressProxyOptions } from "./egress/proxy";
export { DEFAULT_PRELOAD_MODULES, PYTHON_MODULE_NAME, PreloadConfigError, preloadCode } from "./preload";
export { isAlive } from "./process-tree";
export { readHostAvailableBytes } from "./kernels-memory";
export type { KernelsMemoryReading } from "./kernels-memory";
