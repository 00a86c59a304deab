import { parse as parseCsv } from "csv-parse/sync";
import { open } from "node:fs/promises";
import path from "node:path";
import yauzl from "yauzl";
import type { FilePreviewValue } from "../schemas-files";

/** Bytes read from the start of a text-like file for its preview. */
export const HEAD_BYTES = 16 * 1024;
/** A JSON file up to this size is parsed whole; a bigger one is scanned in its first HEAD_JSON_BYTES. */
export const HEAD_JSON_BYTES = 64 * 1024;
/** Largest xl/workbook.xml inflated, and most zip entries looked at, for a workbook's sheet names. */
export const MAX_WORKBOOK_XML_BYTES = 1024 * 1024;
export const MAX_ZIP_ENTRIES = 5000;

const MAX_ITEMS = 100;
const MAX_ITEM_CHARS = 120;
const MAX_LINE_CHARS = 200;

const TEXT_EXTENSIONS = new Set([
  ".py",
  ".r",
  ".jl",
  ".jsonl",
  ".ndjson",
  ".log",
  ".ini",
  ".cfg",
  ".toml",
  ".tex",
  ".rst",
  ".ipy",
]);
const TEXT_APP_TYPES = new Set([
  "application/javascript",
  "application/xml",
  "application/yaml",
  "application/x-yaml",
  "application/sql",
  "application/x-sh",
  "application/toml",
]);
const XLSX_TYPES = new Set([
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "application/vnd.ms-excel.sheet.macroenabled.12",
]);

type Kind = "csv" | "tsv" | "xlsx" | "json" | "text" | null;

/** What kind of preview a file gets, from its name and MIME type. */
export function previewKind(name: string, mimeType: string): Kind {
  const ext = path.extname(name).toLowerCase();
  const type = mimeType.toLowerCase();
  if (ext === ".csv" || type === "text/csv") return "csv";
  if (ext === ".tsv" || ext === ".tab" || type === "text/tab-separated-values") return "tsv";
  if (ext === ".xlsx" || ext === ".xlsm" || XLSX_TYPES.has(type)) return "xlsx";
  if (ext === ".json" || type === "application/json" || type.endsWith("+json")) return "json";
  if (type.startsWith("text/") || TEXT_APP_TYPES.has(type) || TEXT_EXTENSIONS.has(ext)) return "text";
  return null;
}

