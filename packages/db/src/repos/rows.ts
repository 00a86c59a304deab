import type { Prisma } from "../generated/client";
import { jsonTs } from "../sql";

// Column lists that return rows in Prisma's shape (camelCase keys), for the prepared statements in sql.ts.
export const EXECUTION_COLUMNS = `id, user_id AS "userId", chat_id AS "chatId", message_id AS "messageId", code,
  code_sha256 AS "codeSha256", status::text AS status, timeout_ms AS "timeoutMs", memory_mb AS "memoryMb", idempotency_key AS "idempotencyKey",
  attempts, worker_id AS "workerId", kernel_id AS "kernelId", created_at AS "createdAt", started_at AS "startedAt",
  finished_at AS "finishedAt", result, failure, metrics`;

/**
 * The files columns in Prisma's shape (camelCase keys) but for `size` (int8 comes back as text), qualified by
 * table alias `t`. As plain columns `fileFromRow` finishes a row; aggregated with json_agg, `fileFromJson`.
 */
export const fileColumns = (t: string) => `${t}.id, ${t}.user_id AS "userId", ${t}.name, ${t}.size::text AS size, ${t}.sha256,
  ${t}.mime_type AS "mimeType", ${t}.storage_key AS "storageKey", ${t}.source::text AS source, ${t}.chat_id AS "chatId",
  ${t}.message_id AS "messageId", ${t}.execution_id AS "executionId", ${t}.path, ${t}.derived_from_id AS "derivedFromId",
  ${t}.created_at AS "createdAt", ${t}.deleted_at AS "deletedAt"`;

export type FileTextRow = Omit<Prisma.FileGetPayload<object>, "size"> & { size: string };

export function fileFromRow(f: FileTextRow): Prisma.FileGetPayload<object> {
  return { ...f, size: BigInt(f.size) };
}

/** The same row inside json_agg: timestamps are text there too. */
type FileJson = Omit<FileTextRow, "createdAt" | "deletedAt"> & { createdAt: string; deletedAt: string | null };

export function fileFromJson(f: FileJson): Prisma.FileGetPayload<object> {
  return { ...f, size: BigInt(f.size), createdAt: jsonTs(f.createdAt) ?? new Date(0), deletedAt: jsonTs(f.deletedAt) };
}
