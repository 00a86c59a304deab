import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  claimQueuedExecution,
  closeDb,
  createDb,
  createExecution,
  createFile,
  deleteFile,
  findExecution,
  findExecutionWithFiles,
  finishExecution,
  getExecutionForWorker,
  listMessageAttachments,
  markExecutionRunning,
  noteQueuedAttempt,
  readExecutionToRun,
  registerExecutionFiles,
  startQueuedExecution,
} from "@codeinterp/db";
import type { Db, ExecutionRow, FileRow } from "@codeinterp/db";
import { executionFromPrisma, fileFromPrisma } from "../src/repos/rows";
import { createTestDatabase } from "../../../test/helpers/database";

/**
 * The hot path (sql.ts: named statements on the pool) hands out the same rows as Prisma would: every column,
 * with the same types (Dates in UTC, nulls as null, int8 and int as numbers, JSON parsed). Prisma is the
 * reference; each row-returning statement is compared with Prisma's read of the same row, once with the
 * optional columns empty and once with all of them set.
 */

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb({ url: database.url });
});
afterAll(async () => {
  if (db) await closeDb(db);
  await database?.drop();
});

const viaPrisma = async (id: string): Promise<ExecutionRow> =>
  executionFromPrisma(await db.execution.findUniqueOrThrow({ where: { id } }));
const fileViaPrisma = async (id: string): Promise<FileRow> =>
  fileFromPrisma(await db.file.findUniqueOrThrow({ where: { id } }));

/** toStrictEqual tells a Date from a string and null from undefined; this also names the column that differs. */
function expectSameRow(raw: object | null, prisma: object): void {
  expect(raw).not.toBeNull();
  expect(Object.keys(raw ?? {}).sort()).toEqual(Object.keys(prisma).sort());
  for (const [k, v] of Object.entries(prisma)) expect((raw as Record<string, unknown>)[k], k).toStrictEqual(v);
  expect(raw).toStrictEqual(prisma);
}

const USER = "parity-user";
const sha = (c: string) => c.repeat(64);