/** Reads at most `maxBytes` from the start of a file. */
export async function readHead(file: string, maxBytes: number): Promise<{ bytes: Buffer; complete: boolean }> {
  const fh = await open(file, "r");
  try {
    const size = (await fh.stat()).size;
    const want = Math.min(size, maxBytes);
    const buf = Buffer.alloc(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(buf, got, want - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return { bytes: buf.subarray(0, got), complete: got >= size };
  } finally {
    await fh.close();
  }
}

/** Printable, single-line, bounded: previews end up in a model's instructions. */
export function cleanItem(s: string, max = MAX_ITEM_CHARS): string {
  const flat = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function decodeText(bytes: Buffer): string | null {
  if (bytes.includes(0)) return null; // binary
  let text = new TextDecoder("utf-8").decode(bytes);
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text;
}

/**
 * The header record of delimited text (RFC 4180 quoting; a quoted field may span lines). The delimiter is
 * given or guessed among `,` `;` `\t` `|` from the first line. When `complete` is false the text is only a
 * head of the file, and a field cut off by its end is dropped.
 */
export function parseHeaderRow(text: string, opts: { delimiter?: string; complete?: boolean } = {}): string[] {
  const delimiter = opts.delimiter ?? guessDelimiter(text);
  let first: { record: string[]; raw: string } | undefined;
  try {
    // csv-parse's types do not model `raw: true`, which adds each record's source text.
    [first] = parseCsv(text, {
      delimiter,
      to: 1,
      relax_quotes: true,
      relax_column_count: true,
      raw: true,
    }) as unknown as Array<{ record: string[]; raw: string }>;
  } catch {
    return []; // a header cut off inside a quoted field: nothing reliable to show
  }
  if (!first) return [];
  const fields = [...first.record];
  // A head of a larger file may end inside the header row: its last field is then incomplete.
  if (opts.complete === false && !/[\r\n]$/.test(first.raw)) fields.pop();
  if (fields.length === 1 && fields[0]?.trim() === "") return [];
  return fields.slice(0, MAX_ITEMS).map((f) => cleanItem(f));
}

/** csv-parse takes a delimiter but does not sniff one; a header row's most frequent candidate outside quotes is. */
function guessDelimiter(text: string): string {
  const counts = new Map<string, number>([
    [",", 0],
    [";", 0],
    ["\t", 0],
    ["|", 0],
  ]);
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (!quoted && (ch === "\n" || ch === "\r")) break;
    else if (!quoted && counts.has(ch)) counts.set(ch, counts.get(ch)! + 1);
  }
  let best = ",";
  let max = 0;
  for (const [d, n] of counts) {
    if (n > max) {
      best = d;
      max = n;
    }
  }
  return best;
}

/**
 * Top-level keys of a JSON object (or of the first element of a top-level array) found in a possibly
 * truncated head of the document, without parsing the rest. Keys cut off by the end are dropped.
 */
export function scanJsonKeys(text: string): { keys: string[]; array: boolean } | null {
  let i = skipWs(text, 0);
  let array = false;
  if (text[i] === "[") {
    array = true;
    i = skipWs(text, i + 1);
    if (text[i] !== "{") return i < text.length ? { keys: [], array } : null;
  }
  if (text[i] !== "{") return null;
  const keys: string[] = [];
  let depth = 0;
  let expectKey = true;
  i++;
  while (i < text.length && keys.length < MAX_ITEMS) {
    const ch = text[i]!;
    if (ch === '"') {
      const end = stringEnd(text, i);
      if (end < 0) break; // cut off
      if (depth === 0 && expectKey) {
        try {
          keys.push(cleanItem(JSON.parse(text.slice(i, end + 1)) as string));
        } catch {
          return null;
        }
        expectKey = false;
      }
      i = end + 1;
      continue;
    }
    if (ch === "{" || ch === "[") depth++;
    else if (ch === "}" || ch === "]") {
      if (depth === 0) break;
      depth--;
    } else if (ch === "," && depth === 0) expectKey = true;
    i++;
  }
  return { keys, array };
}

function skipWs(text: string, i: number): number {
  while (i < text.length && /\s/.test(text[i]!)) i++;
  return i;
}

/** Index of the closing quote of the string starting at `start`, or -1 when the text ends first. */
function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const ch = text[i];
    if (ch === "\\") i++;
    else if (ch === '"') return i;
  }
  return -1;
}

function jsonPreview(bytes: Buffer, complete: boolean): FilePreviewValue | null {
  const text = decodeText(bytes);
  if (text === null) return null;
  if (complete) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return null;
    }
    const array = Array.isArray(value);
    const target: unknown = array ? (value as unknown[])[0] : value;
    const keys = target && typeof target === "object" && !Array.isArray(target) ? Object.keys(target) : [];
    if (!array && !(value && typeof value === "object")) return null;
    return { kind: "keys", keys: keys.slice(0, MAX_ITEMS).map((k) => cleanItem(k)), array };
  }
  const scanned = scanJsonKeys(text);
  return scanned ? { kind: "keys", ...scanned } : null;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function decodeXmlEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e.startsWith("#x")) return safeCodePoint(parseInt(e.slice(2), 16)) ?? m;
    if (e.startsWith("#")) return safeCodePoint(parseInt(e.slice(1), 10)) ?? m;
    return ENTITIES[e] ?? m;
  });
}

function safeCodePoint(n: number): string | null {
  return Number.isInteger(n) && n >= 0 && n <= 0x10ffff ? String.fromCodePoint(n) : null;
}

