import { createHash, randomUUID } from "node:crypto";
import type { Db } from "../client";
import { isUniqueViolation } from "../errors";
import { createOrAddUser } from "./users";
import { jsonbText, query, ts } from "../sql";
import { EXECUTION_COLUMNS, executionFromPrisma, fileColumns, fileFromJson } from "./rows";
import type { Prisma } from "../generated/client";
import type { ExecutionRow, ExecutionStatus, ExecutionWithFiles, FileRow } from "../types";

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

/**
 * The message id was first used by this user under another chat. A message's kernel, workspace and
 * attachments are keyed by (user, message), so a message id belongs to one chat for good.
 */
export class MessageInOtherChatError extends Error {
  override name = "MessageInOtherChatError";
  constructor(public readonly messageId: string) {
    super("this message id is already used in another chat");
  }
}

export interface NewExecution {
  userId: string;
  chatId: string;
  messageId: string;
  code: string;
  timeoutMs: number;
  /** Memory for the kernel while this execution runs (MB); unset: the deployment default. */
  memoryMb?: number | undefined;
  idempotencyKey?: string | undefined;
  fileIds?: string[] | undefined;
  /** Its id, chosen by the caller (who then can listen for its events while it is recorded); unset: a new UUID. */
  id?: string | undefined;
}

/**
 * Records an execution and joins its files to the message's attachments, atomically. With an
 * idempotency key already used by this user, returns that execution instead (`created: false`).
 * The first execution of a message claims it for its chat; a later one under another chat throws
 * {@link MessageInOtherChatError} and records nothing.
 */
export async function createExecution(
  db: Db,
  input: NewExecution,
): Promise<{ execution: ExecutionRow; created: boolean }> {
  if (input.idempotencyKey) {
    const prior = await findByIdempotencyKey(db, input.userId, input.idempotencyKey);
    if (prior) return { execution: prior, created: false };
  }
  const fileIds = [...new Set(input.fileIds ?? [])];
  const data = {
    id: input.id ?? randomUUID(),
    userId: input.userId,
    chatId: input.chatId,
    messageId: input.messageId,
    code: input.code,
    codeSha256: createHash("sha256").update(input.code).digest("hex"),
    timeoutMs: input.timeoutMs,
    memoryMb: input.memoryMb ?? null,
    idempotencyKey: input.idempotencyKey ?? null,
  };
  try {
    // Without files, one statement (no transaction): this is every warm-path submit. The user row exists
    // whenever an API key does; a caller with a brand-new user id gets it created on the one retry below.
    const execution =
      fileIds.length === 0
        ? await createOrAddUser(db, input.userId, () => insertExecution(db, data))
        : await createOrAddUser(db, input.userId, () =>
            db.$transaction(async (tx) => {
              await claimMessage(tx, input.userId, input.chatId, input.messageId);
              await attachFiles(tx, input.userId, input.messageId, fileIds);
              return executionFromPrisma(await tx.execution.create({ data }));
            }),
          );
    if (!execution) {
      // Nothing inserted: the message belongs to another chat, or a racing first claim of this chat was
      // not yet visible to the statement. Told apart by reading the claim again.
      const owner = await db.messageChat.findUnique({
        where: { userId_messageId: { userId: input.userId, messageId: input.messageId } },
        select: { chatId: true },
      });
      if (owner?.chatId !== input.chatId) throw new MessageInOtherChatError(input.messageId);
      return createExecution(db, input);
    }
    return { execution, created: true };
  } catch (err) {
    // Two requests with one idempotency key raced: the loser answers with the winner's execution.
    if (input.idempotencyKey && isUniqueViolation(err)) {
      const prior = await findByIdempotencyKey(db, input.userId, input.idempotencyKey);
      if (prior) return { execution: prior, created: false };
    }
    throw err;
  }
}

/** The message's chat: claimed now when the message is new; refused when it is another one. */
async function claimMessage(
  tx: Prisma.TransactionClient,
  userId: string,
  chatId: string,
  messageId: string,
): Promise<void> {
  await tx.messageChat.createMany({ data: [{ userId, messageId, chatId }], skipDuplicates: true });
  const owner = await tx.messageChat.findUnique({
    where: { userId_messageId: { userId, messageId } },
    select: { chatId: true },
  });
  if (owner?.chatId !== chatId) throw new MessageInOtherChatError(messageId);
}

