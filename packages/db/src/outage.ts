/**
 * The one answer to "did Postgres or Redis go away?" (refused, reset, timed out, shutting down, pool
 * exhausted), as opposed to a bug or a bad request. The API answers such errors 503 instead of 500; the
 * worker retries the job or the write instead of failing the execution. The error may come from pg, Prisma,
 * its driver adapter or ioredis, and be wrapped by any of them: the codes, messages and wrappers below are
 * the ones each of these layers is seen to use.
 */

// Node socket errors; Prisma's "can't reach", "timed out", "closed", "pool timeout"; Postgres's
// admin/crash/cannot-connect-now shutdowns. SQLSTATE class 08 (connection exception) is matched by prefix.
const DOWN_CODES = new Set([
  "ECONNREFUSED",
  "ETIMEDOUT",
  "ECONNRESET",
  "EPIPE",
  "P1001",
  "P1002",
  "P1017",
  "P2024",
  "57P01",
  "57P02",
  "57P03",
]);
const DOWN_MESSAGE =
  /Connection is closed|Stream isn't writeable|enableOfflineQueue|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Can't reach database|connection terminated|Max retries per request|terminating connection|database system is|the connection is closed|Client has encountered a connection error/i;

export function isOutage(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== "object" || depth > 4) return false;
  const e = err as {
    message?: unknown;
    code?: unknown;
    cause?: unknown;
    meta?: unknown;
    originalCode?: unknown;
    driverAdapterError?: unknown;
  };
  const code = String(e.code ?? e.originalCode ?? "");
  if (DOWN_CODES.has(code) || code.startsWith("08")) return true;
  if (DOWN_MESSAGE.test(String(e.message ?? ""))) return true;
  return isOutage(e.cause, depth + 1) || isOutage(e.meta, depth + 1) || isOutage(e.driverAdapterError, depth + 1);
}
