import { execFile } from "node:child_process";
import { lstat, mkdir, readFile, rm, statfs } from "node:fs/promises";
import { promisify } from "node:util";
import { randomBytes } from "node:crypto";
import path from "node:path";

const run = promisify(execFile);
const BTRFS_SUPER_MAGIC = 0x9123683e;
/** The inode number of every btrfs subvolume's root directory. */
const SUBVOLUME_ROOT_INO = 256;

/**
 * A disk budget per workspace: each workspace is a btrfs subvolume in a level-1 qgroup of its own
 * (`1/<subvolume id>`) whose limit is the budget. Writing past it fails with EDQUOT (`OSError: [Errno 122]
 * Disk quota exceeded`). The limit sits on the level-1 group, not the subvolume, because with simple quotas
 * the kernel puts a subvolume or snapshot that code creates inside its workspace (any user may) into the
 * same parent group: it cannot escape the budget by nesting.
 */
export type DiskBudget =
  { kind: "btrfs"; bytes: number; quotaMode: "simple" | "full" } | { kind: "none"; reason: string };

/** btrfs-progs failed (or is missing) while making or removing a budgeted workspace. */
export class DiskBudgetError extends Error {
  override readonly name = "DiskBudgetError";
}

async function btrfs(...args: string[]): Promise<string> {
  try {
    const { stdout } = await run("btrfs", args, { timeout: 30_000, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new DiskBudgetError(`btrfs ${args.slice(0, 2).join(" ")}: ${(e.stderr ?? "").trim() || e.message}`);
  }
}

async function onBtrfs(p: string): Promise<boolean> {
  try {
    return (await statfs(p)).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Whether `dataDir` can give workspaces a budget: it must be on btrfs with quotas enabled, and this process
 * root (qgroup limits need CAP_SYS_ADMIN) with btrfs-progs installed. Called once at worker start.
 */
export async function detectDiskBudget(dataDir: string, bytes: number): Promise<DiskBudget> {
  // A DATA_DIR that cannot be made shows up below as "not btrfs": detection only reports, it never fails.
  await mkdir(dataDir, { recursive: true }).catch(() => undefined);
  if (!(await onBtrfs(dataDir))) return { kind: "none", reason: "DATA_DIR is not on a btrfs file system" };
  if (process.getuid?.() !== 0) return { kind: "none", reason: "the worker is not root (qgroup limits need it)" };
  let uuid: string;
  try {
    await btrfs("qgroup", "show", "--raw", dataDir);
    uuid = /uuid:\s*([0-9a-f-]{36})/.exec(await btrfs("filesystem", "show", dataDir))?.[1] ?? "";
  } catch (err) {
    const msg = (err as Error).message;
    if (/ENOENT|not found/i.test(msg) && !/quota/i.test(msg))
      return { kind: "none", reason: "btrfs-progs is not installed" };
    return { kind: "none", reason: `quotas are not enabled on DATA_DIR's btrfs (${msg})` };
  }
  const mode = await readFile(`/sys/fs/btrfs/${uuid}/qgroups/mode`, "utf8").catch(() => "qgroup");
  return { kind: "btrfs", bytes, quotaMode: mode.trim() === "squota" ? "simple" : "full" };
}

/**
 * Creates `dir` (which must not exist) as a subvolume with its own budget: a new level-1 qgroup with the
 * limit, then the subvolume made inside it (three btrfs-progs calls). Root-owned 0700 like a fresh mkdir; the
 * caller hands it to the workspace's uid.
 */
export async function createBudgetedDir(dir: string, bytes: number): Promise<void> {
  const parent = path.dirname(dir);
  // 48 random bits: the qgroup id space of a level; a collision fails `qgroup create` and is retried.
  for (let attempt = 0; ; attempt++) {
    const group = `1/${randomBytes(6).readUIntBE(0, 6)}`;
    try {
      await btrfs("qgroup", "create", group, parent);
    } catch (err) {
      if (attempt < 2 && /exists/i.test((err as Error).message)) continue;
      throw err;
    }
    try {
      await btrfs("qgroup", "limit", String(bytes), group, parent);
      await btrfs("subvolume", "create", "-i", group, dir);
      return;
    } catch (err) {
      // Undoing a half-made workspace; a group left over is destroyed by the cleanup job's sweep.
      await btrfs("qgroup", "destroy", group, parent).catch(() => undefined);
      throw err;
    }
  }
}

async function isSubvolumeRoot(dir: string): Promise<boolean> {
  try {
    const st = await lstat(dir);
    return st.isDirectory() && st.ino === SUBVOLUME_ROOT_INO && (await onBtrfs(dir));
  } catch {
    return false;
  }
}

/**
 * Removes a workspace or pool slot, budgeted or not: a subvolume is deleted whole (the kernel frees its
 * space in the background). One holding subvolumes that code made cannot be: it is emptied file by file,
 * after its limit is lifted (a workspace at its budget cannot even record a deletion), and root may rmdir an
 * empty subvolume. Its qgroup goes in a later sweep: see {@link startStaleBudgetSweep}.
 */
export async function removeWorkspaceDir(dir: string): Promise<void> {
  if (await isSubvolumeRoot(dir)) {
    try {
      await btrfs("subvolume", "delete", dir);
      return;
    } catch {
      // Without the limit lifted the file-by-file removal below may still succeed; it reports its own failure.
      await liftLimit(dir).catch(() => undefined);
    }
  }
  await rm(dir, { recursive: true, force: true });
}

async function liftLimit(dir: string): Promise<void> {
  const id = (await btrfs("inspect-internal", "rootid", dir)).trim();
  const row = (await btrfs("qgroup", "show", "-p", "--raw", dir))
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((r) => r[0] === `0/${id}`);
  // columns: qgroupid rfer excl parent
  for (const group of (row?.[3] ?? "").split(",").filter((g) => /^1\/\d+$/.test(g)))
    await btrfs("qgroup", "limit", "none", group, dir);
}

/**
 * Destroys the qgroups of workspaces that are gone: level-1 groups with no member on two sweeps in a row
 * (a group just made for a workspace has none for a moment, while its subvolume is created inside it), and
 * stale level-0 groups (full quotas keep them). Call `sweep` from the periodic cleanup job; it returns how
 * many groups it destroyed.
 */
export function startStaleBudgetSweep(dataDir: string): { sweep(): Promise<number> } {
  let childlessBefore = new Set<string>();
  return {
    async sweep() {
      const rows = (await btrfs("qgroup", "show", "-c", "--raw", dataDir))
        .split("\n")
        .map((l) => l.trim().split(/\s+/));
      // columns: qgroupid rfer excl child
      const childless = new Set(rows.filter((r) => /^1\/\d+$/.test(r[0] ?? "") && r[3] === "-").map((r) => r[0]!));
      let destroyed = 0;
      for (const group of childless) {
        if (!childlessBefore.has(group)) continue;
        if (
          await btrfs("qgroup", "destroy", group, dataDir).then(
            () => true,
            () => false,
          )
        )
          destroyed++;
      }
      childlessBefore = childless;
      // Housekeeping only: stale groups hold no data and are tried again on the next sweep.
      await btrfs("qgroup", "clear-stale", dataDir).catch(() => undefined);
      return destroyed;
    },
  };
}
