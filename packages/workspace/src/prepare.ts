import { randomBytes } from "node:crypto";
import fs, { constants as fsc } from "node:fs";
import { setImmediate } from "node:timers/promises";
import { chmod, lstat, mkdir, open, readdir, rm, rmdir } from "node:fs/promises";
import path from "node:path";
import { removeWorkspaceDir } from "./disk-budget";
import { uniqueNames } from "./sanitize";

/**
 * How an attachment's bytes get from its blob into the workspace.
 *
 * - `copy`: `fs.copyFile` with `COPYFILE_FICLONE`: a reflink (copy-on-write clone: instant, no extra
 *   space) where the file system supports it (btrfs, XFS with reflink, APFS, bcachefs), a byte copy
 *   otherwise.
 * - `reflink`: `COPYFILE_FICLONE_FORCE`: a reflink or an error (for operators who want to be sure no
 *   time or space goes into copies). Blob store and workspaces must be on the same file system.
 * - `auto`: reflink if possible, else copy (currently the same as `copy`).
 *
 * There is deliberately no `hardlink` mode. A hard link is the same inode as the blob: code that opens
 * `/mnt/data/data.csv` for writing (pandas `to_csv`, `open(..., "w")`, `truncate`) would rewrite the stored
 * original of every message and user sharing that content-addressed blob, and its sha256 would no longer
 * match its bytes. Making blobs 0444 does not prevent it (the kernel runs as the owner, who can chmod, and
 * many tools replace permissions). Only copies and reflinks give the workspace its own inode.
 */
export type LinkMode = "copy" | "reflink" | "auto";

export interface Attachment {
  fileId: string;
  /** The user's name for it; sanitised and de-duplicated here. */
  name: string;
  /** Absolute path of the stored blob on this machine (see `BlobStore.withLocal`); null when it is missing. */
  blobPath: string | null;
  sha256: string;
  /** Deleted by its owner: keeps its name reserved (so no other attachment is renamed) but is not placed. */
  removed?: boolean;
}

export interface PrepareOptions {
  dir: string;
  /** In a stable order (e.g. attach time): names are assigned in this order. */
  attachments: readonly Attachment[];
  mode?: LinkMode;
}

export interface PlacedFile {
  fileId: string;
  /** Final file name, relative to /mnt/data. */
  name: string;
  /** Absolute path in the workspace. */
  path: string;
  /** It was already there (placed by an earlier call, possibly since changed by code) and left untouched. */
  existing: boolean;
  /** For a file placed by this call: its inode, whose content is the attachment's (`sha256`). */
  ino?: number;
}

export interface PrepareResult {
  /** Every attachment that is now in the workspace, placed by this call or already there. */
  placed: PlacedFile[];
  /** Attachments whose blob does not exist; nothing was placed for them. */
  missing: Array<{ fileId: string; name: string }>;
  /** Attachments whose name is taken by something that is not a regular file (symlink, directory...). */
  conflicts: Array<{ fileId: string; name: string; reason: "symlink" | "not_a_file" }>;
  /** How many of `placed` were already there. */
  reused: number;
  /**
   * For the files placed by this call, by name: their inode and content hash (the blob's), for
   * `snapshotWorkspace`'s `known` so a snapshot taken next does not read them again.
   */
  knownHashes: Map<string, { ino: number; sha256: string }>;
}

/**
 * Suffix of the marker whose mtime records when a workspace was last used. The marker sits beside the
 * workspace (`<dir>.last-used`), not in it, so code listing /mnt/data never sees it.
 */
export const LAST_USED_MARKER = ".last-used";

export const lastUsedMarkerFor = (dir: string) => `${path.resolve(dir)}${LAST_USED_MARKER}`;
const TEMP_PREFIX = ".codeinterp-";
/** Attachments placed per turn of the event loop. */
const PLACE_SLICE = 100;

function isCode(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException | undefined)?.code ?? "");
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch (err) {
    if (isCode(err, "ENOENT")) return null;
    throw err;
  }
}

/** Create the workspace directory (0700) if needed; refuses a symlink or non-directory in its place. */
export async function ensureWorkspaceDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`workspace is not a directory: ${dir}`);
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
}

