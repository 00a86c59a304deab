import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDb,
  createExecution,
  createFile,
  registerExecutionFiles,
  removalsWaitedInStatement,
} from "@codeinterp/db";
import type { Db, FileRow } from "@codeinterp/db";
import { FileReplacedError, FileSizeChangedError, createBlobStore } from "@codeinterp/workspace";
import type { LocalBlobStore, PutResult } from "@codeinterp/workspace";
import { createTestDatabase } from "../../../test/helpers/database";
import { createFileStore } from "../src/index";
import type { FileStore } from "../src/index";

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
let dataDir: string;
let blobs: LocalBlobStore;
let files: FileStore;
let n = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb({ url: database.url });
  dataDir = await mkdtemp(path.join(os.tmpdir(), "ci-filestore-"));
  blobs = createBlobStore(dataDir);
  files = createFileStore({ db, blobs });
});
afterAll(async () => {
  await db?.$disconnect();
  await database?.drop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

const unique = (label: string) => `${label} ${++n} ${Date.now()}`;
const tempFiles = () => readdir(path.join(dataDir, "blobs", "tmp")).catch(() => []);
const contentOf = (key: string) => readFile(blobs.pathOf(key), "utf8");

function rowFor(userId: string, put: PutResult, name = "f.txt"): Promise<FileRow> {
  return createFile(db, {
    userId,
    name,
    size: put.size,
    sha256: put.sha256,
    mimeType: "text/plain",
    storageKey: put.key,
    source: "upload",
  });
}

/** Uploads `content` as a file of `userId` the way every writer does: receive, then commit the row. */
async function upload(userId: string, content: string): Promise<FileRow> {
  const put = await files.receive(Readable.from([Buffer.from(content)]));
  const committed = await files.commit([put], () => rowFor(userId, put));
  expect(committed.kept).toBe(true);
  return committed.value;
}

const liveRows = async (key: string) => db.file.count({ where: { storageKey: key, deletedAt: null } });

/** Sessions of this database waiting for an advisory lock: a writer waiting out the deletion under way. */
async function lockWaiters(): Promise<number> {
  const [row] = await db.$queryRawUnsafe<Array<{ n: number }>>(
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
     WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted`,
  );
  return row?.n ?? 0;
}

/** The writer's rows are committed and it waits for the deletion holding the lock: the race, pinned. */
async function writerWaits(key: string, rows = 1): Promise<void> {
  await expect.poll(() => liveRows(key), { timeout: 10_000 }).toBe(rows);
  await expect.poll(lockWaiters, { timeout: 10_000 }).toBeGreaterThan(0);
}

/**
 * A second FileStore, the deleter's, whose blob removal waits at a gate once it has counted no live
 * reference under the blob's lock: the moment a concurrent writer's row must not be lost in.
 */
function gatedDeleter() {
  let reached!: () => void;
  let open!: () => void;
  const atGate = new Promise<void>((r) => (reached = r));
  const gate = new Promise<void>((r) => (open = r));
  const gated: LocalBlobStore = {
    ...blobs,
    remove: async (key) => {
      reached();
      await gate;
      return blobs.remove(key);
    },
  };
  return { store: createFileStore({ db, blobs: gated }), atGate, open };
}

describe("FileStore: writers and deleters of the same content", () => {
  it("an upload racing the deletion of the same content keeps its bytes, and no spare is left", async () => {
    const content = unique("raced upload");
    const first = await upload("alice", content);
    const deleter = gatedDeleter();
    const deleting = deleter.store.deleteFile("alice", first.id);
    await deleter.atGate; // lock held, no live row counted, about to unlink

    const put = await files.receive(Readable.from([Buffer.from(content)]));
    expect(put.created).toBe(false);
    const committing = files.commit([put], () => rowFor("bob", put));
    // Bob's row is committed while the deletion still holds the lock: only then let it unlink.
    await writerWaits(put.key);
    deleter.open();
    expect(await deleting).toMatchObject({ id: first.id });
    const committed = await committing;
    expect(committed).toMatchObject({ kept: true, restored: 1 });
    expect(await contentOf(put.key)).toBe(content);
    expect(await tempFiles()).toEqual([]);
  });

  it("a deletion after a writer's row is committed sees that row and keeps the blob", async () => {
    const content = unique("counted");
    const a = await upload("alice", content);
    const b = await upload("bob", content);
    await files.deleteFile("alice", a.id);
    expect(await contentOf(b.storageKey)).toBe(content);
    await files.deleteFile("bob", b.id);
    await expect(contentOf(b.storageKey)).rejects.toMatchObject({ code: "ENOENT" });
    expect(await files.deleteFile("bob", b.id)).toBeNull();
  });

  it("a batch of generated files racing the deletion of one of their contents keeps every file's bytes", async () => {
    const contents = Array.from({ length: 40 }, (_, i) => unique(`batch ${i}`));
    const victim = await upload("alice", contents[17]!);
    const deleter = gatedDeleter();
    const deleting = deleter.store.deleteFile("alice", victim.id);
    await deleter.atGate;

    const puts = await Promise.all(contents.map((c) => files.receive(Readable.from([Buffer.from(c)]))));
    const committing = files.commit(puts, async () => {
      const rows: FileRow[] = [];
      for (const [i, p] of puts.entries()) rows.push(await rowFor("carol", p, `out-${i}.txt`));
      return rows;
    });
    await writerWaits(victim.storageKey);
    deleter.open();
    await deleting;
    const committed = await committing;
    expect(committed).toMatchObject({ kept: true, restored: 1 });
    expect(await Promise.all(puts.map((p) => contentOf(p.key)))).toEqual(contents);
    expect(await tempFiles()).toEqual([]);
  });

  it("a capture's registration racing the deletion of one of its contents waits in its own statement and keeps the bytes", async () => {
    const contents = [unique("chart"), unique("table")];
    const victim = await upload("alice", contents[1]!);
    const deleter = gatedDeleter();
    const deleting = deleter.store.deleteFile("alice", victim.id);
    await deleter.atGate;

    const { execution } = await createExecution(db, {
      userId: "erin",
      chatId: "c",
      messageId: unique("m"),
      code: "",
      timeoutMs: 1000,
    });
    const puts = await Promise.all(contents.map((c) => files.receive(Readable.from([Buffer.from(c)]))));
    const keys = puts.map((p) => p.key);
    expect(removalsWaitedInStatement(keys)).toBe(true);
    const committing = files.commit(
      puts,
      () =>
        registerExecutionFiles(
          db,
          execution.id,
          puts.map((p, i) => ({
            userId: "erin",
            name: `out-${i}.txt`,
            path: `out-${i}.txt`,
            size: p.size,
            sha256: p.sha256,
            storageKey: p.key,
            mimeType: "text/plain",
            source: "generated" as const,
          })),
        ),
      { insertWaitsForRemovals: true },
    );
    // The registering statement itself waits for the deletion's lock, its rows not yet committed.
    await expect.poll(lockWaiters, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(await db.file.count({ where: { executionId: execution.id } })).toBe(0);
    deleter.open();
    await deleting;
    const committed = await committing;
    expect(committed).toMatchObject({ kept: true, restored: 1 });
    expect(committed.value).toHaveLength(2);
    expect(await Promise.all(keys.map((k) => contentOf(k)))).toEqual(contents);
    expect(await tempFiles()).toEqual([]);
  });

  it("a copy of a shared file racing its owner's deletion keeps the bytes", async () => {
    const content = unique("shared by an agent");
    const source = await upload("agent-owner", content);
    const deleter = gatedDeleter();
    const deleting = deleter.store.deleteFile("agent-owner", source.id);
    await deleter.atGate;

    const spare = await files.share(source.storageKey);
    expect(spare).not.toBeNull();
    const committing = files.commit([spare!], () => rowFor("dave", spare!));
    await writerWaits(source.storageKey);
    deleter.open();
    await deleting;
    expect(await committing).toMatchObject({ kept: true, restored: 1 });
    expect(await contentOf(source.storageKey)).toBe(content);
    expect(await tempFiles()).toEqual([]);
  });

  it("sharing a blob that is already gone gives null, and nothing is left behind", async () => {
    const content = unique("gone");
    const f = await upload("erin", content);
    await files.deleteFile("erin", f.id);
    expect(await files.share(f.storageKey)).toBeNull();
    expect(await tempFiles()).toEqual([]);
  });
});

describe("FileStore: puts that never become rows", () => {
  it("a failed insert discards: the error is the caller's, the spare and the blob it created are gone", async () => {
    const content = unique("never a row");
    const put = await files.receive(Readable.from([Buffer.from(content)]));
    expect(put.created).toBe(true);
    const failure = new Error("insert failed");
    await expect(files.commit([put], () => Promise.reject(failure))).rejects.toBe(failure);
    expect(await blobs.has(put.key)).toBe(false);
    expect(await tempFiles()).toEqual([]);
  });

  it("a discarded put whose content a live file uses leaves the blob", async () => {
    const content = unique("in use");
    const kept = await upload("frank", content);
    const put = await files.receive(Readable.from([Buffer.from(content)]));
    await files.discard([put]);
    expect(await contentOf(kept.storageKey)).toBe(content);
    expect(await tempFiles()).toEqual([]);
  });

  it("a writer whose blob a discarded upload of the same content removed puts it back from its spare", async () => {
    const content = unique("discarded first");
    const dropped = await files.receive(Readable.from([Buffer.from(content)]));
    const writer = await files.receive(Readable.from([Buffer.from(content)]));
    expect([dropped.created, writer.created]).toEqual([true, false]);
    await files.discard([dropped]);
    expect(await blobs.has(writer.key)).toBe(false);
    const committed = await files.commit([writer], () => rowFor("grace", writer));
    expect(committed).toMatchObject({ kept: true, restored: 1 });
    expect(await contentOf(writer.key)).toBe(content);
    expect(await tempFiles()).toEqual([]);
  });

  it("refusals of receiveFile carry their own error classes", async () => {
    const dir = path.join(dataDir, "ws");
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    const file = path.join(dir, "a.txt");
    await writeFile(file, "abc");
    await expect(files.receiveFile(file, { expect: { ino: (await stat(file)).ino + 1 } })).rejects.toBeInstanceOf(
      FileReplacedError,
    );
    await expect(files.receiveFile(file, { expect: { size: 4 } })).rejects.toBeInstanceOf(FileSizeChangedError);
    expect(await tempFiles()).toEqual([]);
  });
});
