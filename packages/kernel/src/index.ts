export type { Log, LogFn } from "./log";
export { silentLog } from "./log";
export { GatewayUnavailableError, InvalidKernelPathError, KernelDiedError, KernelNotFoundError } from "./errors";
export type { GatewayHealth, GatewayMonitor, LivenessOptions, ProbeResult } from "./liveness";
export { defaultLiveness, probeGateway, watchGateway } from "./liveness";
export type { KernelGateway, KernelGatewayOptions, KernelInfo } from "./gateway";
export { createKernelGateway, normalizeKernelPath } from "./gateway";
export type { KernelSession } from "./session";
export type { PresenceWatch, WatchedRun, WatchedRunOptions } from "./presence";
export { executeWatched, watchPresence } from "./presence";
export type { KernelCpuPriority, KernelHost, KernelsMemoryReading, MemoryKills, MemoryLimitChange } from "./host";
export { remoteKernelHost } from "./host";
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
export { DEFAULT_PRELOAD_MODULES, PYTHON_MODULE_NAME, PreloadConfigError, preloadCode } from "./preload";
