import { createHash } from "node:crypto";
import fs, { constants as fsc } from "node:fs";
import { open } from "node:fs/promises";
import type { Stats } from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { setImmediate } from "node:timers/promises";
import picomatch from "picomatch";

export type SkipReason =
  | "symlink"
  | "too_large"
  | "limit_count"
  | "limit_bytes"
  | "excluded"
  | "special"
  | "outside"
  | "too_deep"
  | "invalid_name";

export interface Skipped {
  /** Relative to the workspace root, posix separators. */
  path: string;
  reason: SkipReason;
}

export interface SnapshotEntry {
  /** Relative to the workspace root, posix separators. */
  path: string;
  size: number;
  /** Sub-millisecond precision where the file system has it. */
  mtimeMs: number;
  /** Status-change time: moves on every write and cannot be set back by code (unlike mtime via utime). */
  ctimeMs: number;
  ino: number;
  dev: number;
  /** Permission bits only (`st_mode & 0o7777`). */
  mode: number;
  /** sha256 hex of the content, only where computed (see {@link SnapshotOptions.hash}). */
  hash?: string;
}

export interface Snapshot {
  /** Real path of the walked root. */
  root: string;
  /** When the walk started (`Date.now()`). */
  takenAtMs: number;
  /** Regular files only, keyed by relative posix path. */
  files: Map<string, SnapshotEntry>;
  /** Entries not included, first {@link SnapshotOptions.maxSkipped} only; `skippedCount` is the real count. */
  skipped: Skipped[];
  skippedCount: number;
  /** Directory entries looked at (files, dirs, links, excluded ones). */
  walked: number;
  /** The walk stopped at `maxEntries`: `files` is incomplete. */
  truncated: boolean;
}

export interface SnapshotOptions {
  /** Only files whose relative path matches one of these globs (picomatch, `dot: true`) are included. */
  include?: readonly string[];
  /** Files and directories matching one of these globs are skipped (directories are not descended). */
  exclude?: readonly string[];
  /** Include dot files and dot directories (default false). Cache dirs and `*.pyc` stay excluded. */
  includeHidden?: boolean;
  /** Stop after looking at this many directory entries (default 100 000). */
  maxEntries?: number;
  /** Do not descend deeper than this many directory levels (default 32). */
  maxDepth?: number;
  /** Length cap of `skipped` (default 1000). */
  maxSkipped?: number;
  /**
   * Content hashing: `"none"`; `"all"`; or `"racy"` (default): hash only files whose mtime or ctime lies
   * within `racyWindowMs` of the walk start (their metadata cannot prove a later same-size rewrite), and,
   * when `previous` is given, files whose metadata equal a previous entry that carries a hash.
   */
  hash?: "none" | "racy" | "all";
  racyWindowMs?: number;
  /** Files bigger than this are never hashed (default 64 MiB). */
  maxHashBytes?: number;
  /**
   * The snapshot this one will be compared to (the "before"): this one is then an "after", and `hash: "racy"`
   * reads only files whose metadata equal a previous entry that carries a hash (only their content can tell
   * them apart). A new file, or one whose metadata moved, is reported whatever its content.
   */
  previous?: Snapshot;
  /**
   * Content hashes already known, by relative path, for the inode they were computed for (e.g. attachments
   * just copied from their blob): such a file is not read again while its inode is that one.
   */
  known?: ReadonlyMap<string, { ino: number; sha256: string }>;
}

/** Directory and file names skipped by default, wherever they are. */
export const DEFAULT_EXCLUDED_NAMES: readonly string[] = [
  "__pycache__",
  ".ipynb_checkpoints",
  ".cache",
  "node_modules",
];
const DEFAULT_EXCLUDED_SUFFIXES = [".pyc", ".pyo"];

