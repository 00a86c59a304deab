import type { Db } from "../client";
import { createOrAddUser } from "./users";
import { fileFromPrisma, sessionFromPrisma } from "./rows";
import type { Prisma } from "../generated/client";
import type { FileRow, LibreChatSessionRow } from "../types";

export interface NewLibreChatSession {
  id: string;
  tenant: string;
  userId: string;
  librechatUser: string;
  /** An /exec session: its files are the ones this execution produced. */
  executionId?: string;
  /** An /upload session: the files uploaded in it. */
  fileIds?: string[];
}

export async function createLibreChatSession(db: Db, input: NewLibreChatSession): Promise<LibreChatSessionRow> {
  const { fileIds = [], ...row } = input;
  const session = await createOrAddUser(db, input.userId, () =>
    db.libreChatSession.create({
      data: { ...row, executionId: row.executionId ?? null, files: { create: fileIds.map((fileId) => ({ fileId })) } },
    }),
  );
  return sessionFromPrisma(session);
}

/** Sessions are looked up within the credential's tenant: another tenant's session does not exist. */
export async function findLibreChatSession(db: Db, tenant: string, id: string): Promise<LibreChatSessionRow | null> {
  const session = await db.libreChatSession.findFirst({ where: { id, tenant } });
  return session && sessionFromPrisma(session);
}

/**
 * The live files of a session: an upload session's uploads, or everything an execution wrote (generated
 * files and stored rich outputs such as plots), oldest first.
 */
export async function listLibreChatSessionFiles(db: Db, session: LibreChatSessionRow): Promise<FileRow[]> {
  const where: Prisma.FileWhereInput = session.executionId
    ? { executionId: session.executionId, source: { in: ["generated", "output"] } }
    : { librechatSessions: { some: { sessionId: session.id } } };
  const rows = await db.file.findMany({
    where: { ...where, userId: session.userId, deletedAt: null },
    orderBy: [{ createdAt: "asc" }, { path: "asc" }],
  });
  return rows.map(fileFromPrisma);
}

/** One live file of a session, or null when it is not part of that session. */
export async function findLibreChatSessionFile(
  db: Db,
  session: LibreChatSessionRow,
  fileId: string,
): Promise<FileRow | null> {
  const row = await db.file.findFirst({ where: { id: fileId, userId: session.userId, deletedAt: null } });
  if (!row) return null;
  const file = fileFromPrisma(row);
  if (session.executionId) return file.executionId === session.executionId && file.source !== "upload" ? file : null;
  const link = await db.libreChatSessionFile.findUnique({
    where: { sessionId_fileId: { sessionId: session.id, fileId } },
  });
  return link ? file : null;
}