/**
 * One statement claims the message for its chat (when new) and inserts the execution only when the
 * message is this chat's; null when it inserted nothing.
 */
function insertExecution(
  db: Db,
  d: Omit<Prisma.ExecutionUncheckedCreateInput, "idempotencyKey" | "memoryMb"> & {
    id: string;
    idempotencyKey: string | null;
    memoryMb: number | null;
  },
): Promise<ExecutionRow | null> {
  return one(
    query<ExecutionRow>(
      db,
      "execution_insert_claiming",
      `WITH claim AS (
         INSERT INTO message_chats (user_id, message_id, chat_id, created_at) VALUES ($2, $4, $3, $10::timestamp)
         ON CONFLICT (user_id, message_id) DO NOTHING RETURNING chat_id
       ), owner AS (
         SELECT chat_id FROM claim
         UNION ALL
         SELECT chat_id FROM message_chats WHERE user_id = $2 AND message_id = $4
       )
       INSERT INTO executions (id, user_id, chat_id, message_id, code, code_sha256, status, timeout_ms, memory_mb, idempotency_key, attempts, created_at)
       SELECT $1::uuid, $2, $3, $4, $5, $6, 'queued', $7::int, $8::int, $9, 0, $10::timestamp
       WHERE EXISTS (SELECT 1 FROM owner WHERE chat_id = $3)
       RETURNING ${EXECUTION_COLUMNS}`,
      [
        d.id,
        d.userId,
        d.chatId,
        d.messageId,
        d.code,
        d.codeSha256,
        d.timeoutMs,
        d.memoryMb,
        d.idempotencyKey,
        ts(new Date()),
      ],
    ),
  );
}

function findByIdempotencyKey(db: Db, userId: string, key: string): Promise<ExecutionRow | null> {
  return one(
    query<ExecutionRow>(
      db,
      "execution_by_idempotency_key",
      `SELECT ${EXECUTION_COLUMNS} FROM executions WHERE user_id = $1 AND idempotency_key = $2`,
      [userId, key],
    ),
  );
}

/** Scoped to the owner: someone else's execution is as absent as a missing one. */
export function findExecution(db: Db, userId: string, id: string): Promise<ExecutionRow | null> {
  return one(
    query<ExecutionRow>(
      db,
      "execution_by_owner",
      `SELECT ${EXECUTION_COLUMNS} FROM executions WHERE id = $1 AND user_id = $2`,
      [id, userId],
    ),
  );
}

/** The owner's latest execution of a message; null when this user never ran anything there. */
export function latestMessageExecution(db: Db, userId: string, messageId: string): Promise<ExecutionRow | null> {
  return one(
    query<ExecutionRow>(
      db,
      "execution_latest_of_message",
      `SELECT ${EXECUTION_COLUMNS} FROM executions WHERE user_id = $1 AND message_id = $2
       ORDER BY created_at DESC LIMIT 1`,
      [userId, messageId],
    ),
  );
}

/** The files execution `e` generated, as one json column (`fileFromJson` finishes each). */
const GENERATED_FILES_JSON = `COALESCE((SELECT json_agg(x ORDER BY x.path) FROM (SELECT ${fileColumns("f")} FROM files f
  WHERE f.execution_id = e.id AND f.source = 'generated' AND f.deleted_at IS NULL) x), '[]'::json) AS files`;

/** The execution with the files it generated, in one statement (what GET /v1/executions/:id renders). */
export async function findExecutionWithFiles(db: Db, userId: string, id: string): Promise<ExecutionWithFiles | null> {
  const row = await one(
    query<ExecutionRow & { files: Parameters<typeof fileFromJson>[0][] }>(
      db,
      "execution_with_files",
      `SELECT ${EXECUTION_COLUMNS}, ${GENERATED_FILES_JSON} FROM executions e WHERE e.id = $1 AND e.user_id = $2`,
      [id, userId],
    ),
  );
  return row ? { ...row, files: row.files.map(fileFromJson) } : null;
}

