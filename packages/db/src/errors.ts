/**
 * Whether a database error (or one it wraps) is this constraint violation: Prisma's code, the raw Postgres
 * SQLSTATE, or the driver adapter's kind, depending on which layer saw it.
 */
function isViolation(err: unknown, codes: readonly string[], kind: string): boolean {
  if (typeof err !== "object" || err === null) return false;
  const e = err as { code?: unknown; cause?: unknown; meta?: { driverAdapterError?: { cause?: { kind?: string } } } };
  if (typeof e.code === "string" && codes.includes(e.code)) return true;
  if (e.meta?.driverAdapterError?.cause?.kind === kind) return true;
  return e.cause !== undefined && e.cause !== err && isViolation(e.cause, codes, kind);
}

/** Prisma's P2002, or a raw Postgres 23505. */
export const isUniqueViolation = (err: unknown): boolean =>
  isViolation(err, ["P2002", "23505"], "UniqueConstraintViolation");

/** Prisma's P2003, or a raw Postgres 23503: a row points at one that does not exist (e.g. a user). */
export const isForeignKeyViolation = (err: unknown): boolean =>
  isViolation(err, ["P2003", "23503"], "ForeignKeyConstraintViolation");
