import { createLibreChatSession } from "@codeinterp/db";
import type { ApiDeps } from "../deps";
import { HttpError } from "../errors";
import { storeUpload } from "../files/store";
import { principalOf } from "./auth";
import type { Credential, Principal } from "./auth";
import { newSessionId, uuidToLibreChatId } from "./ids";
import type { ReceivedForm } from "./multipart";
import { entityLabel } from "./sessions";

export type UploadOutcome =
  { status: "success"; fileId: string; filename: string } | { status: "error"; filename: string; error: string };

/** Gen-2 names the owner with `kind`/`id` fields, Gen-1 an agent with `entity_id`; else the `User-Id` header. */
export function uploadOwner(
  cred: Credential,
  fields: Record<string, string>,
  userIdHeader: string | undefined,
): Principal | null {
  if (fields.id) return principalOf(cred, { kind: fields.kind, id: fields.id });
  if (fields.entity_id) return principalOf(cred, { kind: "agent", id: fields.entity_id });
  return principalOf(cred, { kind: "user", id: userIdHeader });
}

/**
 * Records a received form's files as the owner's files, in one new upload session. Every received blob is
 * either a file afterwards or discarded (an unnamed owner, a failed insert).
 */
export async function storeSession(
  deps: Pick<ApiDeps, "db" | "files" | "log">,
  cred: Credential,
  form: ReceivedForm,
  userIdHeader: string | undefined,
): Promise<{ sessionId: string; files: UploadOutcome[] }> {
  const discardFrom = (i: number) =>
    deps.files.discard(form.files.slice(i).flatMap((r) => ("stored" in r ? [r.stored] : [])));
  let owner: Principal | null;
  try {
    owner = uploadOwner(cred, form.fields, userIdHeader);
  } catch (err) {
    await discardFrom(0);
    throw err;
  }
  if (!owner) {
    await discardFrom(0);
    throw new HttpError(
      400,
      "validation_error",
      "name the uploading user: a User-Id header, or the kind and id fields",
    );
  }
  const files: UploadOutcome[] = [];
  const fileIds: string[] = [];
  for (const [i, f] of form.files.entries()) {
    if (!("stored" in f)) {
      files.push({ status: "error", filename: f.filename, error: "File size limit exceeded" });
      continue;
    }
    try {
      const row = await storeUpload(deps, owner.userId, f);
      fileIds.push(row.id);
      files.push({ status: "success", fileId: uuidToLibreChatId(row.id), filename: row.name });
    } catch (err) {
      // storeUpload discarded this one; the rest are not stored either.
      await discardFrom(i + 1);
      throw err;
    }
  }
  const sessionId = newSessionId();
  await createLibreChatSession(deps.db, {
    id: sessionId,
    tenant: owner.tenant,
    userId: owner.userId,
    librechatUser: entityLabel(owner),
    fileIds,
  });
  deps.log.info({ sessionId, files: fileIds.length }, "librechat upload stored");
  return { sessionId, files };
}
