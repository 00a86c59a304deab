import type { IncomingMessage } from "node:http";
import type { FileStore } from "@codeinterp/files";
import { receiveMultipart } from "../files/upload";
import type { ReceivedForm } from "../files/upload";

export type { ReceivedForm } from "../files/upload";

/**
 * LibreChat's upload form (`packages/api/src/files/code/form.ts`): text fields `kind`, `id`, `version`
 * (Gen-1: `entity_id`) before one or more `file` parts, read by the one multipart reader with LibreChat's
 * wording for a body that is not a form or has no file.
 */
export function receiveForm(
  req: IncomingMessage,
  opts: { files: Pick<FileStore, "receive" | "discard">; maxBytes: number; maxFiles: number },
): Promise<ReceivedForm> {
  return receiveMultipart(req, {
    ...opts,
    messages: { notMultipart: "Invalid content type. Must be multipart/form-data.", missingFile: "No files provided" },
  });
}
