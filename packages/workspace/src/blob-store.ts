import { createHash, randomBytes } from "node:crypto";
import { constants as fsc, createWriteStream } from "node:fs";
import type { ReadStream } from "node:fs";
import { link, lstat, mkdir, open, readdir, readlink, realpath, rename, stat, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { once } from "node:events";
import { Transform } from "node:stream";
import type { Readable, TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";

/** Thrown by `put`/`putFile` when the content exceeds `maxBytes`; the temp file is removed. */
export class BlobTooLargeError extends Error {
  override readonly name = "BlobTooLargeError";
  readonly code = "blob_too_large";
  constructor(readonly maxBytes: number) {
    super(`blob exceeds ${maxBytes} bytes`);
  }
}

/** Thrown for a key that is not a lowercase sha256 hex digest. */
export class InvalidBlobKeyError extends Error {
  override readonly name = "InvalidBlobKeyError";
  readonly code = "invalid_blob_key";
  constructor(readonly key: string) {
    super(`not a blob key: ${JSON.stringify(key)}`);
  }
}

/** Thrown by `open` for a key that is not stored. */
export class BlobNotFoundError extends Error {
  override readonly name = "BlobNotFoundError";
  readonly code = "blob_not_found";
  constructor(readonly key: string) {
    super(`blob not found: ${key}`);
  }
}

/**
 * Thrown when stored bytes do not hash to their key: an object corrupted in the bucket, or a cache fill
 * (`PutOptions.expectSha256`) that received other bytes. Never served as if it were the blob.
 */
export class BlobCorruptError extends Error {
  override readonly name = "BlobCorruptError";
  readonly code = "blob_corrupt";
  constructor(
    readonly key: string,
    readonly actualSha256: string,
  ) {
    super(`stored content of blob ${key} hashes to ${actualSha256}`);
  }
}

/** Thrown when a remote blob store (S3) cannot be reached or answers with a server error: retry later. */
export class BlobStoreUnavailableError extends Error {
  override readonly name = "BlobStoreUnavailableError";
  readonly code = "blob_store_unavailable";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Thrown by `putFile` when the path is not a regular file: a symlink (never followed), a directory, a FIFO. */
export class NotARegularFileError extends Error {
  override readonly name = "NotARegularFileError";
  readonly code = "not_a_regular_file";
  constructor(readonly file: string) {
    super(`not a regular file: ${file}`);
  }
}

/** Thrown by `putFile` when the opened file is not the inode `expect.ino` names: it was replaced since. */
export class FileReplacedError extends Error {
  override readonly name = "FileReplacedError";
  readonly code = "file_replaced";
  constructor(
    readonly file: string,
    readonly expectedIno: number,
    readonly actualIno: number,
  ) {
    super(`file was replaced (inode ${expectedIno} is now ${actualIno}): ${file}`);
  }
}

/** Thrown by `putFile` when the opened file's size is not `expect.size`: it was written to since. */
export class FileSizeChangedError extends Error {
  override readonly name = "FileSizeChangedError";
  readonly code = "file_size_changed";
  constructor(
    readonly file: string,
    readonly expectedSize: number,
    readonly actualSize: number,
  ) {
    super(`file size changed (${expectedSize} is now ${actualSize} bytes): ${file}`);
  }
}

/** Thrown by `putFile` when the opened file does not really lie under `within` (a parent was swapped for a symlink). */
export class OutsideDirectoryError extends Error {
  override readonly name = "OutsideDirectoryError";
  readonly code = "outside_directory";
  constructor(
    readonly file: string,
    readonly dir: string,
  ) {
    super(`file is not under ${dir}: ${file}`);
  }
}

export interface PutResult {
  sha256: string;
  size: number;
  /** Equal to `sha256`; pass it to `pathOf`/`open`/`has`/`remove`. */
  key: string;
  /** False when the same content was already stored. */
  created: boolean;
  /**
   * With `keepSpare`: a second link to the same bytes in the temp directory, for `settle` to put the blob
   * back from if it is removed before the caller's file row is committed.
   */
  spare?: string;
}

export interface PutOptions {
  maxBytes?: number;
  /** The bytes must hash to this (a cache filled from a remote store), else BlobCorruptError and nothing is kept. */
  expectSha256?: string;
  /** Keep a spare link to the content until `settle` (see `PutResult.spare`). */
  keepSpare?: boolean;
}

export interface PutFileOptions extends PutOptions {
  /**
   * Refuse unless the opened file still has this inode (else FileReplacedError) / size (else
   * FileSizeChangedError), e.g. from a snapshot entry.
   */
  expect?: { ino?: number; size?: number };
  /**
   * The opened file must really lie under this directory. O_NOFOLLOW guards only the last path component:
   * code could swap a parent directory for a symlink between a snapshot and the copy. On Linux the opened
   * descriptor's real path (/proc/self/fd) tells where it actually is; a file elsewhere is refused with
   * OutsideDirectoryError.
   */
  within?: string;
}

/** Resolves a key to a local path holding its bytes for the duration of `withLocal`'s callback; null = missing. */
export type LocalPathOf = (key: string) => string | null;

export interface BlobStore {
  put(readable: Readable, opts?: PutOptions): Promise<PutResult>;
  putFile(file: string, opts?: PutFileOptions): Promise<PutResult>;
  has(key: string): Promise<boolean>;
  open(key: string, opts?: { start?: number; end?: number }): Promise<Readable>;
  /**
   * Runs `use` with the blobs' bytes at local paths, valid until `use` settles (a remote store fetches them
   * into its cache first, verified against their keys). A key whose content is missing maps to null.
   */
  withLocal<T>(keys: readonly string[], use: (pathOf: LocalPathOf) => Promise<T>): Promise<T>;
  remove(key: string): Promise<boolean>;
  /**
   * For a new file row referencing a blob already stored (a copy of another file): a spare link to it, as
   * `put` with `keepSpare` gives, to `settle` once the row is committed. BlobNotFoundError if it is gone.
   */
  keepSpare(key: string): Promise<PutResult>;
  /**
   * Ends a `keepSpare` put once the file row referencing the blob is committed and no removal of it can
   * still be under way: puts the blob back from the spare if it was removed meanwhile, then drops the spare.
   * Returns whether it had to put it back. With `restore: false` (the row was never written) it only drops it.
   */
  settle(result: PutResult, opts?: { restore?: boolean }): Promise<boolean>;
  /**
   * Removes temp files (partial writes, spares) neither written nor linked for `olderThanMs`: left by a process
   * that died.
   */
  removeStaleTemp(olderThanMs: number, now?: number): Promise<number>;
  /** Lets go of connections (a remote store's client); the store is not used after. */
  close(): void;
}

/** The blobs on this machine's disk, in a directory of their own: the default store, and a remote store's cache. */
export interface LocalBlobStore extends BlobStore {
  /** `<dataDir>/blobs` */
  readonly root: string;
  pathOf(key: string): string;
  open(key: string, opts?: { start?: number; end?: number }): Promise<ReadStream>;
}

/** `withLocal` for one blob: BlobNotFoundError when its content is missing. */
export function withLocalBlob<T>(blobs: BlobStore, key: string, use: (file: string) => Promise<T>): Promise<T> {
  return blobs.withLocal([key], (pathOf) => {
    const file = pathOf(key);
    if (file === null) throw new BlobNotFoundError(key);
    return use(file);
  });
}

const KEY = /^[0-9a-f]{64}$/;

export const isBlobKey = (key: string): boolean => KEY.test(key);

const FLUSH_EVERY = 64 * 1024 * 1024;

async function writeAll(out: FileHandle, chunk: Buffer): Promise<void> {
  for (let off = 0; off < chunk.length;) off += (await out.write(chunk, off, chunk.length - off)).bytesWritten;
}

function isCode(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException | undefined)?.code ?? "");
}

/**
 * Content-addressed storage under `<dataDir>/blobs/<aa>/<bb>/<sha256>`. Blobs are written once through a
 * temp file in `<dataDir>/blobs/tmp` (same file system), fsynced, made read-only (0444) and renamed into
 * place; identical content is stored once. Everything streams: memory use does not depend on blob size.
 */
async function openedWithin(fd: number, dir: string): Promise<boolean> {
  let real: string;
  try {
    real = await readlink(`/proc/self/fd/${fd}`);
  } catch {
    // No /proc (not Linux): fall back to resolving the directory and trusting O_NOFOLLOW.
    return true;
  }
  const root = await realpath(dir);
  return real.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

export function createBlobStore(dataDir: string, opts: { root?: string } = {}): LocalBlobStore {
  const root = opts.root ?? path.join(path.resolve(dataDir), "blobs");
  const tmpDir = path.join(root, "tmp");

  function pathOf(key: string): string {
    if (typeof key !== "string" || !KEY.test(key)) throw new InvalidBlobKeyError(String(key));
    return path.join(root, key.slice(0, 2), key.slice(2, 4), key);
  }

  async function fsyncDir(dir: string): Promise<void> {
    try {
      const fh = await open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch {
      // best effort: not every file system allows fsync on a directory
    }
  }

  let tmpDirMade: Promise<unknown> | null = null;

  async function mkdirTmp(): Promise<void> {
    tmpDirMade ??= mkdir(tmpDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      tmpDirMade = null;
      throw err;
    });
    await tmpDirMade;
  }

  /** Fill a fresh temp file (same file system), then fsync, make it 0444 and move (or link) it into place. */
  async function store(
    fill: (tmp: string) => Promise<{ sha256: string; size: number }>,
    opts: { synced?: boolean; keepSpare?: boolean; expectSha256?: string } = {},
  ): Promise<PutResult> {
    await mkdirTmp();
    const tmp = path.join(tmpDir, `${Date.now()}-${randomBytes(8).toString("hex")}.part`);
    try {
      const { sha256, size } = await fill(tmp);
      if (opts.expectSha256 !== undefined && sha256 !== opts.expectSha256)
        throw new BlobCorruptError(opts.expectSha256, sha256);
      if (!opts.synced) {
        // fsync through a fresh descriptor (flushes the inode's dirty data), and make it read-only.
        const fh = await open(tmp, fsc.O_RDONLY);
        try {
          await fh.sync();
          await fh.chmod(0o444);
        } finally {
          await fh.close();
        }
      }
      const dest = pathOf(sha256);
      const spare = opts.keepSpare ? { spare: tmp } : {};
      if (await exists(dest)) {
        if (!opts.keepSpare) await unlink(tmp);
        return { sha256, size, key: sha256, created: false, ...spare };
      }
      await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
      const created = await place(tmp, dest, !!opts.keepSpare);
      return { sha256, size, key: sha256, created, ...spare };
    } catch (err) {
      // The temp directory is made once per store; if it went away, the next call makes it again.
      if (isCode(err, "ENOENT")) tmpDirMade = null;
      // Best effort: a leftover temp file is removed by the store's sweep.
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Moves the temp file to `dest`, or links it there keeping the temp name as a spare; an identical blob put
   * there concurrently wins (same bytes). Returns whether this call created it.
   */
  async function place(tmp: string, dest: string, keepSpare: boolean): Promise<boolean> {
    try {
      if (keepSpare) await link(tmp, dest);
      else await rename(tmp, dest);
    } catch (err) {
      if (!isCode(err, "EEXIST")) throw err;
      if (!keepSpare) await unlink(tmp);
      return false;
    }
    await fsyncDir(path.dirname(dest));
    return true;
  }

  async function settle(result: PutResult, opts: { restore?: boolean } = {}): Promise<boolean> {
    if (!result.spare) return false;
    try {
      if (opts.restore === false || (await has(result.key))) return false;
      const dest = pathOf(result.key);
      await mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
      return await place(result.spare, dest, true);
    } finally {
      // Best effort: a leftover spare link is removed by the store's sweep.
      await unlink(result.spare).catch(() => undefined);
    }
  }

  async function keepSpare(key: string): Promise<PutResult> {
    const blob = pathOf(key);
    await mkdirTmp();
    const spare = path.join(tmpDir, `${Date.now()}-${randomBytes(8).toString("hex")}.part`);
    try {
      await link(blob, spare);
    } catch (err) {
      if (isCode(err, "ENOENT") && !(await has(key))) throw new BlobNotFoundError(key);
      // The temp directory went away: the next call makes it again.
      if (isCode(err, "ENOENT")) tmpDirMade = null;
      throw err;
    }
    const { size } = await lstat(spare);
    return { sha256: key, size, key, created: false, spare };
  }

  async function put(readable: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const maxBytes = opts.maxBytes ?? Infinity;
    // The source may be destroyed with an error (a client hanging up) before the pipeline below listens:
    // unheard, that 'error' would crash the process. The pipeline still gets it from the stream's state.
    const heard = () => undefined;
    readable.on("error", heard);
    try {
      return await store(
        async (tmp) => {
          const hash = createHash("sha256");
          let size = 0;
          const meter = new Transform({
            transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
              size += chunk.length;
              if (size > maxBytes) return cb(new BlobTooLargeError(maxBytes));
              hash.update(chunk);
              cb(null, chunk);
            },
          });
          const out = createWriteStream(tmp, { flags: "wx", mode: 0o600 });
          try {
            await pipeline(readable, meter, out);
          } catch (err) {
            // A source that fails first leaves the temp file still being opened: wait for it to close, or
            // the caller's unlink runs before the open creates it and the file is left behind.
            if (!out.closed) await once(out, "close").catch(() => undefined);
            throw err;
          }
          return { sha256: hash.digest("hex"), size };
        },
        { keepSpare: opts.keepSpare, expectSha256: opts.expectSha256 },
      );
    } finally {
      readable.off("error", heard);
      if (!readable.destroyed) readable.destroy();
    }
  }

  /**
   * Copy from an open file into the temp file through two reused buffers: while one buffer is hashed (on
   * this thread), the next read and the previous write run in the thread pool, so a large file costs about
   * max(hash, I/O) rather than their sum. Unlike a stream pipeline, which allocates a chunk per read and
   * leaves freeing them to the GC (tens of MB of RSS for a 1 GiB file), memory stays flat. The hash is of
   * exactly the bytes written, so a blob always matches its key even if the source changes meanwhile.
   */
  async function copyFrom(
    src: FileHandle,
    tmp: string,
    maxBytes: number,
    sizeHint: number,
  ): Promise<{ sha256: string; size: number }> {
    const out = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      const len = Math.min(Math.max(sizeHint + 1, 64 * 1024), 4 * 1024 * 1024);
      const bufs = [Buffer.allocUnsafe(len), Buffer.allocUnsafe(len)] as const;
      const hash = createHash("sha256");
      let size = 0;
      let writing: Promise<void> = Promise.resolve();
      // A big file is flushed to disk as it is written (one fdatasync in flight at a time), so the final
      // fsync does not start the whole writeback only after the last byte.
      let flushing: Promise<void> = Promise.resolve();
      let flushed = 0;
      let reading = src.read(bufs[0], 0, len, null);
      for (let i = 0; ; i++) {
        const { bytesRead } = await reading;
        if (bytesRead === 0) break;
        size += bytesRead;
        if (size > maxBytes) throw new BlobTooLargeError(maxBytes);
        const chunk = bufs[i % 2]!.subarray(0, bytesRead);
        // The other buffer is free once its write is done.
        await writing;
        if (size - flushed >= FLUSH_EVERY) {
          await flushing;
          flushed = size - bytesRead;
          flushing = out.datasync();
        }
        reading = src.read(bufs[(i + 1) % 2]!, 0, len, null);
        writing = writeAll(out, chunk);
        hash.update(chunk);
      }
      await writing;
      await flushing;
      // fsync here, on the descriptor that wrote it, and make it read-only.
      await out.sync();
      await out.chmod(0o444);
      return { sha256: hash.digest("hex"), size };
    } finally {
      await out.close();
    }
  }

  async function putFile(file: string, opts: PutFileOptions = {}): Promise<PutResult> {
    // O_NOFOLLOW: never read through a symlink code planted; O_NONBLOCK: never hang on a FIFO.
    let fh;
    try {
      fh = await open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    } catch (err) {
      if (isCode(err, "ELOOP", "EMLINK")) throw new NotARegularFileError(file);
      throw err;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new NotARegularFileError(file);
      if (opts.expect?.ino !== undefined && opts.expect.ino !== st.ino)
        throw new FileReplacedError(file, opts.expect.ino, st.ino);
      if (opts.within !== undefined && !(await openedWithin(fh.fd, opts.within)))
        throw new OutsideDirectoryError(file, opts.within);
      if (opts.expect?.size !== undefined && opts.expect.size !== st.size)
        throw new FileSizeChangedError(file, opts.expect.size, st.size);
      const maxBytes = opts.maxBytes ?? Infinity;
      if (st.size > maxBytes) throw new BlobTooLargeError(maxBytes);
      const src = fh;
      return await store((tmp) => copyFrom(src, tmp, maxBytes, st.size), {
        synced: true,
        keepSpare: opts.keepSpare,
        expectSha256: opts.expectSha256,
      });
    } finally {
      await fh.close();
    }
  }

  async function exists(p: string): Promise<boolean> {
    try {
      await lstat(p);
      return true;
    } catch (err) {
      if (isCode(err, "ENOENT")) return false;
      throw err;
    }
  }

  async function has(key: string): Promise<boolean> {
    try {
      return (await stat(pathOf(key))).isFile();
    } catch (err) {
      if (isCode(err, "ENOENT")) return false;
      throw err;
    }
  }

  async function openBlob(key: string, opts: { start?: number; end?: number } = {}): Promise<ReadStream> {
    let fh;
    try {
      fh = await open(pathOf(key), fsc.O_RDONLY);
    } catch (err) {
      if (isCode(err, "ENOENT")) throw new BlobNotFoundError(key);
      throw err;
    }
    return fh.createReadStream({ start: opts.start, end: opts.end });
  }

  async function remove(key: string): Promise<boolean> {
    try {
      await unlink(pathOf(key));
      return true;
    } catch (err) {
      if (isCode(err, "ENOENT")) return false;
      throw err;
    }
  }

  async function removeStaleTemp(olderThanMs: number, now = Date.now()): Promise<number> {
    let names: string[];
    try {
      names = await readdir(tmpDir);
    } catch (err) {
      if (isCode(err, "ENOENT")) return 0;
      throw err;
    }
    let removed = 0;
    for (const name of names) {
      const file = path.join(tmpDir, name);
      const st = await lstat(file).catch(() => null);
      // A spare is a hard link to its blob: it has the blob's mtime, however old, but linking moved its ctime.
      if (!st || now - Math.max(st.mtimeMs, st.ctimeMs) < olderThanMs) continue;
      if (
        await unlink(file).then(
          () => true,
          () => false,
        )
      )
        removed++;
    }
    return removed;
  }

  async function withLocal<T>(keys: readonly string[], use: (pathOf: LocalPathOf) => Promise<T>): Promise<T> {
    const present = new Map<string, string | null>();
    for (const key of keys) if (!present.has(key)) present.set(key, (await has(key)) ? pathOf(key) : null);
    return use((key) => present.get(key) ?? null);
  }

  return {
    root,
    put,
    putFile,
    pathOf,
    has,
    open: openBlob,
    withLocal,
    remove,
    keepSpare,
    settle,
    removeStaleTemp,
    close: () => undefined,
  };
}