export function getExecutionForWorker(db: Db, id: string): Promise<ExecutionRow | null> {
  return one(
    query<ExecutionRow>(db, "execution_by_id", `SELECT ${EXECUTION_COLUMNS} FROM executions WHERE id = $1`, [id]),
  );
}

/** A queued execution as a worker reads it before taking it, with its message's attachments. */
export interface ExecutionToRun {
  execution: ExecutionRow;
  /** What listMessageAttachments reads (committed before the execution was queued), in its order. */
  attachments: FileRow[];
}

type ExecutionToRunRow = ExecutionRow & {
  attachments: Array<Parameters<typeof fileFromJson>[0] & { position: number; linked_at: string }>;
};

/** The message's attachments of the execution row `c`, as one JSON column in listMessageAttachments' order. */
const ATTACHMENTS_OF_C = `COALESCE((SELECT json_agg(x ORDER BY x.position, x.linked_at, x.id) FROM (
    SELECT ${fileColumns("f")}, a.position, a.created_at AS linked_at
    FROM message_attachments a JOIN files f ON f.id = a.file_id
    WHERE a.user_id = c."userId" AND a.message_id = c."messageId") x), '[]'::json) AS attachments`;

function toRun(row: ExecutionToRunRow | null): ExecutionToRun | null {
  if (!row) return null;
  const { attachments, ...execution } = row;
  return {
    execution,
    attachments: attachments.map(({ position: _p, linked_at: _l, ...f }) => fileFromJson(f)),
  };
}

/**
 * The execution and its message's attachments, read without taking it: a worker asks while it takes the
 * message's turn, and a warm execution then goes from `queued` to `running` in one statement
 * (startQueuedExecution). Null for a missing id.
 */
export async function readExecutionToRun(db: Db, id: string): Promise<ExecutionToRun | null> {
  return toRun(
    await one(
      query<ExecutionToRunRow>(
        db,
        "execution_to_run",
        `SELECT c.*, ${ATTACHMENTS_OF_C} FROM (SELECT ${EXECUTION_COLUMNS} FROM executions WHERE id = $1) c`,
        [id],
      ),
    ),
  );
}

/**
 * A worker takes a queued execution: it becomes `preparing`, counted as an attempt, in one
 * UPDATE ... RETURNING, which also returns the message's attachments (as readExecutionToRun), so the
 * worker's preparation needs no second statement. Null when it was not queued (a retry, a cancel, a
 * missing id): the caller then reads it to find out which.
 */
export async function claimQueuedExecution(db: Db, id: string, workerId: string): Promise<ExecutionToRun | null> {
  return toRun(
    await one(
      query<ExecutionToRunRow>(
        db,
        "execution_claim_with_attachments",
        `WITH c AS (
           UPDATE executions SET status = 'preparing', attempts = attempts + 1, started_at = COALESCE(started_at, $2), worker_id = $3
           WHERE id = $1 AND status = 'queued' RETURNING ${EXECUTION_COLUMNS}
         )
         SELECT c.*, ${ATTACHMENTS_OF_C} FROM c`,
        [id, ts(new Date()), workerId],
      ),
    ),
  );
}

/**
 * `queued` → `running` on that kernel, counted as an attempt, just before the code is sent: a warm
 * execution (its message's kernel is alive) skips `preparing`, which nobody could see for the millisecond it
 * would last. False when it was not queued (cancelled meanwhile): the code is not sent.
 */
export async function startQueuedExecution(
  db: Db,
  id: string,
  take: { kernelId: string; workerId: string; startedAt: Date },
): Promise<boolean> {
  const rows = await query(
    db,
    "execution_start_queued",
    `UPDATE executions SET status = 'running', kernel_id = $2, attempts = attempts + 1, started_at = COALESCE(started_at, $3), worker_id = $4
     WHERE id = $1 AND status = 'queued' RETURNING id`,
    [id, take.kernelId, ts(take.startedAt), take.workerId],
  );
  return rows.length === 1;
}

