import { createFile, deleteFile, keepBlobs, removeBlobIfUnused } from "@codeinterp/db";
import type { FileRow } from "@codeinterp/db";
import { normalizeError } from "@codeinterp/logger";
import { executionChangedChannel } from "@codeinterp/queue";
import { sanitizeFilename } from "@codeinterp/workspace";
import type { PutResult } from "@codeinterp/workspace";
import type { ApiDeps } from "../deps";
import { mimeTypeForUpload } from "./mime";
import type { ReceivedUpload } from "./upload";

/**
 * Records an upload received into the blob store as the user's file and settles its spare copy. Used by
 * `/v1/files` and the LibreChat surface alike.
 */
export async function storeUpload(deps: Pick<ApiDeps, "db" | "blobs" | "log">, userId: string, upload: ReceivedUpload): Promise<FileRow> {
  const name = sanitizeFilename(upload.filename);
  const { stored } = upload;
  let file: FileRow;
  try {
    file = await createFile(deps.db, {
      userId,
      name,
      size: stored.size,
      sha256: stored.sha256,
      mimeType: mimeTypeForUpload(upload.clientType, name),
      storageKey: stored.key,
      source: "upload",
    });
  } catch (err) {
    await discardUpload(deps, stored);
    throw err;
  }
  // The same content may have been deleted (its blob removed) while this upload ran: put it back. The
  // file exists from here on, so a failed wait is logged rather than answered as a failed upload.
  try {
    if (await keepBlobs(deps.db, [stored], (p) => deps.blobs.settle(p))) deps.log.info({ fileId: file.id }, "put back a blob a concurrent deletion removed");
  } catch (err) {
    deps.log.warn({ fileId: file.id, err: normalizeError(err) }, "could not wait for blob removals");
  }
  deps.log.info({ fileId: file.id, size: stored.size }, "file uploaded");
  return file;
}

/** An upload that will not become a file: drop its spare, and the blob when this request created it and nothing uses it. */
export async function discardUpload(deps: Pick<ApiDeps, "db" | "blobs">, stored: PutResult): Promise<void> {
  // Best effort: an unsettled spare copy is removed by the blob store's sweep; a blob left behind by a
  // failed removal is unreferenced and removed by retention.
  await deps.blobs.settle(stored, { restore: false }).catch(() => undefined);
  if (stored.created) await removeBlobIfUnused(deps.db, stored.key, () => deps.blobs.remove(stored.key)).catch(() => undefined);
}

/** Deletes one of the user's files (null when it has none by that id) and its blob once nothing uses it. */
export async function deleteUserFile(
  deps: Pick<ApiDeps, "db" | "blobs" | "log" | "redis" | "queuePrefix" | "finished">,
  userId: string,
  id: string,
): Promise<FileRow | null> {
  const file = await deleteFile(deps.db, userId, id);
  if (!file) return null;
  if (file.executionId) {
    // Its execution's response lists it: drop that from every API process's cache of finished ones.
    deps.finished?.invalidate(file.executionId);
    // Other API processes' caches expire on their own within seconds if this notice is lost.
    await deps.redis.publish(executionChangedChannel(deps.queuePrefix), file.executionId).catch(() => undefined);
  }
  // Content-addressed: the blob may be shared with other files (other users' included).
  await removeBlobIfUnused(deps.db, file.storageKey, () => deps.blobs.remove(file.storageKey));
  deps.log.info({ fileId: file.id }, "file deleted");
  return file;
}
