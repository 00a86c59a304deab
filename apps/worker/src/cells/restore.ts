import { constants as fsc } from "node:fs";
import { copyFile, lstat, mkdir } from "node:fs/promises";
import path from "node:path";
import { listMessageFiles } from "@codeinterp/db";
import type { FileRow } from "@codeinterp/db";
import type { ExecutionContext } from "../jobs/execution/context";

export interface RestoreResult {
  /** Absolute paths of the files and directories made (to hand to the workspace's owner). */
  made: string[];
  /** Registered files whose content is not in storage: not placed. */
  missing: string[];
}

/**
 * Puts a message's registered files (the newest version of each path its executions generated) back into a
 * new, empty workspace: what a message taken over from a cell that is gone had in /mnt/data. Attachments are
 * placed afterwards by the usual preparation, which leaves a path that is already here alone: a generated
 * version of an attachment (code rewrote it) is the newer content. Paths come from the database, written by
 * capture; one that would leave the workspace or pass through something that is not a directory is skipped.
 */
export async function restoreRegisteredFiles(
  dir: string,
  files: readonly Pick<FileRow, "path" | "storageKey">[],
  localPathOf: (key: string) => string | null,
): Promise<RestoreResult> {
  const made: string[] = [];
  const missing: string[] = [];
  for (const f of files) {
    const rel = f.path;
    if (!rel || path.isAbsolute(rel) || rel.split("/").some((s) => s === "" || s === "." || s === "..")) continue;
    const src = localPathOf(f.storageKey);
    if (!src) {
      missing.push(rel);
      continue;
    }
    const target = path.join(dir, ...rel.split("/"));
    if (!(await makeParents(dir, path.dirname(target), made))) continue;
    try {
      // COPYFILE_EXCL: never through whatever is already at the path.
      await copyFile(src, target, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
      made.push(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
  return { made, missing };
}

/** Makes the directories from `root` down to `dir`, refusing anything on the way that is not a directory. */
async function makeParents(root: string, dir: string, made: string[]): Promise<boolean> {
  const parts = path.relative(root, dir).split(path.sep).filter(Boolean);
  let at = root;
  for (const part of parts) {
    at = path.join(at, part);
    const st = await lstat(at).catch(() => null);
    if (st?.isDirectory()) continue;
    if (st) return false;
    await mkdir(at, { mode: 0o700 });
    made.push(at);
  }
  return true;
}

/**
 * Before a taken-over message's first run here (see Cell.hold): its registered files are put back into the
 * workspace, whose kernel (and so its variables) was lost with the other cell; the run's result says so
 * (kernelResetNote). Registered files missing from storage are named in the result's notes.
 */
export async function rebuildIfTakenOver(ctx: ExecutionContext): Promise<void> {
  const { cell, db, blobs, layout } = ctx.deps;
  const key = ctx.turn.messageKey;
  if (!cell?.needsRebuild(key)) return;
  const files = await listMessageFiles(db, ctx.exec.userId, ctx.exec.messageId);
  const dir = ctx.req.workspaceDir;
  // With blobs in a bucket, this machine's cache holds them (fetched and verified) while they are copied.
  const restored = await blobs.withLocal(
    files.map((f) => f.storageKey),
    (pathOf) => restoreRegisteredFiles(dir, files, pathOf),
  );
  await layout.giveToOwner(dir, restored.made);
  for (const p of restored.missing)
    ctx.notes.push(`${p} could not be restored: its stored content is missing (the message moved to another cell)`);
  cell.rebuilt(key);
  ctx.log.info(
    { files: files.length, missing: restored.missing.length },
    "workspace rebuilt from storage on this cell",
  );
}
