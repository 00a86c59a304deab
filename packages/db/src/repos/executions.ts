import { createHash } from "node:crypto";
import type { Db } from "../client";
import { isUniqueViolation } from "../errors";
import type { ExecutionStatus } from "../generated/enums";
import type { Prisma } from "../generated/client";

export const TERMINAL_STATUSES = ["completed", "failed", "timed_out", "cancelled"] as const satisfies ExecutionStatus[];
export const ACTIVE_STATUSES = ["queued", "preparing", "running"] as const satisfies ExecutionStatus[];

export function isTerminal(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** Some fileIds do not exist or belong to someone else; both look the same to the caller. */
export class FilesNotFoundError extends Error {
  override name = "FilesNotFoundError";
  constructor(public readonly fileIds: string[]) {
    super(`files not found: ${fileIds.join(", ")}`);
  }
}

export interface NewExecution {
  userId: string;
  chatId: string;
  messageId: string;
  code: string;
  timeoutMs: number;
  idempotencyKey?: string | undefined;
  fileIds?: string[] | undefined;
}

export type ExecutionRow = Prisma.ExecutionGetPayload<object>;

/**
 * Records an execution and joins its files to the message's attachments, atomically. With an
 * idempotency key already used by this user, returns that execution instead (`created: false`).
 */
export async function createExecution(db: Db, input: NewExecution): Promise<{ execution: ExecutionRow; created: boolean }> {
  if (input.idempotencyKey) {
    const prior = await db.execution.findUnique({
      where: { userId_idempotencyKey: { userId: input.userId, idempotencyKey: input.idempotencyKey } },
    });
    if (prior) return { execution: prior, created: false };
  }
  const fileIds = [...new Set(input.fileIds ?? [])];
  try {
    const execution = await db.$transaction(async (tx) => {
      if (fileIds.length > 0) {
        const owned = await tx.file.findMany({
          where: { id: { in: fileIds }, userId: input.userId, deletedAt: null },
          select: { id: true },
        });
        const ownedIds = new Set(owned.map((f) => f.id));
        const missing = fileIds.filter((id) => !ownedIds.has(id));
        if (missing.length > 0) throw new FilesNotFoundError(missing);
        const existing = await tx.messageAttachment.findMany({
          where: { userId: input.userId, messageId: input.messageId },
          select: { fileId: true, position: true },
        });
        const already = new Set(existing.map((a) => a.fileId));
        let position = existing.reduce((max, a) => Math.max(max, a.position), -1);
        const fresh = fileIds.filter((id) => !already.has(id));
        if (fresh.length > 0) {
          await tx.messageAttachment.createMany({
            data: fresh.map((fileId) => ({ userId: input.userId, messageId: input.messageId, fileId, position: ++position })),
            skipDuplicates: true,
          });
        }
      }
      await tx.user.upsert({ where: { id: input.userId }, create: { id: input.userId }, update: {} });
      return tx.execution.create({
        data: {
          userId: input.userId,
          chatId: input.chatId,
          messageId: input.messageId,
          code: input.code,
          codeSha256: createHash("sha256").update(input.code).digest("hex"),
          timeoutMs: input.timeoutMs,
          idempotencyKey: input.idempotencyKey ?? null,
        },
      });
    });
    return { execution, created: true };
  } catch (err) {
    // Two requests with one idempotency key raced: the loser answers with the winner's execution.
    if (input.idempotencyKey && isUniqueViolation(err)) {
      const prior = await db.execution.findUnique({
        where: { userId_idempotencyKey: { userId: input.userId, idempotencyKey: input.idempotencyKey } },
      });
      if (prior) return { execution: prior, created: false };
    }
    throw err;
  }
}

/** Scoped to the owner: someone else's execution is as absent as a missing one. */
export function findExecution(db: Db, userId: string, id: string): Promise<ExecutionRow | null> {
  return db.execution.findFirst({ where: { id, userId } });
}

export type ExecutionWithFiles = ExecutionRow & { files: Prisma.FileGetPayload<object>[] };

/** The execution with the files it generated, in one query (what GET /v1/executions/:id renders). */
export function findExecutionWithFiles(db: Db, userId: string, id: string): Promise<ExecutionWithFiles | null> {
  return db.execution.findFirst({
    where: { id, userId },
    include: { files: { where: { source: "generated", deletedAt: null }, orderBy: [{ path: "asc" }] } },
  });
}

export function getExecutionForWorker(db: Db, id: string): Promise<ExecutionRow | null> {
  return db.execution.findUnique({ where: { id } });
}

/**
 * Moves an execution to `to` only when it is in one of `from`; returns whether it moved. This is what keeps
 * a terminal state final when a retried job, a cancel and a timeout race.
 */
export async function transitionExecution(
  db: Db,
  id: string,
  from: readonly ExecutionStatus[],
  to: ExecutionStatus,
  data: Omit<Prisma.ExecutionUpdateManyMutationInput, "status"> = {},
): Promise<boolean> {
  const res = await db.execution.updateMany({ where: { id, status: { in: [...from] } }, data: { ...data, status: to } });
  return res.count === 1;
}

export function finishExecution(
  db: Db,
  id: string,
  to: (typeof TERMINAL_STATUSES)[number],
  data: { result?: object | null; failure?: object | null; metrics?: object; onlyFrom?: readonly ExecutionStatus[] },
): Promise<boolean> {
  // Plain JSON-serialisable objects; Prisma's JSON input type is stricter than what callers build.
  const json = (v: object) => v as Prisma.InputJsonValue;
  return transitionExecution(db, id, data.onlyFrom ?? ACTIVE_STATUSES, to, {
    finishedAt: new Date(),
    ...(data.result ? { result: json(data.result) } : {}),
    ...(data.failure ? { failure: json(data.failure) } : {}),
    ...(data.metrics ? { metrics: json(data.metrics) } : {}),
  });
}

export function countExecutionsByStatus(db: Db): Promise<Array<{ status: ExecutionStatus; count: number }>> {
  return db.execution
    .groupBy({ by: ["status"], _count: { _all: true } })
    .then((rows) => rows.map((r) => ({ status: r.status, count: r._count._all })));
}
