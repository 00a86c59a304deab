export { createDb, closeDb } from "./client";
export type { Db } from "./client";
export { migrate, ensureDatabase } from "./migrate";
export type { MigrateResult } from "./migrate";
export {
  createApiKey,
  findApiKeyHolder,
  findUserByApiKey,
  hashApiKey,
  listApiKeys,
  revokeApiKey,
} from "./repos/api-keys";
export type { ApiKeyHolder, ApiKeyKind, ApiKeyRow } from "./repos/api-keys";
export * from "./repos/executions";
export * from "./repos/files";
export * from "./types";
export { isUniqueViolation } from "./errors";
export { isOutage } from "./outage";
export { pingDatabase } from "./repos/health";
export { keepBlobs, removalsWaitedInStatement, removeBlobIfUnused } from "./repos/blob-locks";
export * from "./repos/librechat";
