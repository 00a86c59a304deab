import type { Prisma } from "../generated/client";
import { jsonTs } from "../sql";
import type { ExecutionRow, FileRow, LibreChatSessionRow } from "../types";

// Column lists that return rows in the shape of types.ts (camelCase keys), for the prepared statements in sql.ts.
export const EXECUTION_COLUMNS = `id, user_id AS "userId", chat_id AS "chatId", message_id AS "messageId", code,
  code_sha256 AS "codeSha256", status::text AS status, timeout_ms AS "timeoutMs", memory_mb AS "memoryMb", idempotency_key AS "idempotencyKey",
  attempts, worker_id AS "workerId", kernel_id AS "kernelId", created_at AS "createdAt", started_at AS "startedAt",
  finished_at AS "finishedAt", result, failure, metrics`;

/**
 * The files columns in the shape of types.ts but for `size` (int8 comes back as text), qualified by table
 * alias `t`. As plain columns `fileFromRow` finishes a row; aggregated with json_agg, `fileFromJson`.
 */
export const fileColumns = (
  t: string,
) => `${t}.id, ${t}.user_id AS "userId", ${t}.name, ${t}.size::text AS size, ${t}.sha256,
  ${t}.mime_type AS "mimeType", ${t}.storage_key AS "storageKey", ${t}.source::text AS source, ${t}.chat_id AS "chatId",
  ${t}.message_id AS "messageId", ${t}.execution_id AS "executionId", ${t}.path, ${t}.derived_from_id AS "derivedFromId",
  ${t}.created_at AS "createdAt", ${t}.deleted_at AS "deletedAt"`;

export type FileTextRow = Omit<FileRow, "size"> & { size: string };

export function fileFromRow(f: FileTextRow): FileRow {
  return { ...f, size: Number(f.size) };
}

/** The same row inside json_agg: timestamps are text there too. */
type FileJson = Omit<FileTextRow, "createdAt" | "deletedAt"> & { createdAt: string; deletedAt: string | null };

export function fileFromJson(f: FileJson): FileRow {
  return { ...f, size: Number(f.size), createdAt: jsonTs(f.createdAt) ?? new Date(0), deletedAt: jsonTs(f.deletedAt) };
}

// Prisma's rows become the plain ones here, so no bigint or Prisma type leaves the package.
export function fileFromPrisma(f: Prisma.FileGetPayload<object>): FileRow {
  return { ...f, size: Number(f.size) };
}

export const executionFromPrisma = (e: Prisma.ExecutionGetPayload<object>): ExecutionRow => e;

export const sessionFromPrisma = (s: Prisma.LibreChatSessionGetPayload<object>): LibreChatSessionRow => s;

// A column added to the schema but not to types.ts (or the reverse) fails the type check here.
type SameKeys<A, B> = [keyof A] extends [keyof B] ? ([keyof B] extends [keyof A] ? true : false) : false;
type Assert<T extends true> = T;
type _ColumnsMatch = [
  Assert<SameKeys<ExecutionRow, Prisma.ExecutionGetPayload<object>>>,
  Assert<SameKeys<FileRow, Prisma.FileGetPayload<object>>>,
  Assert<SameKeys<LibreChatSessionRow, Prisma.LibreChatSessionGetPayload<object>>>,
];