/** Record that a workspace was used now (for {@link removeIdleWorkspaces}). */
export async function touchWorkspace(dir: string, now: Date = new Date()): Promise<void> {
  const marker = lastUsedMarkerFor(dir);
  const st = await lstatOrNull(marker);
  if (st && !st.isFile()) await rm(marker, { recursive: true, force: true });
  // O_NOFOLLOW and futimes on the handle: a symlink planted by code is never followed.
  const fh = await open(marker, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, 0o600);
  try {
    await fh.utimes(now, now);
  } finally {
    await fh.close();
  }
}

function placeOne(src: string, target: string, mode: LinkMode): { placed: false } | { placed: true; ino: number } {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `${TEMP_PREFIX}${randomBytes(8).toString("hex")}.part`);
  const flags = fsc.COPYFILE_EXCL | (mode === "reflink" ? fsc.COPYFILE_FICLONE_FORCE : fsc.COPYFILE_FICLONE);
  try {
    fs.copyFileSync(src, tmp, flags);
    // The copy inherits the blob's 0444; the workspace copy is the user's to change. Through a descriptor
    // opened without following symlinks: code still running in the workspace could have swapped the temp
    // file for a link to a host file, which a path-based chmod (as root) would follow.
    const fd = fs.openSync(tmp, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
    let ino: number;
    try {
      fs.fchmodSync(fd, 0o600);
      ino = fs.fstatSync(fd).ino;
    } finally {
      fs.closeSync(fd);
    }
    // link() never overwrites and never follows a symlink at `target`: whatever appeared there since
    // our lstat (code running concurrently, a parallel retry) wins, and the copy is dropped.
    try {
      fs.linkSync(tmp, target);
    } catch (err) {
      if (isCode(err, "EEXIST")) return { placed: false };
      if (!isCode(err, "EPERM", "ENOTSUP", "EOPNOTSUPP", "EXDEV")) throw err;
      // no hard links on this file system: rename, after one more check
      if (lstatOrNullSync(target)) return { placed: false };
      fs.renameSync(tmp, target);
    }
    return { placed: true, ino };
  } finally {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // gone already (linked and renamed, or never created)
    }
  }
}

function lstatOrNullSync(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if (isCode(err, "ENOENT")) return null;
    throw err;
  }
}

/**
 * Put a message's attachments into its workspace, each under its unique sanitised name (see
 * `uniqueNames`, keyed by fileId, in input order; a fileId listed twice is placed once).
 *
 * Idempotent and conservative: a name that already exists as a regular file is left untouched (it is the
 * user's working state, possibly changed by earlier code) and counted in `reused`; a name taken by a
 * symlink or directory is never written through nor replaced and is reported in `conflicts`. Only absent
 * files are placed, atomically (copy to a hidden temp file, then link into place), so a crash never leaves
 * a half-written attachment. A blob that does not exist is reported in `missing`, not thrown.
 * Blobs are only read (and, as defence in depth, made 0444 if they are not).
 */
