import type { FileRow } from "@codeinterp/db";
import type { Snapshot } from "@codeinterp/workspace";
import { prepareWorkspace as placeAttachments, snapshotWorkspace } from "@codeinterp/workspace";
import { rebuildIfTakenOver } from "../../cells/restore";
import { splitGlobs } from "../../env";
import type { ExecutionContext } from "./context";

export interface PreparedWorkspace {
  /** Attachment name in the workspace -> file id (capture records lineage by it). */
  attachmentByPath: Map<string, string>;
  snapshotOpts: { include: string[]; exclude: string[] };
  /** The workspace before the code ran. */
  before: Snapshot;
  prepareMs: number;
}

/**
 * Places the message's attachments in its workspace (under the message's turn, which also serialises this)
 * and takes the "before" snapshot that capture compares against.
 */
export async function prepareWorkspace(ctx: ExecutionContext, attachments: FileRow[]): Promise<PreparedWorkspace> {
  const { env, layout, blobs } = ctx.deps;
  const dir = ctx.req.workspaceDir;
  const t0 = Date.now();
  await rebuildIfTakenOver(ctx);
  // With blobs in a bucket, this machine's cache holds the attachments (fetched and verified first) while
  // they are copied or reflinked into the workspace.
  const live = attachments.filter((f) => f.deletedAt === null).map((f) => f.storageKey);
  const prepared = await blobs.withLocal(live, (pathOf) =>
    placeAttachments({
      dir,
      mode: env.ATTACHMENT_LINK_MODE,
      attachments: attachments.map((f) => ({
        fileId: f.id,
        name: f.name,
        sha256: f.sha256,
        blobPath: f.deletedAt === null ? pathOf(f.storageKey) : null,
        removed: f.deletedAt !== null,
      })),
    }),
  );
  // (placing also marked the workspace as used now, for the retention job.)
  await layout.giveToOwner(
    dir,
    prepared.placed.filter((p) => !p.existing).map((p) => p.path),
  );
  for (const m of prepared.missing) {
    ctx.log.warn({ fileId: m.fileId }, "attachment's stored content is missing");
    ctx.notes.push(`attachment ${m.name} (${m.fileId}) is missing from storage and was not placed in /mnt/data`);
  }
  for (const c of prepared.conflicts)
    ctx.notes.push(`attachment ${c.name} was not placed: that name is taken by a ${c.reason}`);
  const snapshotOpts = { include: splitGlobs(env.CAPTURE_INCLUDE), exclude: splitGlobs(env.CAPTURE_EXCLUDE) };
  // Attachments copied just now hash as their blob: the "before" snapshot need not read them again.
  const before = await snapshotWorkspace(dir, { ...snapshotOpts, known: prepared.knownHashes });
  const prepareMs = Date.now() - t0;
  ctx.log.debug({ prepareMs, placed: prepared.placed.length }, "workspace prepared");
  return { attachmentByPath: new Map(prepared.placed.map((p) => [p.name, p.fileId])), snapshotOpts, before, prepareMs };
}
