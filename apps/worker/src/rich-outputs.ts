import { Readable } from "node:stream";
import type { Db } from "@codeinterp/db";
import { keepBlobs, registerExecutionFile } from "@codeinterp/db";
import type { RichOutput } from "@codeinterp/kernel";
import type { BlobStore } from "@codeinterp/workspace";
import { fromKernelText } from "@codeinterp/workspace";

export interface ResultOutput {
  type: string;
  data?: string;
  fileId?: string;
}

const BINARY_EXT: Record<string, string> = { "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp" };
const TEXT_FILE_EXT: Record<string, string> = { "image/svg+xml": "svg" };

/**
 * Images become stored files the result points at (by id), so results stay small and plots are
 * downloadable; text outputs stay inline with workspace paths shown as /mnt/data.
 */
export async function storeRichOutputs(
  ctx: { db: Db; blobs: BlobStore; userId: string; chatId: string; messageId: string; executionId: string; workspaceDirs: string[] },
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
      const stored = await ctx.blobs.put(Readable.from([bytes]), { keepSpare: true });
      const name = `output-${n}.${binExt ?? textExt}`;
      const registered = registerExecutionFile(ctx.db, {
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
      });
      const { file } = await registered.catch(async (err: unknown) => {
        await ctx.blobs.settle(stored, { restore: false }).catch(() => false);
        throw err;
      });
      await keepBlobs(ctx.db, [stored], (p) => ctx.blobs.settle(p));
      result.push({ type: out.mimeType, fileId: file.id });
    } else {
      result.push({ type: out.mimeType, data: fromKernelText(out.data, ctx.workspaceDirs) });
    }
  }
  return result;
}
