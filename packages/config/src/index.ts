export { sharedEnvShape, parseEnv, ConfigError, booleanFromEnv } from "./env";
export type { SharedEnv } from "./env";
export { defaultDataDir, repoRoot } from "./paths";
export { kernelLimitsEnvShape, loadKernelLimits } from "./kernel-limits";
export type { KernelLimits } from "./kernel-limits";
