import { createFile } from "@codeinterp/db";
import type { FileRow } from "@codeinterp/db";
import { normalizeError } from "@codeinterp/logger";
import { executionChangedChannel } from "@codeinterp/queue";
import { sanitizeFilename } from "@codeinterp/workspace";
import type { ApiDeps } from "../deps";
import { mimeTypeForUpload } from "./mime";
import type { ReceivedUpload } from "./upload";

/**
 * Records an upload received into the blob store as the user's file (the blob lifecycle is the FileStore's,
 * packages/files). Used by `/v1/files` and the LibreChat surface alike.
 */
export async function storeUpload(
  deps: Pick<ApiDeps, "db" | "files" | "log">,
  userId: string,
  upload: ReceivedUpload,
): Promise<FileRow> {
  const name = sanitizeFilename(upload.filename);
  const { stored } = upload;
  const committed = await deps.files.commit([stored], () =>
    createFile(deps.db, {
      userId,
      name,
      size: stored.size,
      sha256: stored.sha256,
      mimeType: mimeTypeForUpload(upload.clientType, name),
      storageKey: stored.key,
      source: "upload",
    }),
  );
  const file = committed.value;
  // The file exists from here on, so a failed wait is logged rather than answered as a failed upload.
  if (!committed.kept)
    deps.log.warn({ fileId: file.id, err: normalizeError(committed.error) }, "could not wait for blob removals");
  else if (committed.restored > 0) deps.log.info({ fileId: file.id }, "put back a blob a concurrent deletion removed");
  deps.log.info({ fileId: file.id, size: stored.size }, "file uploaded");
  return file;
}

/** Deletes one of the user's files (null when it has none by that id) and its blob once nothing uses it. */
export async function deleteUserFile(
  deps: Pick<ApiDeps, "files" | "log" | "redis" | "queuePrefix" | "finished">,
  userId: string,
  id: string,
): Promise<FileRow | null> {
  const file = await deps.files.deleteFile(userId, id, async (f) => {
    if (!f.executionId) return;
    // Its execution's response lists it: drop that from every API process's cache of finished ones.
    deps.finished?.invalidate(f.executionId);
    // Other API processes' caches expire on their own within seconds if this notice is lost.
    await deps.redis.publish(executionChangedChannel(deps.queuePrefix), f.executionId).catch(() => undefined);
  });
  if (!file) return null;
  deps.log.info({ fileId: file.id }, "file deleted");
  return file;
}
