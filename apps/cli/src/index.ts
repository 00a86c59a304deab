export { runCli, USAGE } from "./cli";
export type { CliIo } from "./cli";
export { resolveInside, UnsafePathError } from "./save";
export { loadCliEnv } from "./env";