function isDefaultExcluded(name: string, includeHidden: boolean): boolean {
  if (DEFAULT_EXCLUDED_NAMES.includes(name)) return true;
  if (DEFAULT_EXCLUDED_SUFFIXES.some((s) => name.endsWith(s))) return true;
  return !includeHidden && name.startsWith(".");
}

const SMALL_FILE = 1024 * 1024;

/** sha256 of a regular file, opened without following a final symlink. */
export async function hashFile(file: string): Promise<{ sha256: string; size: number; ino: number }> {
  const fh = await open(file, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw Object.assign(new Error(`not a regular file: ${file}`), { code: "EINVAL" });
    if (st.size <= SMALL_FILE) {
      // One read instead of a stream: most files a snapshot hashes are small.
      const buf = await fh.readFile();
      return { sha256: createHash("sha256").update(buf).digest("hex"), size: buf.length, ino: st.ino };
    }
    const hash = createHash("sha256");
    let size = 0;
    await pipeline(fh.createReadStream({ autoClose: false }), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.length;
      }
    });
    return { sha256: hash.digest("hex"), size, ino: st.ino };
  } finally {
    await fh.close();
  }
}

/** Directory entries looked at per turn of the event loop. */
const WALK_SLICE = 200;

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // read-only descriptor: nothing is lost
  }
}

function sameMetadata(a: SnapshotEntry, b: Pick<SnapshotEntry, "size" | "mtimeMs" | "ctimeMs" | "ino">): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino;
}

/**
 * Walk a workspace with lstat and record its regular files. Symlinks are never followed nor included
 * (reported as `symlink`); FIFOs, sockets and devices are `special`; another file system mounted inside
 * the root is `outside`; default-excluded and pattern-excluded entries are `excluded`.
 */
