import { randomBytes, randomInt } from "node:crypto";
import { chmod, lchown, lstat, mkdir, rename, stat } from "node:fs/promises";
import path from "node:path";
import { POOL_SLOTS_DIR_NAME } from "@codeinterp/kernel-host";
import { VIRTUAL_ROOT, createBudgetedDir, workspaceId } from "@codeinterp/workspace";
import type { DiskBudget } from "@codeinterp/workspace";
import type { PoolSlot } from "./kernels/pool";

/** Sandboxed kernels run as the uid that owns their workspace; each workspace gets one in this range. */
const UID_BASE = 100_000;
const UID_SPAN = 900_000;

/**
 * Where workspaces live and how kernels see them, in the two modes: a shared Jupyter server (kernels see
 * the real path; code is translated from /mnt/data) or sandboxed kernels (the workspace is mounted at the
 * real /mnt/data, owned by a uid of its own).
 */
export class WorkspaceLayout {
  constructor(
    readonly sandboxed: boolean,
    private readonly dataDir: string,
    private readonly kernelRootDir: string,
    /** With a btrfs budget, each workspace (and pool slot, which becomes one) is a subvolume with a limit. */
    readonly diskBudget: DiskBudget = { kind: "none", reason: "not configured" },
  ) {}

  /** A new directory (0700, root's): a budgeted subvolume when there is a budget. Throws EEXIST like mkdir. */
  private async makeDir(dir: string): Promise<void> {
    if (this.diskBudget.kind === "none") return mkdir(dir, { mode: 0o700 });
    if (await exists(dir)) throw Object.assign(new Error(`EEXIST: ${dir}`), { code: "EEXIST" });
    await createBudgetedDir(dir, this.diskBudget.bytes);
    await chmod(dir, 0o700);
  }

  /** The workspace as the kernel sees it. */
  kernelDir(workspaceDir: string): string {
    return this.sandboxed ? VIRTUAL_ROOT : workspaceDir;
  }

  /** Relative to the gateway's root_dir, for starting a kernel there. */
  kernelPath(dir: string): string {
    return path.relative(this.kernelRootDir, dir).split(path.sep).join("/");
  }

  uidFor(userId: string, messageId: string): number {
    return UID_BASE + (parseInt(workspaceId(userId, messageId).slice(0, 8), 16) % UID_SPAN);
  }

  /** Creates the workspace directory if needed, owned by its sandbox uid when sandboxed. */
  async ensureWorkspace(dir: string, uid: number): Promise<void> {
    await mkdir(path.dirname(dir), { recursive: true, mode: 0o711 });
    try {
      await this.makeDir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      return;
    }
    if (this.sandboxed) await lchown(dir, uid, uid);
  }

  /** Hands files the service placed (attachment copies) to the workspace's owner. */
  async giveToOwner(workspaceDir: string, files: string[]): Promise<void> {
    if (!this.sandboxed || files.length === 0) return;
    const owner = await stat(workspaceDir);
    for (const f of files) await lchown(f, owner.uid, owner.gid);
  }

  async newPoolSlot(): Promise<PoolSlot> {
    const base = path.join(this.dataDir, POOL_SLOTS_DIR_NAME);
    await mkdir(base, { recursive: true, mode: 0o711 });
    if (!this.sandboxed) return { dir: base, path: this.kernelPath(base), disposable: false };
    const dir = path.join(base, randomBytes(12).toString("hex"));
    await this.makeDir(dir);
    const uid = UID_BASE + randomInt(UID_SPAN);
    await lchown(dir, uid, uid);
    return { dir, path: this.kernelPath(dir), disposable: true, kernelDir: VIRTUAL_ROOT };
  }

  /**
   * A sandboxed pool kernel has its slot mounted as /mnt/data: the slot becomes the message's workspace by
   * renaming it into place (the mount follows the directory). Only when the message has no workspace yet.
   */
  async adopt(slot: PoolSlot, workspaceDir: string): Promise<boolean> {
    if (!this.sandboxed) return true;
    if (await exists(workspaceDir)) return false;
    await mkdir(path.dirname(workspaceDir), { recursive: true, mode: 0o711 });
    try {
      await rename(slot.dir, workspaceDir);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST" || code === "ENOTEMPTY") return false;
      throw err;
    }
  }
}

/** Whether anything (a symlink included) is at `p`. */
export async function exists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch {
    return false;
  }
}
