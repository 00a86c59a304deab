export { createLogger } from "./logger";
export type { Logger } from "./logger";
export { normalizeError } from "./normalize-error";
export type { NormalizedError } from "./normalize-error";
export { exitOnSignals } from "./shutdown";
