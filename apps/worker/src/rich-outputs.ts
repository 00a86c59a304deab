import { Readable } from "node:stream";
import { registerExecutionFile } from "@codeinterp/db";
import type { RichOutput } from "@codeinterp/kernel";
import type { StoredOutput } from "@codeinterp/queue";
import { fromKernelText } from "@codeinterp/workspace";
import type { ExecutionFileContext } from "./capture";

export type ResultOutput = StoredOutput;

const BINARY_EXT: Record<string, string> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/gif": "gif",
  "image/webp": "webp",
};
const TEXT_FILE_EXT: Record<string, string> = { "image/svg+xml": "svg" };

/**
 * Images become stored files the result points at (by id), so results stay small and plots are
 * downloadable; text outputs stay inline with workspace paths shown as /mnt/data.
 */
export async function storeRichOutputs(
  ctx: ExecutionFileContext & { workspaceDirs: string[] },
  outputs: RichOutput[],
): Promise<ResultOutput[]> {
  const result: ResultOutput[] = [];
  let n = 0;
  for (const out of outputs) {
    n++;
    const binExt = BINARY_EXT[out.mimeType];
    const textExt = TEXT_FILE_EXT[out.mimeType];
    if (binExt || textExt) {
      const bytes = binExt ? Buffer.from(out.data, "base64") : Buffer.from(out.data, "utf8");
      const stored = await ctx.files.receive(Readable.from([bytes]));
      const name = `output-${n}.${binExt ?? textExt}`;
      const committed = await ctx.files.commit([stored], () =>
        registerExecutionFile(ctx.db, {
          userId: ctx.userId,
          chatId: ctx.chatId,
          messageId: ctx.messageId,
          executionId: ctx.executionId,
          // Starts with "/": never a workspace path (those are relative), so code cannot pre-empt this key.
          path: `/outputs/${name}`,
          name,
          size: stored.size,
          sha256: stored.sha256,
          storageKey: stored.key,
          mimeType: out.mimeType,
          source: "output",
        }),
      );
      // Retried with the whole outcome on a transient failure (registration is idempotent), which waits again.
      if (!committed.kept) throw committed.error;
      result.push({ type: out.mimeType, fileId: committed.value.file.id });
    } else {
      result.push({ type: out.mimeType, data: fromKernelText(out.data, ctx.workspaceDirs) });
    }
  }
  return result;
}
