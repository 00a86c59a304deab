import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { buffer, text } from "node:stream/consumers";
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BlobCorruptError, BlobNotFoundError, BlobStoreUnavailableError, withLocalBlob } from "@codeinterp/workspace";
import { startS3Server } from "../../../test/helpers/s3-server";
import type { S3Server } from "../../../test/helpers/s3-server";
import { createBlobCache, createS3BlobStore, createS3Client } from "../src/index";
import type { S3BlobStore } from "../src/index";

let s3: S3Server;
let admin: S3Client;
let root: string;
let n = 0;
/** Commands the stores under test sent, by name (counted on their own client, as the bucket saw them). */
const sent = new Map<string, number>();

beforeAll(async () => {
  s3 = await startS3Server();
  console.log(`swift s3 server ready in ${s3.startMs} ms`);
  admin = s3.client();
  root = await mkdtemp(path.join(os.tmpdir(), "ci-s3store-"));
});
afterAll(async () => {
  admin?.destroy();
  await s3?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

function newStore(cacheBytes = 64 * 1024 * 1024): { store: S3BlobStore; prefix: string; client: S3Client } {
  const prefix = `t${++n}-${randomBytes(3).toString("hex")}/`;
  const client = createS3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  client.middlewareStack.add(
    (next, context) => (args) => {
      sent.set(context.commandName ?? "?", (sent.get(context.commandName ?? "?") ?? 0) + 1);
      return next(args);
    },
    { step: "initialize" },
  );
  const cache = createBlobCache({ dir: path.join(root, `cache-${n}`), maxBytes: cacheBytes });
  return { store: createS3BlobStore({ client, bucket: s3.bucket, prefix, cache }), prefix, client };
}

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");
const gets = () => sent.get("GetObjectCommand") ?? 0;
const objects = async (prefix: string) =>
  ((await admin.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }))).Contents ?? []).map(
    (o) => o.Key,
  );