/**
 * A warm attempt that stops before its code is sent and will be retried: counted as an attempt, its start kept
 * (the first attempt's start is the execution's). The execution stays queued.
 */
export async function noteQueuedAttempt(
  db: Db,
  id: string,
  take: { workerId: string; startedAt: Date },
): Promise<boolean> {
  const rows = await query(
    db,
    "execution_queued_attempt",
    `UPDATE executions SET attempts = attempts + 1, started_at = COALESCE(started_at, $2), worker_id = $3
     WHERE id = $1 AND status = 'queued' RETURNING id`,
    [id, ts(take.startedAt), take.workerId],
  );
  return rows.length === 1;
}

/** `preparing` → `running` on that kernel, just before the code is sent; false when it was not preparing. */
export async function markExecutionRunning(db: Db, id: string, kernelId: string): Promise<boolean> {
  const rows = await query(
    db,
    "execution_running",
    `UPDATE executions SET status = 'running', kernel_id = $2 WHERE id = $1 AND status = 'preparing' RETURNING id`,
    [id, kernelId],
  );
  return rows.length === 1;
}

/**
 * The kernel the message's latest earlier execution ran on (null: none ran yet). When it is not the kernel
 * an execution runs on now, that kernel was replaced and the variables of earlier executions are gone.
 */
export async function previousKernelId(
  db: Db,
  exec: { id: string; userId: string; messageId: string; createdAt: Date },
): Promise<string | null> {
  const rows = await query<{ kernelId: string }>(
    db,
    "execution_previous_kernel",
    `SELECT kernel_id AS "kernelId" FROM executions
     WHERE user_id = $1 AND message_id = $2 AND created_at <= $3 AND id <> $4 AND kernel_id IS NOT NULL
     ORDER BY created_at DESC LIMIT 1`,
    [exec.userId, exec.messageId, ts(exec.createdAt), exec.id],
  );
  return rows[0]?.kernelId ?? null;
}

/**
 * A retried job takes back an execution that never reached the kernel (still queued or preparing): it becomes
 * `preparing` again, counted as another attempt. False when it had moved on (a cancel, a timeout, a finish):
 * this is what keeps a terminal state final when a retried job, a cancel and a timeout race.
 */
export async function retakeExecution(
  db: Db,
  id: string,
  take: { workerId: string; startedAt: Date },
): Promise<boolean> {
  const res = await db.execution.updateMany({
    where: { id, status: { in: ["queued", "preparing"] } },
    data: { status: "preparing", attempts: { increment: 1 }, startedAt: take.startedAt, workerId: take.workerId },
  });
  return res.count === 1;
}

export async function finishExecution(
  db: Db,
  id: string,
  to: (typeof TERMINAL_STATUSES)[number],
  data: {
    result?: object | null;
    failure?: object | null;
    metrics?: object;
    onlyFrom?: readonly ExecutionStatus[];
    /** Also return the ended execution with its files (what findExecutionWithFiles reads), from the same statement. */
    returnExecution?: boolean;
  },
): Promise<{ moved: false } | { moved: true; execution: ExecutionWithFiles | null }> {
  // A field not given keeps its value (a cancel records no metrics, say).
  const json = (v: object | null | undefined) => (v ? jsonbText(v) : null);
  const params = [
    id,
    to,
    ts(new Date()),
    json(data.result),
    json(data.failure),
    json(data.metrics),
    [...(data.onlyFrom ?? ACTIVE_STATUSES)],
  ];
  const update = `UPDATE executions e SET status = $2::text::execution_status, finished_at = $3,
       result = COALESCE($4::jsonb, result), failure = COALESCE($5::jsonb, failure), metrics = COALESCE($6::jsonb, metrics)
     WHERE id = $1 AND status::text = ANY($7::text[])`;
  if (!data.returnExecution) {
    const rows = await query(db, "execution_finish", `${update} RETURNING id`, params);
    return rows.length === 1 ? { moved: true, execution: null } : { moved: false };
  }
  const row = await one(
    query<ExecutionRow & { files: Parameters<typeof fileFromJson>[0][] }>(
      db,
      "execution_finish_returning",
      `${update} RETURNING ${EXECUTION_COLUMNS}, ${GENERATED_FILES_JSON}`,
      params,
    ),
  );
  return row ? { moved: true, execution: { ...row, files: row.files.map(fileFromJson) } } : { moved: false };
}