export async function snapshotWorkspace(root: string, opts: SnapshotOptions = {}): Promise<Snapshot> {
  const takenAtMs = Date.now();
  // The walk is metadata syscalls of a few microseconds each, made synchronously (as placement does, see
  // prepare.ts) in slices that give the event loop back: through the thread pool each one was a round trip
  // of its own, and an empty workspace's two snapshots per execution were ~16 of them on the warm path.
  const realRoot = fs.realpathSync.native(root);
  const rootStat = fs.lstatSync(realRoot);
  if (!rootStat.isDirectory()) throw new Error(`not a directory: ${root}`);

  const maxEntries = opts.maxEntries ?? 100_000;
  const maxDepth = opts.maxDepth ?? 32;
  const maxSkipped = opts.maxSkipped ?? 1000;
  const includeHidden = opts.includeHidden ?? false;
  const hashMode = opts.hash ?? "racy";
  // ext4, xfs and btrfs keep nanosecond timestamps that advance every clock tick (1-10 ms): a rewrite more
  // than a tick after the snapshot always moves mtime/ctime. 50 ms covers the tick with a wide margin.
  const racyWindowMs = opts.racyWindowMs ?? 50;
  const maxHashBytes = opts.maxHashBytes ?? 64 * 1024 * 1024;
  const pmOpts = { dot: true };
  const isIncluded = opts.include?.length ? picomatch(opts.include as string[], pmOpts) : () => true;
  const isExcluded = opts.exclude?.length ? picomatch(opts.exclude as string[], pmOpts) : () => false;

  const snap: Snapshot = {
    root: realRoot,
    takenAtMs,
    files: new Map(),
    skipped: [],
    skippedCount: 0,
    walked: 0,
    truncated: false,
  };
  const skip = (p: string, reason: SkipReason): void => {
    snap.skippedCount++;
    if (snap.skipped.length < maxSkipped) snap.skipped.push({ path: p, reason });
  };

  const toHash: SnapshotEntry[] = [];
  let sinceYield = 0;
  // Depth-first, iterative; `opendir` streams entries, so a directory with millions of names is never
  // read into memory in full.
  const stack: Array<{ abs: string; rel: string; depth: number; dev: number; ino: number }> = [
    { abs: realRoot, rel: "", depth: 0, dev: rootStat.dev, ino: rootStat.ino },
  ];
  walk: while (stack.length > 0) {
    const dir = stack.pop()!;
    // Code may swap a directory for a symlink between our lstat and the listing: open it without following
    // symlinks, check it is still the directory we saw, and list it through that descriptor.
    let fd: number | undefined;
    let handle: fs.Dir;
    try {
      fd = fs.openSync(dir.abs, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      const now = fs.fstatSync(fd);
      if (now.dev !== dir.dev || now.ino !== dir.ino) {
        fs.closeSync(fd);
        skip(dir.rel, "symlink");
        continue;
      }
      handle = fs.opendirSync(`/proc/self/fd/${fd}`);
    } catch (err) {
      // The read's error is what counts; closing may fail on a handle that never opened.
      if (fd !== undefined) closeQuietly(fd);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ELOOP" || code === "ENOTDIR") {
        if (dir.rel !== "") skip(dir.rel, "symlink");
        continue;
      }
      if (code === "ENOENT" || code === "EACCES") continue; // vanished or raced
      throw err;
    }
    try {
      for (let dirent = handle.readSync(); dirent !== null; dirent = handle.readSync()) {
        if (snap.walked >= maxEntries) {
          snap.truncated = true;
          skip(dir.rel === "" ? "." : dir.rel, "limit_count");
          break walk;
        }
        snap.walked++;
        if (++sinceYield >= WALK_SLICE) {
          sinceYield = 0;
          await setImmediate();
        }
        const name = dirent.name;
        const rel = dir.rel === "" ? name : `${dir.rel}/${name}`;
        const abs = path.join(dir.abs, name);
        if (isDefaultExcluded(name, includeHidden) || isExcluded(rel)) {
          skip(rel, "excluded");
          continue;
        }
        let st: Stats;
        try {
          st = fs.lstatSync(abs);
        } catch {
          // A name that is not UTF-8 reaches us with U+FFFD for its bad bytes, and no file has that name: the
          // code wrote a file we cannot name (open(b"\xff.txt")), which the user is told of, not left to miss.
          if (name.includes("\uFFFD")) skip(rel, "invalid_name");
          continue; // deleted while walking
        }
        if (st.isSymbolicLink()) {
          skip(rel, "symlink");
        } else if (st.isDirectory()) {
          if (st.dev !== rootStat.dev) skip(rel, "outside");
          else if (dir.depth + 1 > maxDepth) skip(rel, "too_deep");
          else stack.push({ abs, rel, depth: dir.depth + 1, dev: st.dev, ino: st.ino });
        } else if (!st.isFile()) {
          skip(rel, "special");
        } else if (st.dev !== rootStat.dev) {
          skip(rel, "outside");
        } else if (!isIncluded(rel)) {
          skip(rel, "excluded");
        } else {
          const entry: SnapshotEntry = {
            path: rel,
            size: st.size,
            mtimeMs: st.mtimeMs,
            ctimeMs: st.ctimeMs,
            ino: st.ino,
            dev: st.dev,
            mode: st.mode & 0o7777,
          };
          snap.files.set(rel, entry);
          if (hashMode !== "none" && st.size <= maxHashBytes) {
            const prev = opts.previous?.files.get(rel);
            const racy = opts.previous
              ? prev?.hash !== undefined && sameMetadata(prev, entry)
              : takenAtMs - st.mtimeMs <= racyWindowMs || takenAtMs - st.ctimeMs <= racyWindowMs;
            const known = opts.known?.get(rel);
            if (known && known.ino === entry.ino && (hashMode === "all" || racy)) entry.hash = known.sha256;
            else if (hashMode === "all" || racy) toHash.push(entry);
          }
        }
      }
    } finally {
      // Read-only handles: nothing is lost if closing fails.
      try {
        handle.closeSync();
      } catch {
        // already closed
      }
      closeQuietly(fd);
    }
  }

  for (const entry of toHash) {
    try {
      const h = await hashFile(path.join(realRoot, ...entry.path.split("/")));
      if (h.ino === entry.ino) entry.hash = h.sha256;
    } catch {
      // replaced or removed since the walk: leave unhashed, metadata decides
    }
  }
  return snap;
}

