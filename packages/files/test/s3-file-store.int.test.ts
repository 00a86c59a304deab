import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, createFile } from "@codeinterp/db";
import type { Db, FileRow } from "@codeinterp/db";
import type { BlobStore, PutResult } from "@codeinterp/workspace";
import { createTestDatabase } from "../../../test/helpers/database";
import { startS3Server } from "../../../test/helpers/s3-server";
import type { S3Server } from "../../../test/helpers/s3-server";
import { createBlobCache, createFileStore, createS3BlobStore, createS3Client } from "../src/index";
import type { FileStore, S3BlobStore } from "../src/index";

// The blob lifecycle (src/file-store.ts) with the blobs in a real S3 server: the same races as on disk.
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
let s3: S3Server;
let admin: S3Client;
let root: string;
let blobs: S3BlobStore;
let files: FileStore;
const prefix = "lifecycle/";
let n = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb({ url: database.url });
  s3 = await startS3Server();
  admin = s3.client();
  root = await mkdtemp(path.join(os.tmpdir(), "ci-s3files-"));
  blobs = createS3BlobStore({
    client: createS3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    }),
    bucket: s3.bucket,
    prefix,
    cache: createBlobCache({ dir: path.join(root, "cache"), maxBytes: 1 << 20 }),
  });
  files = createFileStore({ db, blobs });
});
afterAll(async () => {
  blobs?.close();
  admin?.destroy();
  await s3?.stop();
  await db?.$disconnect();
  await database?.drop();
  if (root) await rm(root, { recursive: true, force: true });
});

const unique = (label: string) => `${label} ${++n} ${Date.now()}`;
const spares = () => readdir(path.join(root, "cache", "tmp")).catch(() => []);
/** The object's bytes as the bucket has them (not through the cache); null when there is none. */
async function inBucket(key: string): Promise<string | null> {
  try {
    const got = await admin.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${prefix}${key}` }));
    return (await got.Body?.transformToString()) ?? null;
  } catch (err) {
    if ((err as { name?: string }).name === "NoSuchKey") return null;
    throw err;
  }
}

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

async function upload(userId: string, content: string): Promise<FileRow> {
  const put = await files.receive(Readable.from([Buffer.from(content)]));
  const committed = await files.commit([put], () => rowFor(userId, put));
  expect(committed.kept).toBe(true);
  return committed.value;
}

const liveRows = (key: string) => db.file.count({ where: { storageKey: key, deletedAt: null } });
async function lockWaiters(): Promise<number> {
  const [row] = await db.$queryRawUnsafe<Array<{ n: number }>>(
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
     WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted`,
  );
  return row?.n ?? 0;
}

/** A deleter whose DeleteObject waits at a gate once it has counted no live row under the blob's lock. */
function gatedDeleter() {
  let reached!: () => void;
  let open!: () => void;
  const atGate = new Promise<void>((r) => (reached = r));
  const gate = new Promise<void>((r) => (open = r));
  const gated: BlobStore = {
    ...blobs,
    remove: async (key) => {
      reached();
      await gate;
      return blobs.remove(key);
    },
  };
  return { store: createFileStore({ db, blobs: gated }), atGate, open };
}

describe("FileStore on S3", () => {
  it("an upload racing the deletion of the same content keeps its object, put back from the spare", async () => {
    const content = unique("raced upload");
    const first = await upload("alice", content);
    const deleter = gatedDeleter();
    const deleting = deleter.store.deleteFile("alice", first.id);
    await deleter.atGate;

    const put = await files.receive(Readable.from([Buffer.from(content)]));
    expect(put.created).toBe(false);
    const committing = files.commit([put], () => rowFor("bob", put));
    await expect.poll(() => liveRows(put.key), { timeout: 10_000 }).toBe(1);
    await expect.poll(lockWaiters, { timeout: 10_000 }).toBeGreaterThan(0);
    deleter.open();
    expect(await deleting).toMatchObject({ id: first.id });
    expect(await committing).toMatchObject({ kept: true, restored: 1 });
    expect(await inBucket(put.key)).toBe(content);
    expect(await spares()).toEqual([]);
  });

  it("a deletion removes the object only when no live row uses it", async () => {
    const content = unique("counted");
    const a = await upload("alice", content);
    const b = await upload("bob", content);
    await files.deleteFile("alice", a.id);
    expect(await inBucket(b.storageKey)).toBe(content);
    await files.deleteFile("bob", b.id);
    expect(await inBucket(b.storageKey)).toBeNull();
  });

  it("a put that never becomes a row is discarded: its object and spare are gone", async () => {
    const content = unique("never a row");
    const put = await files.receive(Readable.from([Buffer.from(content)]));
    expect(await inBucket(put.key)).toBe(content);
    await expect(files.commit([put], () => Promise.reject(new Error("insert failed")))).rejects.toThrow(
      "insert failed",
    );
    expect(await inBucket(put.key)).toBeNull();
    expect(await spares()).toEqual([]);
  });
});
