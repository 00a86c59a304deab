import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { listMessageAttachments, listMessageFiles } from "@codeinterp/db";
import type { FileRow } from "@codeinterp/db";
import { BlobTooLargeError, uniqueNames, withLocalBlob } from "@codeinterp/workspace";
import type { ApiDeps } from "../deps";
import { readExecution, submitAndWait } from "../executions/service";
import { storeUpload } from "../files/store";
import type { Caller, Content, FileEntry, ToolResult } from "./results";
import { ToolInputError, fileEntry, fileLines, humanSize, imageContent, linkLifetime } from "./results";
import { resolveSession } from "./sessions";
import type { McpSession } from "./sessions";
import { openAllowedUrl } from "./url-fetch";

/** Placing an upload runs no user code; it waits for a kernel's turn like any execution of the session. */
const PLACE_WAIT_MS = 120_000;

export interface UploadArgs {
  name: string;
  content_base64?: string | undefined;
  url?: string | undefined;
  session_id?: string | undefined;
}

/** A session's files: its uploads at their names in /mnt/data, then what its code wrote. */
async function sessionFiles(
  deps: ApiDeps,
  userId: string,
  session: McpSession,
): Promise<Array<{ file: FileRow; path: string }>> {
  const attachments = await listMessageAttachments(deps.db, userId, session.messageId);
  // Named as the worker names them (uniqueNames over every attachment, deleted ones included).
  const names = uniqueNames(attachments.map((f) => ({ key: f.id, name: f.name })));
  const uploads = attachments
    .filter((f) => f.deletedAt === null)
    .map((file) => ({ file, path: `/mnt/data/${names.get(file.id) ?? file.name}` }));
  const generated = (await listMessageFiles(deps.db, userId, session.messageId)).map((file) => ({
    file,
    path: `/mnt/data/${file.path ?? file.name}`,
  }));
  const byPath = new Map<string, { file: FileRow; path: string }>();
  // A file the code rewrote under an upload's name is the current content.
  for (const f of [...uploads, ...generated]) byPath.set(f.path, f);
  return [...byPath.values()].sort((a, b) => a.path.localeCompare(b.path));
}

function entryAt(deps: ApiDeps, caller: Caller, f: { file: FileRow; path: string }): FileEntry {
  return { ...fileEntry(deps, caller, f.file), path: f.path, name: f.path.slice(f.path.lastIndexOf("/") + 1) };
}

function decodeBase64(content: string, maxBytes: number): Buffer {
  const compact = content.replace(/\s+/g, "");
  // Refused before decoding: an oversized argument costs no memory beyond the request itself.
  if (Math.floor((compact.length * 3) / 4) - 2 > maxBytes)
    throw new ToolInputError(`content_base64 is larger than the upload limit of ${humanSize(maxBytes)}`);
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(compact)) throw new ToolInputError("content_base64 is not valid base64");
  const bytes = Buffer.from(compact, "base64");
  if (bytes.length > maxBytes)
    throw new ToolInputError(`content_base64 is larger than the upload limit of ${humanSize(maxBytes)}`);
  return bytes;
}

export async function uploadFile(deps: ApiDeps, caller: Caller, args: UploadArgs): Promise<ToolResult> {
  if ((args.content_base64 === undefined) === (args.url === undefined))
    throw new ToolInputError("give exactly one of content_base64 or url");
  const maxBytes = Math.min(deps.env.MCP_UPLOAD_MAX_BYTES, deps.env.MAX_UPLOAD_BYTES);
  // Every check that can refuse runs before anything is stored.
  const session = await resolveSession(deps.db, caller.userId, args.session_id);
  let source: Readable;
  let clientType = "";
  if (args.content_base64 !== undefined) {
    source = Readable.from([decodeBase64(args.content_base64, maxBytes)]);
  } else {
    const fetched = await openAllowedUrl(args.url!, deps.env.MCP_URL_ALLOWLIST);
    source = fetched.body;
    clientType = fetched.contentType.split(";")[0]?.trim() ?? "";
  }
  let stored;
  try {
    stored = await deps.files.receive(source, { maxBytes });
  } catch (err) {
    if (err instanceof BlobTooLargeError)
      throw new ToolInputError(`the file is larger than the upload limit of ${humanSize(maxBytes)}`);
    throw err;
  }
  const file = await storeUpload(deps, caller.userId, { filename: args.name, clientType, stored });
  // The file joins the session as an attachment of an execution that runs nothing, which also makes a new
  // session exist: the worker places it in /mnt/data, named as every attachment of a message is.
  const { final: placed } = await submitAndWait(
    deps,
    {
      userId: caller.userId,
      chatId: session.chatId,
      messageId: session.messageId,
      code: "pass",
      fileIds: [file.id],
      timeoutMs: 10_000,
    },
    { ms: PLACE_WAIT_MS, recheckMs: 5_000 },
    { logFields: { mcpSession: session.id, fileId: file.id }, logMessage: "mcp upload placed" },
  );
  const notes = placed ? (readExecution(placed).result?.notes ?? []) : [];
  const entry = (await sessionFiles(deps, caller.userId, session)).find((f) => f.file.id === file.id);
  const path = entry?.path ?? `/mnt/data/${file.name}`;
  const structured = { session_id: session.id, path, size: file.size, mime_type: file.mimeType };
  const text = [
    `Uploaded ${path} (${humanSize(file.size)}, ${file.mimeType}).`,
    `session_id: ${session.id}${session.isNew ? " (new session: pass it to execute_code to work on this file)" : ""}`,
    ...notes.map((n) => `note: ${n}`),
  ].join("\n");
  return { content: [{ type: "text", text }], structuredContent: structured };
}