/**
 * Executions still active (queued, preparing, running) created before `createdBefore`, oldest first: the ones
 * the reconciler checks against their jobs.
 */
export function listStaleActiveExecutions(
  db: Db,
  createdBefore: Date,
  limit: number,
): Promise<Array<Pick<ExecutionRow, "id" | "status" | "userId" | "messageId" | "kernelId">>> {
  return db.execution.findMany({
    where: { status: { in: [...ACTIVE_STATUSES] }, createdAt: { lt: createdBefore } },
    select: { id: true, status: true, userId: true, messageId: true, kernelId: true },
    orderBy: { createdAt: "asc" },
    take: limit,
  });
}

/**
 * Whether another execution of the message is running on `kernelId`, or is preparing (it may be about to run
 * on it): such a kernel is not a lost execution's to shut down, even when the message's lock says otherwise
 * (a Redis that restarted empty forgets the lock of an execution still running).
 */
export async function kernelMayBeInUse(
  db: Db,
  e: { id: string; userId: string; messageId: string; kernelId: string },
): Promise<boolean> {
  const n = await db.execution.count({
    where: {
      userId: e.userId,
      messageId: e.messageId,
      id: { not: e.id },
      OR: [{ status: "running", kernelId: e.kernelId }, { status: "preparing" }],
    },
  });
  return n > 0;
}

export function countExecutionsByStatus(db: Db): Promise<Array<{ status: ExecutionStatus; count: number }>> {
  return db.execution
    .groupBy({ by: ["status"], _count: { _all: true } })
    .then((rows) => rows.map((r) => ({ status: r.status, count: r._count._all })));
}

async function one<T>(rows: Promise<T[]>): Promise<T | null> {
  return (await rows)[0] ?? null;
}

/** Joins files to the message's attachments, after checking the user owns every one of them. */
async function attachFiles(
  tx: Prisma.TransactionClient,
  userId: string,
  messageId: string,
  fileIds: string[],
): Promise<void> {
  const owned = await tx.file.findMany({
    where: { id: { in: fileIds }, userId, deletedAt: null },
    select: { id: true },
  });
  const ownedIds = new Set(owned.map((f) => f.id));
  const missing = fileIds.filter((id) => !ownedIds.has(id));
  if (missing.length > 0) throw new FilesNotFoundError(missing);
  const existing = await tx.messageAttachment.findMany({
    where: { userId, messageId },
    select: { fileId: true, position: true },
  });
  const already = new Set(existing.map((a) => a.fileId));
  let position = existing.reduce((max, a) => Math.max(max, a.position), -1);
  const fresh = fileIds.filter((id) => !already.has(id));
  if (fresh.length > 0) {
    await tx.messageAttachment.createMany({
      data: fresh.map((fileId) => ({ userId, messageId, fileId, position: ++position })),
      skipDuplicates: true,
    });
  }
}

export interface KernelMessage {
  kernelId: string;
  userId: string;
  chatId: string;
  messageId: string;
  /** The latest execution that ran on the kernel. */
  executionId: string;
  status: string;
  createdAt: Date;
}

/** For each kernel id, the message it serves: that of the latest execution that ran on it (none: a pool kernel). */
export function messagesOfKernels(db: Db, kernelIds: string[]): Promise<KernelMessage[]> {
  if (kernelIds.length === 0) return Promise.resolve([]);
  return query<KernelMessage>(
    db,
    "messages_of_kernels",
    `SELECT DISTINCT ON (kernel_id) kernel_id AS "kernelId", user_id AS "userId", chat_id AS "chatId", message_id AS "messageId",
       id AS "executionId", status::text AS status, created_at AS "createdAt"
     FROM executions WHERE kernel_id = ANY($1::text[]) ORDER BY kernel_id, created_at DESC`,
    [kernelIds],
  );
}
