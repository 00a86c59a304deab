import { readFile } from "node:fs/promises";
import { withLocalBlob } from "@codeinterp/workspace";
import type { FileRow } from "@codeinterp/db";
import type { ApiDeps } from "../deps";
import { defaultLinkTtlS, signedUrl } from "../links/urls";

/** What a tool handler knows about its caller: the codeinterp user and where links point. */
export interface Caller {
  userId: string;
  /** PUBLIC_URL, else the origin the request came in on. */
  origin: string;
}

export type Content = { type: "text"; text: string } | { type: "image"; data: string; mimeType: string };

export interface ToolResult {
  [key: string]: unknown;
  content: Content[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}

/** A tool-level failure the model can act on (bad argument, unknown session): `isError` with a clear message. */
export class ToolInputError extends Error {
  override name = "ToolInputError";
}

export const errorResult = (message: string): ToolResult => ({
  content: [{ type: "text", text: message }],
  isError: true,
});

export interface FileEntry {
  name: string;
  /** Absolute, under /mnt/data. */
  path: string;
  size: number;
  mime_type: string;
  /** Signed, expiring, absolute: downloads without a key. */
  url: string;
}

/** Where a file is in the session's /mnt/data: a generated file at its path, an upload at its name. */
export function workspacePath(f: FileRow): string {
  return `/mnt/data/${f.source === "generated" && f.path ? f.path : f.name}`;
}

export function fileEntry(deps: Pick<ApiDeps, "links" | "env">, caller: Caller, f: FileRow): FileEntry {
  const path = workspacePath(f);
  return {
    name: path.slice(path.lastIndexOf("/") + 1),
    path,
    size: f.size,
    mime_type: f.mimeType,
    url: signedUrl(deps.links, caller.origin, f, defaultLinkTtlS(deps.env)).url,
  };
}

export function linkLifetime(env: { SIGNED_LINK_TTL_S: number; SIGNED_LINK_MAX_TTL_S: number }): string {
  const ttlS = defaultLinkTtlS(env);
  return ttlS >= 7200 ? `${Math.round(ttlS / 3600)} hours` : `${Math.max(1, Math.round(ttlS / 60))} minutes`;
}

export function fileLines(files: FileEntry[]): string {
  return files.map((f) => `- ${f.path} (${humanSize(f.size)}, ${f.mime_type}): ${f.url}`).join("\n");
}

export function humanSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Long output keeps its head and tail: the start says what ran, the end how it ended. */
export function capText(text: string, max: number): string {
  if (text.length <= max) return text;
  const head = Math.floor(max * 0.4);
  const tail = max - head;
  const dropped = text.length - head - tail;
  return `${text.slice(0, head)}\n[... ${dropped} characters omitted ...]\n${text.slice(text.length - tail)}`;
}

export const INLINE_IMAGE_TYPES = new Set(["image/png", "image/jpeg"]);

/** The file as image content, when it is a PNG/JPEG within the inline cap. */
export async function imageContent(deps: Pick<ApiDeps, "blobs" | "env">, f: FileRow): Promise<Content | null> {
  if (!INLINE_IMAGE_TYPES.has(f.mimeType) || f.size > deps.env.MCP_MAX_IMAGE_BYTES) return null;
  const bytes = await withLocalBlob(deps.blobs, f.storageKey, (p) => readFile(p));
  return { type: "image", data: bytes.toString("base64"), mimeType: f.mimeType };
}