export interface DiffLimits {
  /** Most created + changed files reported (default unlimited). */
  maxFiles?: number;
  /** Most bytes of created + changed files reported (default unlimited). */
  maxTotalBytes?: number;
  /** Larger files are skipped as `too_large` (default unlimited). */
  maxFileBytes?: number;
}

export interface SnapshotDiff {
  created: SnapshotEntry[];
  changed: SnapshotEntry[];
  deleted: string[];
  skipped: Skipped[];
  /** A snapshot was truncated: `created` may contain old files and `deleted` is left empty. */
  incomplete: boolean;
}

/** Code-unit order: deterministic and locale-independent. */
const byPath = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Whether `after` differs from `before` (see README "Snapshot and diff"). */
export function entryChanged(before: SnapshotEntry, after: SnapshotEntry): boolean {
  if (!sameMetadata(before, after)) return true;
  return before.hash !== undefined && after.hash !== undefined && before.hash !== after.hash;
}

/**
 * Files an execution created, changed and deleted between two snapshots of one workspace.
 *
 * changed = size, mtime, ctime or inode differ, or both sides carry a content hash and the hashes differ.
 * A permission-only change (chmod) moves ctime and so counts as changed.
 *
 * Limits apply to created and changed together, in path order (code-unit sort): a file bigger than
 * `maxFileBytes` is `too_large`; after `maxFiles` files everything else is `limit_count`; a file that
 * would push the total over `maxTotalBytes` is `limit_bytes` (later, smaller files may still fit).
 * `skipped` also lists what `after` skipped (symlinks, special files, mounts, excluded names, a truncated
 * walk) unless `before` skipped the same path for the same reason, so each execution reports only new ones.
 */
export function diffSnapshots(before: Snapshot, after: Snapshot, limits: DiffLimits = {}): SnapshotDiff {
  const maxFiles = limits.maxFiles ?? Infinity;
  const maxTotalBytes = limits.maxTotalBytes ?? Infinity;
  const maxFileBytes = limits.maxFileBytes ?? Infinity;
  const incomplete = before.truncated || after.truncated;

  const candidates: Array<{ entry: SnapshotEntry; kind: "created" | "changed" }> = [];
  for (const entry of after.files.values()) {
    const prev = before.files.get(entry.path);
    if (!prev) candidates.push({ entry, kind: "created" });
    else if (entryChanged(prev, entry)) candidates.push({ entry, kind: "changed" });
  }
  candidates.sort((a, b) => byPath(a.entry.path, b.entry.path));

  const result: SnapshotDiff = { created: [], changed: [], deleted: [], skipped: [], incomplete };
  let count = 0;
  let bytes = 0;
  for (const { entry, kind } of candidates) {
    if (entry.size > maxFileBytes) result.skipped.push({ path: entry.path, reason: "too_large" });
    else if (count >= maxFiles) result.skipped.push({ path: entry.path, reason: "limit_count" });
    else if (bytes + entry.size > maxTotalBytes) result.skipped.push({ path: entry.path, reason: "limit_bytes" });
    else {
      count++;
      bytes += entry.size;
      result[kind].push(entry);
    }
  }

  if (!incomplete) {
    for (const p of before.files.keys()) if (!after.files.has(p)) result.deleted.push(p);
    result.deleted.sort(byPath);
  }

  const seen = new Set(before.skipped.map((s) => `${s.reason}\0${s.path}`));
  for (const s of after.skipped) {
    if (!seen.has(`${s.reason}\0${s.path}`)) result.skipped.push(s);
  }
  result.skipped.sort((a, b) => byPath(a.path, b.path));
  return result;
}