export async function prepareWorkspace(opts: PrepareOptions): Promise<PrepareResult> {
  const mode = opts.mode ?? "auto";
  if (mode !== "copy" && mode !== "reflink" && mode !== "auto") {
    throw new TypeError(`unsupported link mode ${JSON.stringify(mode)}: use "copy", "reflink" or "auto"`);
  }
  const dir = path.resolve(opts.dir);
  await ensureWorkspaceDir(dir);

  const byId = new Map<string, Attachment>();
  for (const a of opts.attachments) if (!byId.has(a.fileId)) byId.set(a.fileId, a);
  const names = uniqueNames([...byId.values()].map((a) => ({ key: a.fileId, name: a.name })));

  type Outcome =
    | { kind: "placed"; file: PlacedFile }
    | { kind: "missing" }
    | { kind: "conflict"; reason: "symlink" | "not_a_file" }
    | { kind: "skip" };
  const list = [...byId.values()];
  const place = (a: Attachment): Outcome => {
    if (a.removed) return { kind: "skip" };
    const name = names.get(a.fileId)!;
    const target = path.join(dir, name);
    const existing = lstatOrNullSync(target);
    if (existing) {
      if (existing.isSymbolicLink()) return { kind: "conflict", reason: "symlink" };
      if (!existing.isFile()) return { kind: "conflict", reason: "not_a_file" };
      return { kind: "placed", file: { fileId: a.fileId, name, path: target, existing: true } };
    }
    if (a.blobPath === null) return { kind: "missing" };
    let blob;
    try {
      blob = fs.statSync(a.blobPath);
    } catch (err) {
      if (isCode(err, "ENOENT", "ENOTDIR")) return { kind: "missing" };
      throw err;
    }
    if (!blob.isFile()) return { kind: "missing" };
    if ((blob.mode & 0o222) !== 0) {
      try {
        fs.chmodSync(a.blobPath, 0o444);
      } catch {
        // best effort: the blob store writes them 0444 already
      }
    }
    const outcome = placeOne(a.blobPath, target, mode);
    if (!outcome.placed) {
      const now = lstatOrNullSync(target);
      if (now && !now.isFile()) return { kind: "conflict", reason: now.isSymbolicLink() ? "symlink" : "not_a_file" };
      return { kind: "placed", file: { fileId: a.fileId, name, path: target, existing: true } };
    }
    return { kind: "placed", file: { fileId: a.fileId, name, path: target, existing: false, ino: outcome.ino } };
  };
  // Small-file placement is a handful of syscalls each, so they are made synchronously (measured: 1,000
  // attachments in ~30 ms instead of 100-190 ms through the thread pool), in slices that give the event
  // loop back in between so a worker's other executions keep streaming.
  const outcomes: Outcome[] = [];
  for (let i = 0; i < list.length; i += PLACE_SLICE) {
    if (i > 0) await setImmediate();
    for (const a of list.slice(i, i + PLACE_SLICE)) outcomes.push(place(a));
  }

  const result: PrepareResult = { placed: [], missing: [], conflicts: [], reused: 0, knownHashes: new Map() };
  outcomes.forEach((o, i) => {
    const a = list[i]!;
    const name = names.get(a.fileId)!;
    if (o.kind === "placed") {
      result.placed.push(o.file);
      if (o.file.existing) result.reused++;
      if (o.file.ino !== undefined) result.knownHashes.set(name, { ino: o.file.ino, sha256: a.sha256 });
    } else if (o.kind === "missing") result.missing.push({ fileId: a.fileId, name });
    else if (o.kind === "conflict") result.conflicts.push({ fileId: a.fileId, name, reason: o.reason });
  });
  await touchWorkspace(dir);
  return result;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX2 = /^[0-9a-f]{2}$/;

/**
 * Delete workspaces under `<dataDir>/workspaces` not used for more than `maxIdleMs` before `now`.
 * Last use is the mtime of the `.last-used` marker (see {@link touchWorkspace}), or of the directory when
 * there is none. Only directories laid out by `workspaceDirFor` are considered; symlinks are never followed.
 * Call `touchWorkspace` when an execution starts, and keep `maxIdleMs` well above the execution timeout.
 * Returns the removed directories.
 */
export async function removeIdleWorkspaces(
  dataDir: string,
  maxIdleMs: number,
  now: number = Date.now(),
  /**
   * Wraps the removal of each idle workspace (given its id, the directory name): it calls `remove` (which
   * says whether it removed it), or not at all (e.g. an execution of that message holds it).
   */
  guard: (id: string, remove: () => Promise<boolean>) => Promise<boolean> = (_id, remove) => remove(),
): Promise<string[]> {
  const base = path.join(path.resolve(dataDir), "workspaces");
  const removed: string[] = [];
  let fans: string[];
  try {
    fans = await readdir(base);
  } catch (err) {
    if (isCode(err, "ENOENT")) return removed;
    throw err;
  }
  for (const fan of fans.sort()) {
    if (!HEX2.test(fan)) continue;
    const fanDir = path.join(base, fan);
    const fanStat = await lstatOrNull(fanDir);
    if (!fanStat?.isDirectory()) continue;
    for (const id of (await readdir(fanDir)).sort()) {
      if (!HEX64.test(id) || !id.startsWith(fan)) continue;
      const ws = path.join(fanDir, id);
      const wsStat = await lstatOrNull(ws);
      if (!wsStat?.isDirectory()) continue;
      const marker = await lstatOrNull(lastUsedMarkerFor(ws));
      const lastUsed = marker?.isFile() ? marker.mtimeMs : wsStat.mtimeMs;
      if (now - lastUsed <= maxIdleMs) continue;
      const done = await guard(id, async () => {
        // Looked at again under the guard: an execution may have used it since.
        const markerNow = await lstatOrNull(lastUsedMarkerFor(ws));
        if (markerNow?.isFile() && now - markerNow.mtimeMs <= maxIdleMs) return false;
        await removeWorkspaceDir(ws);
        await rm(lastUsedMarkerFor(ws), { force: true });
        return true;
      });
      if (done) removed.push(ws);
    }
    await rmdir(fanDir).catch(() => undefined); // only succeeds when empty
  }
  return removed;
}