/** Sheet names, in workbook order, from the text of `xl/workbook.xml`. */
export function sheetNamesFromWorkbookXml(xml: string): string[] {
  const names: string[] = [];
  const sheet = /<(?:[A-Za-z_][\w.-]*:)?sheet\b([^>]*)>/g;
  for (let m = sheet.exec(xml); m !== null && names.length < MAX_ITEMS; m = sheet.exec(xml)) {
    const attr = /(?:^|\s)name\s*=\s*(?:"([^"]*)"|'([^']*)')/.exec(m[1] ?? "");
    const raw = attr?.[1] ?? attr?.[2];
    if (raw !== undefined) names.push(cleanItem(decodeXmlEntities(raw)));
  }
  return names;
}

/**
 * Sheet names of an xlsx workbook: reads the zip's central directory (at most MAX_ZIP_ENTRIES entries)
 * and inflates only `xl/workbook.xml` (at most MAX_WORKBOOK_XML_BYTES). Null when it is not a readable
 * workbook.
 */
export function xlsxSheetNames(file: string): Promise<string[] | null> {
  return new Promise((resolve) => {
    yauzl.open(file, { lazyEntries: true, autoClose: true, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) {
        resolve(null);
        return;
      }
      let done = false;
      let seen = 0;
      const finish = (value: string[] | null) => {
        if (done) return;
        done = true;
        zip.close();
        resolve(value);
      };
      zip.on("error", () => finish(null));
      zip.on("end", () => finish(null));
      zip.on("entry", (entry: yauzl.Entry) => {
        if (++seen > MAX_ZIP_ENTRIES) return finish(null);
        if (entry.fileName !== "xl/workbook.xml") return zip.readEntry();
        if (entry.uncompressedSize > MAX_WORKBOOK_XML_BYTES) return finish(null);
        zip.openReadStream(entry, (err2, stream) => {
          if (err2 || !stream) return finish(null);
          const chunks: Buffer[] = [];
          let total = 0;
          stream.on("data", (chunk: Buffer) => {
            total += chunk.length;
            if (total > MAX_WORKBOOK_XML_BYTES) {
              stream.destroy();
              finish(null);
            } else chunks.push(chunk);
          });
          stream.on("error", () => finish(null));
          stream.on("end", () => finish(sheetNamesFromWorkbookXml(Buffer.concat(chunks).toString("utf8"))));
        });
      });
      zip.readEntry();
    });
  });
}

/**
 * A short, bounded preview of a stored file: a CSV/TSV header row, a workbook's sheet names, a JSON
 * document's top-level keys, or a text file's first non-empty line; null for anything else or anything
 * unreadable. Never reads more than HEAD_JSON_BYTES (or a workbook's central directory + workbook.xml).
 */
export async function previewFile(file: {
  blobPath: string;
  name: string;
  mimeType: string;
}): Promise<FilePreviewValue | null> {
  try {
    const kind = previewKind(file.name, file.mimeType);
    if (kind === null) return null;
    if (kind === "xlsx") {
      const sheets = await xlsxSheetNames(file.blobPath);
      return sheets ? { kind: "sheets", sheets } : null;
    }
    if (kind === "json") {
      const { bytes, complete } = await readHead(file.blobPath, HEAD_JSON_BYTES);
      return jsonPreview(bytes, complete);
    }
    const { bytes, complete } = await readHead(file.blobPath, HEAD_BYTES);
    const text = decodeText(bytes);
    if (text === null) return null;
    if (kind === "csv" || kind === "tsv") {
      const columns = parseHeaderRow(text, { delimiter: kind === "tsv" ? "\t" : undefined, complete });
      return columns.length > 0 ? { kind: "columns", columns } : null;
    }
    const lines = text.split(/\r\n|\n|\r/);
    if (!complete) lines.pop(); // possibly cut off
    const first = lines.find((l) => l.trim() !== "");
    return first === undefined ? null : { kind: "text", firstLine: cleanItem(first, MAX_LINE_CHARS) };
  } catch {
    return null;
  }
}
