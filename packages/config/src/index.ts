export { sharedEnvShape, parseEnv, ConfigError, booleanFromEnv, GATEWAY_ENV_KEYS, apiProcessEnv } from "./env";
export type { SharedEnv } from "./env";
export { defaultDataDir, repoRoot } from "./paths";
export {
  executionMemoryBounds,
  executionMemoryEnvShape,
  kernelLimitsEnvShape,
  loadKernelLimits,
  MIN_EXECUTION_MEMORY_MB,
} from "./kernel-limits";
export type { ExecutionMemoryBounds, KernelLimits } from "./kernel-limits";
export { kernelEgressEnvShape, loadKernelEgress } from "./kernel-egress";
export { workspaceDiskEnvShape } from "./workspace-disk";
export { blobStoreEnvShape, loadBlobStore } from "./blob-store";
export type { BlobStoreConfig } from "./blob-store";
