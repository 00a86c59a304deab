import type { Db } from "../client";
import { isUniqueViolation } from "../errors";
import type { FileSource } from "../generated/enums";
import type { Prisma } from "../generated/client";

export type FileRow = Prisma.FileGetPayload<object>;

export interface NewFile {
  userId: string;
  name: string;
  size: number;
  sha256: string;
  mimeType: string;
  storageKey: string;
  source: FileSource;
  chatId?: string | null;
  messageId?: string | null;
  executionId?: string | null;
  path?: string | null;
  derivedFromId?: string | null;
}

export async function createFile(db: Db, input: NewFile): Promise<FileRow> {
  await db.user.upsert({ where: { id: input.userId }, create: { id: input.userId }, update: {} });
  return db.file.create({ data: { ...input, size: BigInt(input.size) } });
}

/**
 * Registers a file an execution produced. (executionId, path) is unique in the database, so a retried job
 * gets the row registered the first time instead of a second one.
 */
export async function registerExecutionFile(
  db: Db,
  input: NewFile & { executionId: string; path: string },
): Promise<{ file: FileRow; created: boolean }> {
  try {
    return { file: await db.file.create({ data: { ...input, size: BigInt(input.size) } }), created: true };
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
    const file = await db.file.findUnique({ where: { executionId_path: { executionId: input.executionId, path: input.path } } });
    if (!file) throw err;
    return { file, created: false };
  }
}

/**
 * Registers many files of one execution at once (one INSERT, duplicates skipped by the (execution, path)
 * constraint), then returns the rows for those paths: the ones created now or by an earlier attempt.
 */
export async function registerExecutionFiles(db: Db, executionId: string, inputs: Array<NewFile & { path: string }>): Promise<FileRow[]> {
  if (inputs.length === 0) return [];
  await db.file.createMany({
    data: inputs.map((f) => ({ ...f, executionId, size: BigInt(f.size) })),
    skipDuplicates: true,
  });
  return db.file.findMany({ where: { executionId, path: { in: inputs.map((f) => f.path) } }, orderBy: [{ path: "asc" }] });
}

export function findFile(db: Db, userId: string, id: string): Promise<FileRow | null> {
  return db.file.findFirst({ where: { id, userId, deletedAt: null } });
}

export async function deleteFile(db: Db, userId: string, id: string): Promise<FileRow | null> {
  const file = await findFile(db, userId, id);
  if (!file) return null;
  await db.file.update({ where: { id }, data: { deletedAt: new Date() } });
  return file;
}

/** Whether any live file still points at a blob, so the blob may be removed when none does. */
export async function blobInUse(db: Db, storageKey: string): Promise<boolean> {
  return (await db.file.count({ where: { storageKey, deletedAt: null } })) > 0;
}

export function listExecutionFiles(db: Db, executionId: string, source: FileSource = "generated"): Promise<FileRow[]> {
  return db.file.findMany({ where: { executionId, source, deletedAt: null }, orderBy: [{ path: "asc" }] });
}

/** Generated files of a message: one entry per path, the newest version wins. */
export async function listMessageFiles(db: Db, userId: string, messageId: string): Promise<FileRow[]> {
  const rows = await db.file.findMany({
    where: { userId, messageId, source: "generated", deletedAt: null },
    orderBy: [{ createdAt: "desc" }],
  });
  return latestPerPath(rows);
}

export async function listChatFiles(db: Db, userId: string, chatId: string): Promise<Map<string, FileRow[]>> {
  const rows = await db.file.findMany({
    where: { userId, chatId, source: "generated", deletedAt: null },
    orderBy: [{ createdAt: "desc" }],
  });
  const byMessage = new Map<string, FileRow[]>();
  for (const row of rows) {
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
  const rows = await db.messageAttachment.findMany({
    where: { userId, messageId },
    // Two requests attaching at once can take the same position: the tie-break keeps names stable.
    orderBy: [{ position: "asc" }, { createdAt: "asc" }, { fileId: "asc" }],
    include: { file: true },
  });
  return rows.map((r) => r.file);
}
