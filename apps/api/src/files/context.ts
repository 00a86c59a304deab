import pMap from "p-map";
import type { Db, FileRow } from "@codeinterp/db";
import { listMessageAttachments, listMessageFiles } from "@codeinterp/db";
import type { BlobStore } from "@codeinterp/workspace";
import {
  BlobNotFoundError,
  InvalidBlobKeyError,
  uniqueNames,
  VIRTUAL_ROOT,
  withLocalBlob,
} from "@codeinterp/workspace";
import type { ContextFileValue, FilePreviewValue } from "../schemas-files";
import { cleanItem, previewFile } from "./preview";

/** Files beyond this many are listed without a preview; the prompt names at most PROMPT_MAX_FILES. */
export const MAX_PREVIEWS = 50;
export const PROMPT_MAX_FILES = 50;
const PREVIEW_CONCURRENCY = 4;

export interface MessageEntry {
  row: FileRow;
  /** Relative to /mnt/data. */
  path: string;
  source: "attachment" | "generated";
}

/**
 * What code for this message finds in /mnt/data: the attachments under the names the worker gives them
 * (`uniqueNames` over the attachments in attach order, as prepareWorkspace does), then the generated files
 * so far (newest version per path). A generated file at an attachment's path (the code changed it)
 * replaces that attachment's entry.
 */
export async function listMessageEntries(db: Db, userId: string, messageId: string): Promise<MessageEntry[]> {
  const [attachments, generated] = await Promise.all([
    listMessageAttachments(db, userId, messageId),
    listMessageFiles(db, userId, messageId),
  ]);
  const names = uniqueNames(attachments.map((f) => ({ key: f.id, name: f.name })));
  const entries: MessageEntry[] = [];
  const byPath = new Map<string, number>();
  const seen = new Set<string>();
  for (const f of attachments) {
    const name = names.get(f.id);
    if (name === undefined || seen.has(f.id) || f.deletedAt !== null) continue;
    seen.add(f.id);
    byPath.set(name, entries.length);
    entries.push({ row: f, path: name, source: "attachment" });
  }
  for (const f of generated) {
    const p = f.path ?? f.name;
    const at = byPath.get(p);
    if (at !== undefined) entries[at] = { row: f, path: p, source: "generated" };
    else entries.push({ row: f, path: p, source: "generated" });
  }
  return entries;
}

/** The message's files (see listMessageEntries) with previews, and the prompt block describing them. */
export async function buildMessageContext(
  deps: { db: Db; blobs: BlobStore },
  userId: string,
  messageId: string,
): Promise<{ messageId: string; files: ContextFileValue[]; prompt: string }> {
  const entries = await listMessageEntries(deps.db, userId, messageId);
  const previews = await pMap(
    entries,
    async (e, i): Promise<FilePreviewValue | null> => {
      if (i >= MAX_PREVIEWS) return null;
      try {
        return await withLocalBlob(deps.blobs, e.row.storageKey, (blobPath) =>
          previewFile({ blobPath, name: e.row.name, mimeType: e.row.mimeType }),
        );
      } catch (err) {
        if (err instanceof BlobNotFoundError || err instanceof InvalidBlobKeyError) return null;
        throw err;
      }
    },
    { concurrency: PREVIEW_CONCURRENCY },
  );
  const files: ContextFileValue[] = entries.map((e, i) => ({
    id: e.row.id,
    source: e.source,
    path: e.path,
    name: e.row.name,
    size: e.row.size,
    mimeType: e.row.mimeType,
    preview: previews[i] ?? null,
  }));
  return { messageId, files, prompt: buildPrompt(files) };
}

/** `512 B`, `1.2 KB`, `3.4 MB`, `1.0 GB` (powers of 1024). */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

const LIST_IN_PROMPT = 20;

function list(items: readonly string[]): string {
  const shown = items.slice(0, LIST_IN_PROMPT).join(", ");
  return items.length > LIST_IN_PROMPT ? `${shown}, … (${items.length} in all)` : shown;
}

export function describePreview(p: FilePreviewValue | null): string | null {
  if (!p) return null;
  switch (p.kind) {
    case "columns":
      return `columns: ${list(p.columns)}`;
    case "sheets":
      return `sheets: ${list(p.sheets)}`;
    case "keys":
      if (p.keys.length === 0) return p.array ? "a JSON array" : "an empty JSON object";
      return p.array ? `JSON array of objects with keys: ${list(p.keys)}` : `JSON keys: ${list(p.keys)}`;
    case "text":
      return `first line: ${JSON.stringify(p.firstLine)}`;
  }
}

/** The dynamic prompt: a short block telling a model which files it can use and where to save its own. */
export function buildPrompt(
  files: ReadonlyArray<Pick<ContextFileValue, "path" | "mimeType" | "size" | "preview">>,
): string {
  const save = `Save files you create under ${VIRTUAL_ROOT} so the user can download them.`;
  if (files.length === 0) return `No files are available in ${VIRTUAL_ROOT} for this message yet. ${save}`;
  const lines = [`Files available in ${VIRTUAL_ROOT} for this message:`];
  for (const f of files.slice(0, PROMPT_MAX_FILES)) {
    const about = describePreview(f.preview);
    lines.push(
      `- ${VIRTUAL_ROOT}/${cleanItem(f.path, 300)} (${f.mimeType}, ${formatSize(f.size)})${about ? ` — ${about}` : ""}`,
    );
  }
  if (files.length > PROMPT_MAX_FILES) lines.push(`- … and ${files.length - PROMPT_MAX_FILES} more`);
  lines.push(save);
  return lines.join("\n");
}
