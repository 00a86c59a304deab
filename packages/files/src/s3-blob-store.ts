import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Transform } from "node:stream";
import type { Readable, TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { Logger } from "@codeinterp/logger";
import {
  BlobCorruptError,
  BlobNotFoundError,
  BlobStoreUnavailableError,
  InvalidBlobKeyError,
  isBlobKey,
} from "@codeinterp/workspace";
import type { BlobStore, LocalPathOf, PutFileOptions, PutOptions, PutResult } from "@codeinterp/workspace";
import type { BlobCache } from "./blob-cache";

export interface S3BlobStoreOptions {
  client: S3Client;
  bucket: string;
  /** "" or ending in "/". */
  prefix: string;
  cache: BlobCache;
  log?: Logger;
}

export interface S3BlobStore extends BlobStore {
  readonly cache: BlobCache;
}

/** Blobs fetched into the cache at once by `withLocal`. */
const FETCH_CONCURRENCY = 4;

interface SdkError {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

const statusOf = (err: unknown) => (err as SdkError | undefined)?.$metadata?.httpStatusCode;
const isMissing = (err: unknown) =>
  statusOf(err) === 404 || ["NoSuchKey", "NotFound"].includes((err as SdkError | undefined)?.name ?? "");

/**
 * The SDK's own retries (standard strategy) have run by the time an error gets here. A server error or no
 * answer at all (refused, reset, timed out) is the store being away: BlobStoreUnavailableError, which the
 * API answers 503 and the worker retries. A 4xx is a bug or a misconfiguration and stays what it is.
 */
function unavailable(err: unknown, what: string): unknown {
  if (err instanceof BlobCorruptError || err instanceof BlobNotFoundError) return err;
  const status = statusOf(err);
  if (status === undefined || status >= 500)
    return new BlobStoreUnavailableError(`object storage unavailable (${what})`, { cause: err });
  return err;
}

/** Passes bytes through, hashing them; `digest()` once they have all gone by. */
function hasher(): Transform & { digest(): string } {
  const hash = createHash("sha256");
  const t = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  return Object.assign(t, { digest: () => hash.digest("hex") });
}

/**
 * Blobs in an S3 bucket under `<prefix><sha256>`, with the machine's cache (`BlobCache`) in front.
 *
 * How the blob lifecycle (packages/files/src/file-store.ts) maps onto a bucket:
 * - A put streams the content into the cache first (hashing it as it goes: the key is known only at the
 *   end), then uploads the cached file, hashing it again on the way up; bytes that no longer match their key
 *   are deleted and refused. Content already in the bucket is not sent again (HEAD first): a put of existing
 *   content is idempotent and `created: false`, as for the local store.
 * - The spare is the cache's private hard link to the bytes (not an object in the bucket). `settle`, run
 *   after the writer's rows are committed and removals under way waited out (the db-side blob locks, which
 *   protect rows whatever the store), HEADs the object and uploads it again from the spare if a concurrent
 *   removal deleted it. So a removal that counted no live row and a writer of the same content can race
 *   exactly as on disk, and the writer's settle puts the content back.
 * - A removal deletes the object only under `removeBlobIfUnused`'s lock, when no live row uses it (that rule
 *   lives in packages/db and is the same for both stores), and drops this machine's cached copy. Other
 *   machines' cached copies stay until evicted: they still hold the right bytes for the key, and a row that
 *   references the key again has put the content back in the bucket.
 * - S3 (and Swift on one replica) reads its own writes and deletes for objects, so a HEAD right after a PUT
 *   or DELETE sees it; the lifecycle needs nothing weaker.
 * - A failed upload registers nothing: the put throws before any row is written; lib-storage aborts an
 *   interrupted multipart upload. A put whose upload failed leaves its bytes in the cache only.
 * - Downloads come from the cache when it holds the blob, else stream from the bucket through a hash check
 *   that fails the stream with BlobCorruptError at the end if the bytes do not match (a range cannot be
 *   checked and is passed through).
 */
export function createS3BlobStore(opts: S3BlobStoreOptions): S3BlobStore {
  const { client, bucket, cache, log } = opts;
  const objectKey = (key: string) => {
    if (typeof key !== "string" || !isBlobKey(key)) throw new InvalidBlobKeyError(String(key));
    return `${opts.prefix}${key}`;
  };
  const fetching = new Map<string, Promise<boolean>>();

  /** The object's size, or null when there is none. */
  async function headSize(key: string): Promise<number | null> {
    try {
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey(key) }));
      return head.ContentLength ?? 0;
    } catch (err) {
      if (isMissing(err)) return null;
      throw unavailable(err, "head");
    }
  }

  /** Uploads a local file holding the blob's bytes, checking them against the key on the way. */
  async function upload(key: string, file: string): Promise<void> {
    const hash = hasher();
    const source = createReadStream(file);
    const body = source.pipe(hash);
    source.on("error", (err) => body.destroy(err));
    try {
      await new Upload({ client, params: { Bucket: bucket, Key: objectKey(key), Body: body } }).done();
    } catch (err) {
      throw unavailable(err, "upload");
    } finally {
      source.destroy();
    }
    const actual = hash.digest();
    if (actual !== key) {
      // Refused either way (BlobCorruptError below); an object left behind fails every read's sha256 check.
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(key) })).catch(() => undefined);
      throw new BlobCorruptError(key, actual);
    }
  }

  /** Makes sure the bucket has the blob; returns whether this call uploaded it. */
  async function ensureRemote(key: string, file: string, size: number): Promise<boolean> {
    // A stored object of another size is not this content (a torn write elsewhere): replace it.
    if ((await headSize(key)) === size) return false;
    await upload(key, file);
    return true;
  }

  /** After the cache took the content (with a spare link): into the bucket, then the caller's put result. */
  async function afterLocalPut(local: PutResult, keepSpare: boolean | undefined): Promise<PutResult> {
    const spare = local.spare;
    if (spare === undefined) throw new Error("cache put without a spare link");
    try {
      const created = await ensureRemote(local.key, spare, local.size);
      await cache.admit(local.key, local.size);
      const result: PutResult = { sha256: local.sha256, size: local.size, key: local.key, created };
      if (keepSpare) return { ...result, spare };
      await cache.release(local);
      return result;
    } catch (err) {
      // The put's own error is what the caller gets; a cache entry left unreleased or unadmitted is swept later.
      await cache.release(local).catch(() => undefined);
      await cache.admit(local.key, local.size).catch(() => undefined);
      throw err;
    }
  }

  /** Fetches the blob into the cache (once per key at a time); false when the bucket has no such object. */
  function fetchIntoCache(key: string): Promise<boolean> {
    let p = fetching.get(key);
    if (!p) {
      p = (async () => {
        let body: Readable;
        try {
          const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: objectKey(key) }));
          body = got.Body as Readable;
        } catch (err) {
          if (isMissing(err)) return false;
          throw unavailable(err, "get");
        }
        try {
          await cache.fill(key, body);
        } catch (err) {
          if (err instanceof BlobCorruptError) log?.error({ key }, "object in the bucket does not match its key");
          throw unavailable(err, "get");
        }
        return true;
      })().finally(() => fetching.delete(key));
      fetching.set(key, p);
    }
    return p;
  }

  /** A lease on the cached blob, fetching it first if needed; null when the bucket has no such object. */
  async function leaseLocal(key: string): Promise<PutResult | null> {
    objectKey(key);
    // Twice at most: a blob evicted between fetch and lease (a tiny cache under load) is fetched once more.
    for (let i = 0; i < 2; i++) {
      const l = await cache.lease(key);
      if (l) return l;
      if (!(await fetchIntoCache(key))) return null;
    }
    return cache.lease(key);
  }

  async function withLocal<T>(keys: readonly string[], use: (pathOf: LocalPathOf) => Promise<T>): Promise<T> {
    const unique = [...new Set(keys)];
    const leases = new Map<string, PutResult | null>();
    try {
      for (let i = 0; i < unique.length; i += FETCH_CONCURRENCY) {
        const batch = unique.slice(i, i + FETCH_CONCURRENCY);
        const got = await Promise.allSettled(batch.map((k) => leaseLocal(k)));
        got.forEach((g, j) => {
          if (g.status === "fulfilled") leases.set(batch[j]!, g.value);
        });
        const failed = got.find((g) => g.status === "rejected");
        if (failed) throw failed.reason;
      }
      return await use((key) => leases.get(key)?.spare ?? null);
    } finally {
      // Releasing is best effort: a lease left behind is swept with the cache; the caller's own result stands.
      for (const l of leases.values()) if (l) await cache.release(l).catch(() => undefined);
    }
  }

  async function openBlob(key: string, range: { start?: number; end?: number } = {}): Promise<Readable> {
    const l = await cache.lease(key);
    if (l?.spare) {
      // The descriptor keeps the bytes readable once the lease's link is gone.
      try {
        const fh = await open(l.spare, "r");
        return fh.createReadStream({ start: range.start, end: range.end });
      } finally {
        await cache.release(l);
      }
    }
    const ranged = range.start !== undefined || range.end !== undefined;
    let body: Readable;
    try {
      const got = await client.send(
        new GetObjectCommand({
          Bucket: bucket,
          Key: objectKey(key),
          ...(ranged ? { Range: `bytes=${range.start ?? 0}-${range.end ?? ""}` } : {}),
        }),
      );
      body = got.Body as Readable;
    } catch (err) {
      if (isMissing(err)) throw new BlobNotFoundError(key);
      throw unavailable(err, "get");
    }
    if (ranged) return body;
    const hash = createHash("sha256");
    const checked = new Transform({
      transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
        hash.update(chunk);
        cb(null, chunk);
      },
      flush(cb: TransformCallback) {
        const actual = hash.digest("hex");
        if (actual === key) return cb();
        log?.error({ key }, "object in the bucket does not match its key");
        cb(new BlobCorruptError(key, actual));
      },
    });
    // The failure reaches the reader through `checked` (destroyed with it); nothing else waits on this.
    void pipeline(body, checked).catch(() => undefined);
    return checked;
  }

  async function keepSpare(key: string): Promise<PutResult> {
    if ((await headSize(key)) === null) throw new BlobNotFoundError(key);
    const l = await leaseLocal(key);
    if (!l) throw new BlobNotFoundError(key);
    return { ...l, created: false };
  }

  async function settle(result: PutResult, o: { restore?: boolean } = {}): Promise<boolean> {
    if (!result.spare) return false;
    try {
      if (o.restore === false || (await headSize(result.key)) !== null) return false;
      await upload(result.key, result.spare);
      return true;
    } finally {
      // A lease not released stays until the cache's sweep; the settle's answer is what matters.
      await cache.release(result).catch(() => undefined);
    }
  }

  async function remove(key: string): Promise<boolean> {
    const existed = (await headSize(key)) !== null;
    try {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: objectKey(key) }));
    } catch (err) {
      if (!isMissing(err)) throw unavailable(err, "delete");
    }
    await cache.forget(key);
    return existed;
  }

  return {
    cache,
    put: async (readable: Readable, o: PutOptions = {}) =>
      afterLocalPut(await cache.store.put(readable, { maxBytes: o.maxBytes, keepSpare: true }), o.keepSpare),
    putFile: async (file: string, o: PutFileOptions = {}) =>
      afterLocalPut(await cache.store.putFile(file, { ...o, keepSpare: true }), o.keepSpare),
    has: async (key) => (await headSize(key)) !== null,
    open: openBlob,
    withLocal,
    remove,
    keepSpare,
    settle,
    removeStaleTemp: (olderThanMs, now) => cache.store.removeStaleTemp(olderThanMs, now),
    close: () => client.destroy(),
  };
}
