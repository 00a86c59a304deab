import type { Db } from "../client";
import { blobBarrierSql, removalsWaitedInStatement } from "./blob-locks";
import { createOrAddUser } from "./users";
import { query, ts } from "../sql";
import { fileColumns, fileFromPrisma, fileFromRow } from "./rows";
import type { FileTextRow } from "./rows";
import type { FileRow, FileSource } from "../types";

/** A file row to insert: the row's own fields, with the links to where it came from optional. */
export type NewFile = Pick<FileRow, "userId" | "name" | "size" | "sha256" | "mimeType" | "storageKey" | "source"> &
  Partial<Pick<FileRow, "chatId" | "messageId" | "executionId" | "path" | "derivedFromId">>;

export async function createFile(db: Db, input: NewFile): Promise<FileRow> {
  return fileFromPrisma(
    await createOrAddUser(db, input.userId, () => db.file.create({ data: { ...input, size: BigInt(input.size) } })),
  );
}

/**
 * Registers many files of one execution at once (one INSERT, duplicates skipped by the (execution, path)
 * constraint), then returns the rows for those paths: the ones created now or by an earlier attempt. When
 * `removalsWaitedInStatement` holds for their storage keys, the same statement waits out removals of those
 * blobs under way (blob-locks.ts), and the writer's commit need not.
 */
export async function registerExecutionFiles(
  db: Db,
  executionId: string,
  inputs: Array<NewFile & { path: string }>,
): Promise<FileRow[]> {
  if (inputs.length === 0) return [];
  // One statement for the whole batch (column arrays through unnest; 1,000 files in tens of ms) that also
  // returns the rows: those it inserted, and those a retried capture registered before (its snapshot still
  // shows them; a row only a concurrent registration of the same path committed meanwhile is not returned,
  // and is not inserted twice).
  const col = <K extends keyof NewFile>(k: K) => inputs.map((f) => f[k] ?? null);
  const waits = removalsWaitedInStatement(inputs.map((f) => f.storageKey));
  const rows = await query<FileTextRow>(
    db,
    waits ? "files_register_batch_returning_waited" : "files_register_batch_returning",
    `WITH ins AS (
       INSERT INTO files (id, user_id, name, size, sha256, mime_type, storage_key, source, chat_id, message_id, execution_id, path, derived_from_id, created_at)
       SELECT gen_random_uuid(), u.user_id, u.name, u.size, u.sha256, u.mime_type, u.storage_key, u.source::file_source, u.chat_id, u.message_id,
              $1::uuid, u.path, u.derived_from_id, $2
       FROM unnest($3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::uuid[])
         AS u(user_id, name, size, sha256, mime_type, storage_key, source, chat_id, message_id, path, derived_from_id)
       ${waits ? `WHERE ${blobBarrierSql("$8::text[]")} >= 0` : ""}
       ON CONFLICT (execution_id, path) DO NOTHING
       RETURNING ${fileColumns("files")}
     )
     SELECT * FROM ins
     UNION ALL
     SELECT ${fileColumns("f")} FROM files f
      WHERE f.execution_id = $1 AND f.path = ANY($12::text[]) AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.path = f.path)
     ORDER BY path`,
    [
      executionId,
      ts(new Date()),
      col("userId"),
      col("name"),
      inputs.map((f) => String(f.size)),
      col("sha256"),
      col("mimeType"),
      col("storageKey"),
      col("source"),
      col("chatId"),
      col("messageId"),
      inputs.map((f) => f.path),
      col("derivedFromId"),
    ],
  );
  return rows.map(fileFromRow);
}

export async function findFile(db: Db, userId: string, id: string): Promise<FileRow | null> {
  const row = await db.file.findFirst({ where: { id, userId, deletedAt: null } });
  return row && fileFromPrisma(row);
}

/** The user's live uploads with this content (and name, when given), newest first: lets clients upload once. */
export async function findUploadsByContent(db: Db, userId: string, sha256: string, name?: string): Promise<FileRow[]> {
  const rows = await db.file.findMany({
    where: { userId, sha256, source: "upload", deletedAt: null, ...(name !== undefined ? { name } : {}) },
    orderBy: [{ createdAt: "desc" }],
    take: 20,
  });
  return rows.map(fileFromPrisma);
}

/** A live file by id whoever owns it: only for callers that proved access another way (a signed link). */
export async function findLiveFileById(db: Db, id: string): Promise<FileRow | null> {
  const row = await db.file.findFirst({ where: { id, deletedAt: null } });
  return row && fileFromPrisma(row);
}

export async function deleteFile(db: Db, userId: string, id: string): Promise<FileRow | null> {
  const file = await findFile(db, userId, id);
  if (!file) return null;
  await db.file.update({ where: { id }, data: { deletedAt: new Date() } });
  return file;
}

/** Generated files of a message: one entry per path, the newest version wins. */
export async function listMessageFiles(db: Db, userId: string, messageId: string): Promise<FileRow[]> {
  const rows = await db.file.findMany({
    where: { userId, messageId, source: "generated", deletedAt: null },
    orderBy: [{ createdAt: "desc" }],
  });
  return latestPerPath(rows.map(fileFromPrisma));
}

export async function listChatFiles(db: Db, userId: string, chatId: string): Promise<Map<string, FileRow[]>> {
  const rows = await db.file.findMany({
    where: { userId, chatId, source: "generated", deletedAt: null },
    orderBy: [{ createdAt: "desc" }],
  });
  const byMessage = new Map<string, FileRow[]>();
  for (const row of rows.map(fileFromPrisma)) {
    const key = row.messageId ?? "";
    byMessage.set(key, [...(byMessage.get(key) ?? []), row]);
  }
  for (const [k, v] of byMessage) byMessage.set(k, latestPerPath(v));
  return byMessage;
}

function latestPerPath(rowsNewestFirst: FileRow[]): FileRow[] {
  const seen = new Set<string>();
  const out: FileRow[] = [];
  for (const row of rowsNewestFirst) {
    const key = row.path ?? row.id;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(row);
  }
  return out.sort((a, b) => (a.path ?? "").localeCompare(b.path ?? ""));
}

/**
 * The message's attachments in the order they joined it, deleted files included (check `deletedAt`): names
 * in /mnt/data are assigned over all of them, so deleting one never renames the others.
 */
export async function listMessageAttachments(db: Db, userId: string, messageId: string): Promise<FileRow[]> {
  // Every execution asks this (usually of a message with no attachments): one prepared statement.
  const rows = await query<FileTextRow>(
    db,
    "message_attachments",
    `SELECT ${fileColumns("f")} FROM message_attachments a JOIN files f ON f.id = a.file_id
     WHERE a.user_id = $1 AND a.message_id = $2
     -- Two requests attaching at once can take the same position: the tie-break keeps names stable.
     ORDER BY a.position, a.created_at, a.file_id`,
    [userId, messageId],
  );
  return rows.map(fileFromRow);
}

/** Stored bytes and file count per source (live and deleted rows alike), for the metrics endpoint. */
export async function fileTotalsBySource(db: Db): Promise<Array<{ source: FileSource; bytes: number; count: number }>> {
  const rows = await db.file.groupBy({ by: ["source"], _sum: { size: true }, _count: { _all: true } });
  return rows.map((r) => ({ source: r.source, bytes: Number(r._sum.size ?? 0), count: r._count._all }));
}
