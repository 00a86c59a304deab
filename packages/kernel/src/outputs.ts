import type { RichOutput } from "./types";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/svg+xml"] as const;
const RICH_TEXT_TYPES = ["text/html", "application/json"] as const;

function asString(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value.join("");
  return null;
}

function entry(mimeType: string, value: unknown, metadata: Record<string, unknown>): RichOutput | null {
  const data = mimeType === "application/json" ? JSON.stringify(value) : asString(value);
  if (data === null || data === undefined) return null;
  const meta = metadata[mimeType];
  const out: RichOutput = {
    mimeType,
    data: mimeType.startsWith("image/") && mimeType !== "image/svg+xml" ? data.trim() : data,
  };
  if (meta && typeof meta === "object" && !Array.isArray(meta)) out.metadata = meta as Record<string, unknown>;
  return out;
}

/**
 * Picks the entries of one display_data / execute_result mime bundle worth keeping:
 * - an image (png, else jpeg, else svg) alone: the bundle's text/plain is only a repr like "<Figure ...>";
 * - otherwise the richest of text/html / application/json, plus text/plain when present, because a model
 *   reads a DataFrame's plain text far better than its HTML;
 * - otherwise text/plain. Other types (widgets, plotly, latex) are dropped.
 */
export function selectBundle(data: Record<string, unknown>, metadata: Record<string, unknown> = {}): RichOutput[] {
  for (const mime of IMAGE_TYPES) {
    if (mime in data) {
      const e = entry(mime, data[mime], metadata);
      if (e) return [e];
    }
  }
  const picked: RichOutput[] = [];
  for (const mime of RICH_TEXT_TYPES) {
    if (mime in data) {
      const e = entry(mime, data[mime], metadata);
      if (e) {
        picked.push(e);
        break;
      }
    }
  }
  if ("text/plain" in data) {
    const e = entry("text/plain", data["text/plain"], metadata);
    if (e) picked.push(e);
  }
  return picked;
}

export function outputBytes(o: RichOutput): number {
  return Buffer.byteLength(o.data);
}
