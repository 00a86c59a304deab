import { Readable } from "node:stream";
import pMap from "p-map";
import { registerExecutionFiles } from "@codeinterp/db";
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

/** Images stored at once (as capture stores files): their writes and fsyncs overlap in the thread pool. */
const STORE_CONCURRENCY = 8;

interface Image {
  /** Position in the outputs. */
  index: number;
  path: string;
  name: string;
  mimeType: string;
  bytes: Buffer;
}

/**
 * Images become stored files the result points at (by id), so results stay small and plots are
 * downloadable; text outputs stay inline with workspace paths shown as /mnt/data.
 */
export async function storeRichOutputs(
  ctx: ExecutionFileContext & { workspaceDirs: string[] },
  outputs: RichOutput[],
): Promise<ResultOutput[]> {
  const images: Image[] = [];
  outputs.forEach((out, index) => {
    const binExt = BINARY_EXT[out.mimeType];
    const textExt = TEXT_FILE_EXT[out.mimeType];
    if (!binExt && !textExt) return;
    const name = `output-${index + 1}.${binExt ?? textExt}`;
    // Starts with "/": never a workspace path (those are relative), so code cannot pre-empt this key.
    const path = `/outputs/${name}`;
    const bytes = binExt ? Buffer.from(out.data, "base64") : Buffer.from(out.data, "utf8");
    images.push({ index, path, name, mimeType: out.mimeType, bytes });
  });
  const fileIds = images.length > 0 ? await storeImages(ctx, images) : new Map<number, string>();
  return outputs.map((out, index) => {
    const fileId = fileIds.get(index);
    return fileId
      ? { type: out.mimeType, fileId }
      : { type: out.mimeType, data: fromKernelText(out.data, ctx.workspaceDirs) };
  });
}

/**
 * Stores the images side by side and registers them in one statement (a retry gets the rows registered the
 * first time); returns each one's file id by its position in the outputs.
 */
async function storeImages(ctx: ExecutionFileContext, images: Image[]): Promise<Map<number, string>> {
  const stored = await pMap(
    images,
    (img) =>
      ctx.files.receive(Readable.from([img.bytes])).then(
        (put) => ({ put }),
        (err: unknown) => ({ err }),
      ),
    { concurrency: STORE_CONCURRENCY },
  );
  const puts = stored.flatMap((s) => ("put" in s ? [s.put] : []));
  const failed = stored.find((s) => "err" in s);
  if (failed && "err" in failed) {
    await ctx.files.discard(puts);
    throw failed.err;
  }
  const committed = await ctx.files.commit(
    puts,
    () =>
      registerExecutionFiles(
        ctx.db,
        ctx.executionId,
        images.map((img, i) => ({
          userId: ctx.userId,
          chatId: ctx.chatId,
          messageId: ctx.messageId,
          path: img.path,
          name: img.name,
          size: puts[i]!.size,
          sha256: puts[i]!.sha256,
          storageKey: puts[i]!.key,
          mimeType: img.mimeType,
          source: "output",
        })),
      ),
    { insertWaitsForRemovals: true },
  );
  // Retried with the whole outcome on a transient failure (registration is idempotent), which waits again.
  if (!committed.kept) throw committed.error;
  const idByPath = new Map(committed.value.map((f) => [f.path, f.id]));
  const ids = new Map<number, string>();
  for (const img of images) {
    const id = idByPath.get(img.path);
    if (!id) throw new Error(`output ${img.name} was not registered`);
    ids.set(img.index, id);
  }
  return ids;
}