describe("rows read through the raw-SQL hot path equal the rows Prisma reads", () => {
  it("executions: insert, by id, by owner, by idempotency key, claim; with empty and with filled columns", async () => {
    // No idempotency key, never claimed: every optional column is null.
    const bare = await createExecution(db, {
      userId: USER,
      chatId: "c1",
      messageId: "m1",
      code: "print('é')",
      timeoutMs: 30_000,
    });
    expectSameRow(bare.execution, await viaPrisma(bare.execution.id));
    expectSameRow(await getExecutionForWorker(db, bare.execution.id), await viaPrisma(bare.execution.id));
    expectSameRow(await findExecution(db, USER, bare.execution.id), await viaPrisma(bare.execution.id));
    const toRun = await readExecutionToRun(db, bare.execution.id);
    expectSameRow(toRun?.execution ?? null, await viaPrisma(bare.execution.id));
    expect(toRun?.attachments).toEqual([]);
    expect(await readExecutionToRun(db, "00000000-0000-4000-8000-000000000000")).toBeNull();
    // A warm start: queued → running on the kernel, as an attempt, in one statement; only from queued.
    const startedAt = new Date("2026-12-06T10:00:00.123Z");
    expect(await startQueuedExecution(db, bare.execution.id, { kernelId: "k-w", workerId: "w-w", startedAt })).toBe(
      true,
    );
    expect(await viaPrisma(bare.execution.id)).toMatchObject({
      status: "running",
      kernelId: "k-w",
      workerId: "w-w",
      attempts: 1,
      startedAt,
    });
    expect(await startQueuedExecution(db, bare.execution.id, { kernelId: "k-x", workerId: "w-x", startedAt })).toBe(
      false,
    );
    expect(await claimQueuedExecution(db, bare.execution.id, "w-x")).toBeNull();
    expect((await viaPrisma(bare.execution.id))?.kernelId).toBe("k-w");
    // A warm attempt that stops before starting counts, and the first attempt's start is the one kept.
    const retried = await createExecution(db, { userId: USER, chatId: "c1", messageId: "m1", code: "2", timeoutMs: 1 });
    const firstStart = new Date("2026-12-06T10:00:01.000Z");
    expect(await noteQueuedAttempt(db, retried.execution.id, { workerId: "w-1", startedAt: firstStart })).toBe(true);
    expect(
      await noteQueuedAttempt(db, retried.execution.id, {
        workerId: "w-2",
        startedAt: new Date("2026-12-06T10:00:09Z"),
      }),
    ).toBe(true);
    expect(await viaPrisma(retried.execution.id)).toMatchObject({
      status: "queued",
      attempts: 2,
      startedAt: firstStart,
      workerId: "w-2",
    });
    const reclaimed = await claimQueuedExecution(db, retried.execution.id, "w-3");
    expect(reclaimed?.execution).toMatchObject({ status: "preparing", attempts: 3, startedAt: firstStart });
    expect(await noteQueuedAttempt(db, retried.execution.id, { workerId: "w-4", startedAt: firstStart })).toBe(false);

    // The same keyed request twice: the second insert returns the first row.
    const createKeyed = () =>
      createExecution(db, {
        userId: USER,
        chatId: "c1",
        messageId: "m2",
        code: "x = 1",
        timeoutMs: 1,
        idempotencyKey: "k-1",
        memoryMb: 1024,
      });
    const keyed = await createKeyed();
    const again = await createKeyed();
    expect(again.created).toBe(false);
    expectSameRow(again.execution, await viaPrisma(keyed.execution.id));

    const claimed = await claimQueuedExecution(db, keyed.execution.id, "worker-a");
    expectSameRow(claimed?.execution ?? null, await viaPrisma(keyed.execution.id));
    expect(claimed?.attachments).toEqual([]);
    expect(await markExecutionRunning(db, keyed.execution.id, "kernel-a")).toBe(true);
    const result = {
      stdout: "1\n",
      stderr: "",
      outputs: [{ type: "image", mime: "image/png", n: 1.5 }],
      error: null,
      notes: ["ü", '"q"'],
    };
    const moved = await finishExecution(db, keyed.execution.id, "completed", {
      result,
      failure: { code: "x", message: "y" },
      metrics: { runMs: 3, pooledKernel: true },
    });
    expect(moved).toEqual({ moved: true, execution: null });
    // Every column set now: kernel, worker, both timestamps, all three JSON columns.
    const full = await viaPrisma(keyed.execution.id);
    expect(Object.entries(full).filter(([, v]) => v === null)).toEqual([]);
    expectSameRow(await getExecutionForWorker(db, keyed.execution.id), full);

    // A finish that returns the ended execution returns what a read of it returns.
    const ended = await finishExecution(db, bare.execution.id, "failed", {
      failure: { code: "x", message: "y" },
      returnExecution: true,
    });
    const endedExecution = ended.moved ? ended.execution : null;
    expect(endedExecution).toEqual(await findExecutionWithFiles(db, USER, bare.execution.id));
    const { files: _none, ...endedRow } = endedExecution!;
    expectSameRow(endedRow, await viaPrisma(bare.execution.id));
    expectSameRow(await findExecution(db, USER, keyed.execution.id), full);
    const { files, ...withFiles } = (await findExecutionWithFiles(db, USER, keyed.execution.id)) ?? { files: null };
    expect(files).toEqual([]);
    expectSameRow(withFiles, full);
  });

  it("files: a batch registration and an execution's files (json_agg), with empty and with filled columns", async () => {
    const { execution } = await createExecution(db, {
      userId: USER,
      chatId: "c2",
      messageId: "m3",
      code: "",
      timeoutMs: 1000,
    });
    const upload = await createFile(db, {
      userId: USER,
      name: "in.csv",
      size: 3,
      sha256: sha("a"),
      mimeType: "text/csv",
      storageKey: sha("a"),
      source: "upload",
    });
    const registered = await registerExecutionFiles(db, execution.id, [
      // More than 2^32 bytes, every optional column set.
      {
        userId: USER,
        name: 'big "ü".bin',
        size: 5_000_000_123,
        sha256: sha("b"),
        mimeType: "application/octet-stream",
        storageKey: sha("b"),
        source: "generated",
        chatId: "c2",
        messageId: "m3",
        path: "out/big.bin",
        derivedFromId: upload.id,
      },
      // The optional columns left out.
      {
        userId: USER,
        name: "empty.txt",
        size: 0,
        sha256: sha("c"),
        mimeType: "text/plain",
        storageKey: sha("c"),
        source: "generated",
        path: "empty.txt",
      },
    ]);
    expect(registered.map((f) => f.path)).toEqual(["empty.txt", "out/big.bin"]);
    for (const f of registered) expectSameRow(f, await fileViaPrisma(f.id));

    // A retried capture: the path registered before comes back as it was (not a second row), the new one is added.
    const again = await registerExecutionFiles(db, execution.id, [
      { ...registered[0]!, path: "empty.txt", sha256: sha("d"), storageKey: sha("d") },
      { ...registered[0]!, path: "again.txt", name: "again.txt" },
    ]);
    expect(again.map((f) => f.path)).toEqual(["again.txt", "empty.txt"]);
    expect(again[1]).toEqual(registered[0]);
    for (const f of again) expectSameRow(f, await fileViaPrisma(f.id));
    expect(await db.file.count({ where: { executionId: execution.id } })).toBe(3);

    const withFiles = await findExecutionWithFiles(db, USER, execution.id);
    const prismaFiles = await db.file.findMany({
      where: { executionId: execution.id, source: "generated", deletedAt: null },
      orderBy: { path: "asc" },
    });
    expect(withFiles?.files).toHaveLength(3);
    withFiles?.files.forEach((f, i) => expectSameRow(f, fileFromPrisma(prismaFiles[i]!)));
    const { files: _files, ...row } = withFiles!;
    expectSameRow(row, await viaPrisma(execution.id));
  });

  it("a message's attachments, a deleted one included", async () => {
    const a = await createFile(db, {
      userId: USER,
      name: "a.csv",
      size: 10,
      sha256: sha("d"),
      mimeType: "text/csv",
      storageKey: sha("d"),
      source: "upload",
    });
    const b = await createFile(db, {
      userId: USER,
      name: "b.csv",
      size: 20,
      sha256: sha("e"),
      mimeType: "text/csv",
      storageKey: sha("e"),
      source: "upload",
      chatId: "c4",
      messageId: "m4",
    });
    const queued = await createExecution(db, {
      userId: USER,
      chatId: "c4",
      messageId: "m4",
      code: "",
      timeoutMs: 1000,
      fileIds: [a.id, b.id],
    });
    await deleteFile(db, USER, b.id);

    const attached = await listMessageAttachments(db, USER, "m4");
    expect(attached.map((f) => f.id)).toEqual([a.id, b.id]);
    expect(attached[1]?.deletedAt).toBeInstanceOf(Date);
    for (const f of attached) expectSameRow(f, await fileViaPrisma(f.id));
    // The worker's read and its claim find the same attachments, in the same order, in the same statement.
    expect((await readExecutionToRun(db, queued.execution.id))?.attachments).toEqual(attached);
    const claimed = await claimQueuedExecution(db, queued.execution.id, "worker-a");
    expect(claimed?.attachments).toEqual(attached);
  });
});