describe("S3 blob store on a real S3 server", () => {
  it("puts, reads, streams, ranges, knows and deletes blobs, addressed by content", async () => {
    const { store, prefix } = newStore();
    const bytes = randomBytes(300_000);
    const put = await store.put(Readable.from([bytes.subarray(0, 100_000), bytes.subarray(100_000)]));
    expect(put).toMatchObject({ key: sha(bytes), sha256: sha(bytes), size: bytes.length, created: true });
    expect(await objects(prefix)).toEqual([`${prefix}${sha(bytes)}`]);
    const again = await store.put(Readable.from([bytes]));
    expect(again.created).toBe(false);
    expect(await objects(prefix)).toHaveLength(1);

    expect(await store.has(put.key)).toBe(true);
    const chunks: Buffer[] = [];
    for await (const c of await store.open(put.key)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(bytes)).toBe(true);
    expect(await buffer(await store.open(put.key, { start: 10, end: 19 }))).toEqual(bytes.subarray(10, 20));
    expect(await withLocalBlob(store, put.key, (p) => readFile(p))).toEqual(bytes);

    expect(await store.remove(put.key)).toBe(true);
    expect(await store.has(put.key)).toBe(false);
    expect(await objects(prefix)).toEqual([]);
    expect(await store.remove(put.key)).toBe(false);
    store.close();
  });

  it("reads from the bucket what another machine put (a cold cache), and a cache hit sends no GET", async () => {
    const writer = newStore();
    const other = newStore();
    const cold = createS3BlobStore({
      client: other.client,
      bucket: s3.bucket,
      prefix: writer.prefix,
      cache: createBlobCache({ dir: path.join(root, `cold-${n}`), maxBytes: 1 << 20 }),
    });
    const put = await writer.store.put(Readable.from([Buffer.from("from the other cell")]));
    // Not cached here: a download and a range stream from the bucket, and fill no cache.
    expect(await text(await cold.open(put.key))).toBe("from the other cell");
    expect(await text(await cold.open(put.key, { start: 9, end: 13 }))).toBe("other");
    const before = gets();
    expect(await withLocalBlob(cold, put.key, (p) => readFile(p, "utf8"))).toBe("from the other cell");
    expect(gets()).toBe(before + 1);
    expect(await withLocalBlob(cold, put.key, (p) => readFile(p, "utf8"))).toBe("from the other cell");
    expect(await text(await cold.open(put.key))).toBe("from the other cell");
    expect(gets()).toBe(before + 1);
    // Two downloads and the first lease missed (the lease fetched); it and both later reads were hits.
    expect(cold.cache.stats()).toMatchObject({ entries: 1, hits: 3, misses: 3 });
    writer.store.close();
    cold.close();
  });

  it("keeps the cache within its bound, least recently used out first; an evicted blob is fetched again", async () => {
    const { store } = newStore(10_000);
    const blobs = [randomBytes(4000), randomBytes(4000), randomBytes(4000)];
    const keys: string[] = [];
    keys.push((await store.put(Readable.from([blobs[0]!]))).key);
    keys.push((await store.put(Readable.from([blobs[1]!]))).key);
    // Use the first again: the second is now the least recently used.
    await withLocalBlob(store, keys[0]!, async () => undefined);
    keys.push((await store.put(Readable.from([blobs[2]!]))).key);
    const stats = store.cache.stats();
    expect(stats.bytes).toBeLessThanOrEqual(10_000);
    expect(stats).toMatchObject({ entries: 2, evicted: 1 });
    const cached = await readdir(path.join(store.cache.store.root, keys[1]!.slice(0, 2), keys[1]!.slice(2, 4))).catch(
      () => [],
    );
    expect(cached).not.toContain(keys[1]);
    const before = gets();
    expect(await withLocalBlob(store, keys[1]!, (p) => readFile(p))).toEqual(blobs[1]);
    expect(gets()).toBe(before + 1);
    expect(store.cache.stats().bytes).toBeLessThanOrEqual(10_000);
    store.close();
  });

  it("a missing object is BlobNotFoundError (open, keepSpare) or null (withLocal), never an empty file", async () => {
    const { store } = newStore();
    const key = sha("never stored");
    await expect(store.open(key)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store.keepSpare(key)).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(withLocalBlob(store, key, (p) => readFile(p))).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.withLocal([key], async (at) => at(key))).toBeNull();
    store.close();
  });

  it("an object whose bytes do not match its key is BlobCorruptError and is not cached", async () => {
    const { store, prefix } = newStore();
    const key = sha("the real content");
    await admin.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}${key}`, Body: "tampered content" }));
    await expect(withLocalBlob(store, key, (p) => readFile(p))).rejects.toBeInstanceOf(BlobCorruptError);
    expect(store.cache.stats().entries).toBe(0);
    const stream = await store.open(key);
    await expect(text(stream)).rejects.toBeInstanceOf(BlobCorruptError);
    store.close();
  });

  it("settle puts back content a concurrent removal deleted, from the spare", async () => {
    const { store, prefix } = newStore();
    const put = await store.put(Readable.from([Buffer.from("spare me")]), { keepSpare: true });
    expect(put.spare).toBeDefined();
    // A deleter that counted no live row removes it before the writer's row is committed.
    await store.remove(put.key);
    expect(await objects(prefix)).toEqual([]);
    expect(await store.settle(put)).toBe(true);
    expect(await text(await store.open(put.key))).toBe("spare me");
    const head = await admin.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${prefix}${put.key}` }));
    expect(head.ContentLength).toBe(8);
    // A shared row's spare of a stored blob, settled with nothing removed: nothing to put back.
    const shared = await store.keepSpare(put.key);
    expect(await store.settle(shared)).toBe(false);
    store.close();
  });

  it("with the server down a put is BlobStoreUnavailableError and stores nothing; back up, it works", async () => {
    const { store, prefix } = newStore();
    await s3.stopProxy();
    try {
      await expect(store.put(Readable.from([Buffer.from("while down")]))).rejects.toBeInstanceOf(
        BlobStoreUnavailableError,
      );
      await expect(store.has(sha("while down"))).rejects.toBeInstanceOf(BlobStoreUnavailableError);
    } finally {
      await s3.startProxy();
    }
    expect(await objects(prefix)).toEqual([]);
    const put = await store.put(Readable.from([Buffer.from("while down")]));
    expect(put.created).toBe(true);
    expect(await text(await store.open(put.key))).toBe("while down");
    store.close();
  });
});
