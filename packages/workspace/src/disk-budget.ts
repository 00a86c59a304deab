import { execFile } from "node:child_process";
import { lstat, readFile, rm, statfs } from "node:fs/promises";
import { promisify } from "node:util";

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
  | { kind: "btrfs"; bytes: number; quotaMode: "simple" | "full" }
  | { kind: "none"; reason: string };

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
  if (!(await onBtrfs(dataDir))) return { kind: "none", reason: "DATA_DIR is not on a btrfs file system" };
  if (process.getuid?.() !== 0) return { kind: "none", reason: "the worker is not root (qgroup limits need it)" };
  let uuid: string;
  try {
    await btrfs("qgroup", "show", "--raw", dataDir);
    uuid = /uuid:\s*([0-9a-f-]{36})/.exec(await btrfs("filesystem", "show", dataDir))?.[1] ?? "";
  } catch (err) {
    const msg = (err as Error).message;
    if (/ENOENT|not found/i.test(msg) && !/quota/i.test(msg)) return { kind: "none", reason: "btrfs-progs is not installed" };
    return { kind: "none", reason: `quotas are not enabled on DATA_DIR's btrfs (${msg})` };
  }
  const mode = await readFile(`/sys/fs/btrfs/${uuid}/qgroups/mode`, "utf8").catch(() => "qgroup");
  return { kind: "btrfs", bytes, quotaMode: mode.trim() === "squota" ? "simple" : "full" };
}

/** The subvolume id of the subvolume whose root is `dir`. */
async function subvolumeId(dir: string): Promise<string> {
  const id = (await btrfs("inspect-internal", "rootid", dir)).trim();
  if (!/^\d+$/.test(id)) throw new DiskBudgetError(`unexpected subvolume id for a workspace: ${JSON.stringify(id)}`);
  return id;
}

/**
 * Creates `dir` (which must not exist) as a subvolume with its own budget. Returns the subvolume id.
 * Root-owned 0700 like a fresh mkdir; the caller hands it to the workspace's uid.
 */
export async function createBudgetedDir(dir: string, bytes: number): Promise<void> {
  await btrfs("subvolume", "create", dir);
  try {
    const id = await subvolumeId(dir);
    const group = `1/${id}`;
    await btrfs("qgroup", "create", group, dir);
    await btrfs("qgroup", "assign", "--no-rescan", `0/${id}`, group, dir);
    await btrfs("qgroup", "limit", String(bytes), group, dir);
  } catch (err) {
    await btrfs("subvolume", "delete", dir).catch(() => undefined);
    throw err;
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
 * Removes a workspace or pool slot, budgeted or not. A subvolume's limit is lifted first (a workspace at
 * its budget cannot even record a deletion), then it is deleted whole; one holding subvolumes that code
 * made is emptied file by file instead (root may rmdir an empty subvolume). Its level-1 qgroup goes once the
 * kernel has dropped the subvolume: see {@link clearStaleBudgets}.
 */
export async function removeWorkspaceDir(dir: string): Promise<void> {
  if (await isSubvolumeRoot(dir)) {
    const id = await subvolumeId(dir).catch(() => null);
    if (id) await btrfs("qgroup", "limit", "none", `1/${id}`, dir).catch(() => undefined);
    try {
      await btrfs("subvolume", "delete", dir);
      return;
    } catch {
      // nested subvolumes: fall through to a recursive removal
    }
  }
  await rm(dir, { recursive: true, force: true });
}

/**
 * Destroys the qgroups of workspaces that are gone: level-1 groups with no member whose subvolume no
 * longer exists, and stale level-0 groups (full quotas keep them). A group whose subvolume exists is being
 * set up and is left alone. Returns how many it destroyed.
 */
export async function clearStaleBudgets(dataDir: string): Promise<number> {
  const rows = (await btrfs("qgroup", "show", "-c", "--raw", dataDir)).split("\n").map((l) => l.trim().split(/\s+/));
  const level0 = new Set(rows.filter((r) => r[0]?.startsWith("0/")).map((r) => r[0]!.slice(2)));
  let destroyed = 0;
  for (const r of rows) {
    const group = r[0] ?? "";
    const m = /^1\/(\d+)$/.exec(group);
    // columns: qgroupid rfer excl child
    if (!m || level0.has(m[1]!) || r[3] !== "-") continue;
    if (await btrfs("qgroup", "destroy", group, dataDir).then(() => true, () => false)) destroyed++;
  }
  await btrfs("qgroup", "clear-stale", dataDir).catch(() => undefined);
  return destroyed;
}