export async function listFiles(deps: ApiDeps, caller: Caller, args: { session_id: string }): Promise<ToolResult> {
  const session = await resolveSession(deps.db, caller.userId, args.session_id);
  const files = (await sessionFiles(deps, caller.userId, session)).map((f) => entryAt(deps, caller, f));
  const text =
    files.length === 0
      ? `No files in /mnt/data of session ${session.id}.`
      : `Files in /mnt/data of session ${session.id} (download links valid for ${linkLifetime(deps.env)}):\n${fileLines(files)}`;
  return { content: [{ type: "text", text }], structuredContent: { session_id: session.id, files } };
}

const TEXT_TYPES = /^(text\/|application\/(json|xml|javascript|x-yaml|yaml|x-ndjson|csv|sql|x-sh|x-python|toml))/;
const DEFAULT_READ_BYTES = 64 * 1024;
const MAX_READ_BYTES = 1024 * 1024;

export async function readSessionFile(
  deps: ApiDeps,
  caller: Caller,
  args: { session_id: string; path: string; max_bytes?: number | undefined },
): Promise<ToolResult> {
  const session = await resolveSession(deps.db, caller.userId, args.session_id);
  const wanted = args.path.startsWith("/mnt/data/") ? args.path : `/mnt/data/${args.path.replace(/^\/+/, "")}`;
  const found = (await sessionFiles(deps, caller.userId, session)).find((f) => f.path === wanted);
  if (!found) throw new ToolInputError(`No file ${wanted} in session ${session.id}; list_files shows what there is.`);
  const entry = entryAt(deps, caller, found);
  const image = await imageContent(deps, found.file);
  const content: Content[] = [];
  let truncated = false;
  if (image) {
    content.push(
      { type: "text", text: `${entry.path} (${humanSize(entry.size)}, ${entry.mime_type}): ${entry.url}` },
      image,
    );
  } else {
    const limit = Math.min(args.max_bytes ?? DEFAULT_READ_BYTES, MAX_READ_BYTES);
    const head = await withLocalBlob(deps.blobs, found.file.storageKey, (p) => readHead(p, limit));
    if (TEXT_TYPES.test(entry.mime_type) || looksLikeText(head)) {
      truncated = found.file.size > head.length;
      // A cut may split a UTF-8 sequence: the decoder drops the partial tail rather than inventing a character.
      const text = new TextDecoder("utf-8", { fatal: false }).decode(head).replace(/\uFFFD+$/, "");
      content.push({
        type: "text",
        text: truncated
          ? `${text}\n[... showing the first ${head.length} of ${found.file.size} bytes; pass a larger max_bytes (up to ${MAX_READ_BYTES}) or process the file with execute_code ...]`
          : text,
      });
    } else {
      content.push({
        type: "text",
        text: `${entry.path} is binary (${entry.mime_type}, ${humanSize(entry.size)}); download it: ${entry.url}\nTo inspect it, open it with execute_code.`,
      });
    }
  }
  return { content, structuredContent: { session_id: session.id, file: entry, truncated } };
}

async function readHead(file: string, limit: number): Promise<Buffer> {
  const handle = await open(file, "r");
  try {
    const buf = Buffer.alloc(limit);
    const { bytesRead } = await handle.read(buf, 0, limit, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function looksLikeText(bytes: Buffer): boolean {
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, Math.max(0, bytes.length - 4)));
    return true;
  } catch {
    return false;
  }
}
