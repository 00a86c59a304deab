import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  BlobNotFoundError,
  BlobTooLargeError,
  FileReplacedError,
  FileSizeChangedError,
  InvalidBlobKeyError,
  NotARegularFileError,
  OutsideDirectoryError,
  createBlobStore,
} from "../src/index";

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "ws-blob-"));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const sha = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");

describe("blob store", () => {
  it("stores content-addressed, read-only, and dedupes", async () => {
    const store = createBlobStore(dataDir);
    const a = await store.put(Readable.from([Buffer.from("hello "), Buffer.from("world")]));
    expect(a).toEqual({ sha256: sha("hello world"), size: 11, key: sha("hello world"), created: true });
    const p = store.pathOf(a.key);
    expect(p).toBe(path.join(dataDir, "blobs", a.key.slice(0, 2), a.key.slice(2, 4), a.key));
    expect(await readFile(p, "utf8")).toBe("hello world");
    expect((await stat(p)).mode & 0o777).toBe(0o444);

    const b = await store.put(Readable.from([Buffer.from("hello world")]));
    expect(b).toMatchObject({ key: a.key, created: false });
    expect(await readdir(path.join(dataDir, "blobs", "tmp"))).toEqual([]);

    expect(await store.has(a.key)).toBe(true);
    expect(await text(await store.open(a.key))).toBe("hello world");
    expect(await text(await store.open(a.key, { start: 6, end: 10 }))).toBe("world");
    expect(await store.remove(a.key)).toBe(true);
    expect(await store.remove(a.key)).toBe(false);
    expect(await store.has(a.key)).toBe(false);
    await expect(store.open(a.key)).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it("stores empty content", async () => {
    const store = createBlobStore(dataDir);
    const r = await store.put(Readable.from([]));
    expect(r).toMatchObject({ size: 0, sha256: sha("") });
  });

  it("aborts beyond maxBytes with BlobTooLargeError and leaves no temp file", async () => {
    const store = createBlobStore(dataDir);
    const chunks = Array.from({ length: 10 }, () => Buffer.alloc(1024, 1));
    await expect(store.put(Readable.from(chunks), { maxBytes: 4096 })).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await readdir(path.join(dataDir, "blobs", "tmp"))).toEqual([]);
    const ok = await store.put(Readable.from([Buffer.alloc(4096)]), { maxBytes: 4096 });
    expect(ok.size).toBe(4096);
  });

  it("removes the temp file when the source stream fails", async () => {
    const store = createBlobStore(dataDir);
    const failing = new Readable({
      read() {
        this.destroy(new Error("boom"));
      },
    });
    await expect(store.put(failing)).rejects.toThrow("boom");
    expect(await readdir(path.join(dataDir, "blobs", "tmp"))).toEqual([]);
  });

  it("leaves no temp file when the source fails before the temp file is even open (a client dropping an upload)", async () => {
    const store = createBlobStore(dataDir);
    const tmp = path.join(dataDir, "blobs", "tmp");
    for (let i = 0; i < 20; i++) {
      const dropped = new Readable({ read() {} });
      const put = store.put(dropped);
      dropped.destroy(new Error("upload aborted"));
      await expect(put).rejects.toThrow("upload aborted");
      // A stored blob afterwards lets any late open of the failed put's temp file land first.
      await store.put(Readable.from([Buffer.from(`after ${i}`)]));
      expect(await readdir(tmp)).toEqual([]);
    }
  });

  it("a kept spare puts back a blob removed before the caller settled, new or deduplicated, and is then dropped", async () => {
    const store = createBlobStore(dataDir);
    const tmp = path.join(dataDir, "blobs", "tmp");
    const first = await store.put(Readable.from([Buffer.from("spare me")]), { keepSpare: true });
    expect(first.created).toBe(true);
    const again = await store.put(Readable.from([Buffer.from("spare me")]), { keepSpare: true });
    expect(again.created).toBe(false);
    expect(await readdir(tmp)).toHaveLength(2);

    await store.remove(first.key);
    expect(await store.settle(first)).toBe(true);
    expect(await readFile(store.pathOf(first.key), "utf8")).toBe("spare me");
    // Already back: the second spare is only dropped.
    expect(await store.settle(again)).toBe(false);
    expect(await readdir(tmp)).toEqual([]);

    const unused = await store.putFile(await writeSource("not kept"), { keepSpare: true });
    await store.remove(unused.key);
    expect(await store.settle(unused, { restore: false })).toBe(false);
    expect(await store.has(unused.key)).toBe(false);
    expect(await readdir(tmp)).toEqual([]);
  });

  it("removes temp files a dead process left a day ago, and nothing newer", async () => {
    const store = createBlobStore(dataDir);
    const left = await store.put(Readable.from([Buffer.from("left behind")]), { keepSpare: true });
    expect(await store.removeStaleTemp(24 * 3600_000)).toBe(0);
    // (A file's ctime cannot be set back: the sweep is asked as it would be a day and an hour from now.)
    expect(await store.removeStaleTemp(24 * 3600_000, Date.now() + 25 * 3600_000)).toBe(1);
    expect(await readdir(path.join(dataDir, "blobs", "tmp"))).toEqual([]);
    expect(await readFile(store.pathOf(left.key), "utf8")).toBe("left behind");
  });

  it("keeps a spare just linked to a blob stored days ago (the link has the blob's old mtime)", async () => {
    const store = createBlobStore(dataDir);
    const stored = await store.put(Readable.from([Buffer.from("stored long ago")]));
    const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
    await utimes(store.pathOf(stored.key), twoDaysAgo, twoDaysAgo);
    const spare = await store.keepSpare(stored.key);
    // (utimes goes through seconds as a float: the ms can come back as x.999.)
    expect((await stat(spare.spare!)).mtimeMs).toBeCloseTo(twoDaysAgo.getTime(), 0);
    expect(await store.removeStaleTemp(24 * 3600_000)).toBe(0);
    expect(await readdir(path.join(dataDir, "blobs", "tmp"))).toEqual([path.basename(spare.spare!)]);
  });

  it("rejects keys that are not sha256 hex", () => {
    const store = createBlobStore(dataDir);
    expect(() => store.pathOf("../../etc/passwd")).toThrow(InvalidBlobKeyError);
    expect(() => store.pathOf("A".repeat(64))).toThrow(InvalidBlobKeyError);
  });

  it("putFile streams a file and refuses symlinks, replaced files and changed sizes, each with its own error", async () => {
    const store = createBlobStore(dataDir);
    const file = path.join(dataDir, "in.bin");
    await writeFile(file, "payload");
    const r = await store.putFile(file, { expect: { ino: (await stat(file)).ino, size: 7 } });
    expect(r).toMatchObject({ sha256: sha("payload"), size: 7 });
    await symlink(file, path.join(dataDir, "link"));
    await expect(store.putFile(path.join(dataDir, "link"))).rejects.toBeInstanceOf(NotARegularFileError);
    await expect(store.putFile(dataDir)).rejects.toBeInstanceOf(NotARegularFileError);
    const replaced = store.putFile(file, { expect: { ino: 1 } });
    await expect(replaced).rejects.toBeInstanceOf(FileReplacedError);
    await expect(replaced).rejects.not.toBeInstanceOf(NotARegularFileError);
    await expect(store.putFile(file, { expect: { size: 8 } })).rejects.toBeInstanceOf(FileSizeChangedError);
    await expect(store.putFile(file, { maxBytes: 3 })).rejects.toBeInstanceOf(BlobTooLargeError);
  });

  it("putFile of a large file keeps memory flat", async () => {
    const store = createBlobStore(dataDir);
    const file = path.join(dataDir, "big.bin");
    const size = 128 * 1024 * 1024;
    const fh = await open(file, "w");
    await fh.truncate(size); // sparse: fast to create, still read in full
    await fh.close();
    const rssBefore = process.memoryUsage().rss;
    let peak = rssBefore;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    let key: string;
    try {
      const r = await store.putFile(file);
      expect(r.size).toBe(size);
      key = r.key;
    } finally {
      clearInterval(timer);
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(peak - rssBefore).toBeLessThan(16 * 1024 * 1024);
    const h = createHash("sha256");
    for await (const c of createReadStream(file)) h.update(c as Buffer);
    expect(key).toBe(h.digest("hex"));
    expect((await stat(store.pathOf(key))).size).toBe(size);
  }, 30_000);
});

describe("keepSpare of a stored blob", () => {
  it("links a spare to the stored bytes for settle to put back, and refuses a missing blob", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "ci-spare-"));
    const store = createBlobStore(dataDir);
    const put = await store.put(Readable.from([Buffer.from("shared")]));
    const spare = await store.keepSpare(put.key);
    expect(spare).toMatchObject({ key: put.key, sha256: put.key, size: 6, created: false });
    await store.remove(put.key);
    expect(await store.settle(spare)).toBe(true);
    expect(await readFile(store.pathOf(put.key), "utf8")).toBe("shared");
    expect(await readdir(path.join(dataDir, "blobs", "tmp"))).toEqual([]);
    await store.remove(put.key);
    await expect(store.keepSpare(put.key)).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await readdir(path.join(dataDir, "blobs", "tmp"))).toEqual([]);
  });
});

describe("putFile within a directory", () => {
  it("refuses a file reached through a parent directory swapped for a symlink", async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), "ci-within-"));
    const ws = path.join(base, "ws");
    const outside = path.join(base, "outside");
    await mkdir(ws);
    await mkdir(outside);
    await writeFile(path.join(outside, "secret.txt"), "secret");
    await symlink(outside, path.join(ws, "out"));
    const store = createBlobStore(path.join(base, "data"));
    await expect(store.putFile(path.join(ws, "out", "secret.txt"), { within: ws })).rejects.toThrow(
      OutsideDirectoryError,
    );
    await writeFile(path.join(ws, "fine.txt"), "ok");
    await expect(store.putFile(path.join(ws, "fine.txt"), { within: ws })).resolves.toMatchObject({ size: 2 });
  });
});

async function writeSource(content: string): Promise<string> {
  const file = path.join(dataDir, `src-${sha(content).slice(0, 8)}`);
  await writeFile(file, content);
  return file;
}
