/**
 * File-name sanitising and deterministic collision naming.
 *
 * The result of {@link sanitizeFilename} is always a single, non-hidden path segment that every mainstream
 * file system accepts: no `/` or `\`, no control characters, never `.`/`..`, at most 255 bytes in UTF-8,
 * NFC-normalised, never empty.
 */

/** Longest file name most file systems accept (ext4, btrfs, xfs, APFS count bytes). */
export const MAX_NAME_BYTES = 255;

/** Used when nothing usable is left of a name. */
export const FALLBACK_NAME = "file";

/** An extension longer than this is treated as part of the stem when truncating. */
const MAX_EXT_BYTES = 32;

// C0 controls (incl. NUL), DEL, C1 controls, line/paragraph separators, and bidi/zero-width format
// characters that can be used to disguise an extension (e.g. U+202E "RIGHT-TO-LEFT OVERRIDE").
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// Windows device names, with or without an extension ("CON", "con.txt", "COM1.tar.gz", "LPT¹").
const WINDOWS_RESERVED = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])$/i;

const encoder = new TextEncoder();
const byteLength = (s: string): number => encoder.encode(s).length;

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** Cut `s` to at most `maxBytes` UTF-8 bytes without splitting a grapheme (combining marks, emoji). */
export function truncateToBytes(s: string, maxBytes: number): string {
  if (byteLength(s) <= maxBytes) return s;
  let out = "";
  let used = 0;
  for (const { segment } of segmenter.segment(s)) {
    const n = byteLength(segment);
    if (used + n > maxBytes) break;
    out += segment;
    used += n;
  }
  return out;
}

/** Split into stem and extension (`"a.tar.gz"` → `["a", ".tar.gz"]`, `"a.csv"` → `["a", ".csv"]`). */
export function splitExtension(name: string): [stem: string, ext: string] {
  const compound = /^(.+?)(\.tar\.(?:gz|bz2|xz|zst|lz4|lz|z))$/i.exec(name);
  if (compound?.[1] && compound[2]) return [compound[1], compound[2]];
  const dot = name.lastIndexOf(".");
  if (dot <= 0 || dot === name.length - 1) return [name, ""];
  return [name.slice(0, dot), name.slice(dot)];
}

/**
 * Fit `stem + suffix + ext` into {@link MAX_NAME_BYTES}, shortening the stem first (the extension is kept
 * unless it is absurdly long).
 */
export function fitName(stem: string, ext: string, suffix = ""): string {
  if (byteLength(ext) > MAX_EXT_BYTES) {
    stem += ext;
    ext = "";
  }
  const room = MAX_NAME_BYTES - byteLength(ext) - byteLength(suffix);
  return truncateToBytes(stem, Math.max(room, 1)) + suffix + ext;
}

function cleanEnds(s: string): string {
  // Leading dots would hide the file (or make it "."/".."); trailing dots and spaces are dropped by Windows.
  return s.replace(/^[\s.]+/u, "").replace(/[\s.]+$/u, "");
}

function guardReserved(s: string): string {
  const firstDot = s.indexOf(".");
  const stem = (firstDot === -1 ? s : s.slice(0, firstDot)).replace(/\s+$/u, "");
  if (!WINDOWS_RESERVED.test(stem)) return s;
  return firstDot === -1 ? `${s}_` : `${s.slice(0, firstDot)}_${s.slice(firstDot)}`;
}

/**
 * Make a user-supplied name safe to use as one file in a workspace.
 *
 * - keeps only the last path segment (`/` and `\` both count): `../../etc/passwd` → `passwd`
 * - removes control characters (C0 incl. NUL, DEL, C1) and invisible bidi/zero-width formatting characters
 * - replaces lone UTF-16 surrogates with U+FFFD, normalises to NFC
 * - strips leading dots/whitespace (no hidden files, never `.` or `..`) and trailing dots/whitespace
 * - suffixes Windows device names: `CON.txt` → `CON_.txt`, `nul` → `nul_`
 * - limits to 255 UTF-8 bytes, shortening the stem and keeping the extension, never splitting a character
 * - never returns an empty string (falls back to `file`)
 */
export function sanitizeFilename(name: string): string {
  let s = String(name).replace(LONE_SURROGATE, "\ufffd").normalize("NFC");
  const segments = s
    .split(/[/\\]/)
    .map((seg) => seg.replace(CONTROL, ""))
    .filter((seg) => cleanEnds(seg) !== "");
  s = segments[segments.length - 1] ?? "";
  // Removing characters can leave a non-normalised sequence; normalise again. Then clean, guard, and fit,
  // repeating because truncation can expose a trailing dot or space (converges in two rounds).
  s = s.normalize("NFC");
  for (let i = 0; i < 3; i++) {
    const before = s;
    s = guardReserved(cleanEnds(s));
    const [stem, ext] = splitExtension(s);
    s = fitName(stem, ext);
    if (s === before) break;
  }
  s = cleanEnds(s);
  return s === "" ? FALLBACK_NAME : s;
}

/** The key two names collide under: case-insensitive, as on default macOS and Windows file systems. */
export function collisionKey(name: string): string {
  return name.normalize("NFC").toLowerCase();
}

/**
 * Deterministic, collision-free names for a list of items, in input order:
 * `data.csv`, `data (2).csv`, `data (3).csv`. Names are sanitised first; names that differ only in case
 * collide. An item whose key was already seen is ignored (the first name wins). Appending items never
 * renames earlier ones, so pass items in a stable order (e.g. attach time).
 *
 * `reserved` names (compared case-insensitively) are treated as taken before the first item.
 */
export function uniqueNames(
  items: ReadonlyArray<{ key: string; name: string }>,
  reserved: Iterable<string> = [],
): Map<string, string> {
  const result = new Map<string, string>();
  const taken = new Set<string>();
  for (const r of reserved) taken.add(collisionKey(r));
  for (const { key, name } of items) {
    if (result.has(key)) continue;
    const clean = sanitizeFilename(name);
    let final = clean;
    if (taken.has(collisionKey(final))) {
      const [stem, ext] = splitExtension(clean);
      for (let n = 2; ; n++) {
        final = fitName(stem, ext, ` (${n})`);
        if (!taken.has(collisionKey(final))) break;
      }
    }
    taken.add(collisionKey(final));
    result.set(key, final);
  }
  return result;
}
