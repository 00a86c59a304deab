import { createHash } from "node:crypto";
import path from "node:path";

/** The path code sees its workspace under. */
export const VIRTUAL_ROOT = "/mnt/data";

/** Thrown when a relative path would leave its root (`..`, absolute paths, NUL bytes, symlinks). */
export class PathEscapeError extends Error {
  override readonly name = "PathEscapeError";
  readonly code = "path_escape";
  constructor(
    readonly root: string,
    readonly rel: string,
  ) {
    super(`path escapes its root: ${JSON.stringify(rel)}`);
  }
}

function assertId(label: string, value: string): void {
  if (typeof value !== "string" || value === "" || value.includes("\0")) {
    throw new TypeError(`${label} must be a non-empty string without NUL bytes`);
  }
}

/** sha256(userId + NUL + messageId), hex. Neither id can contain NUL, so distinct pairs never collide. */
export function workspaceId(userId: string, messageId: string): string {
  assertId("userId", userId);
  assertId("messageId", messageId);
  return createHash("sha256").update(userId).update("\0").update(messageId).digest("hex");
}

/**
 * The workspace directory relative to DATA_DIR, with posix separators: `workspaces/<h[0..2]>/<h>`.
 * Use it as the kernel's path when the Jupyter server's root_dir is DATA_DIR.
 */
export function workspaceRelPath(userId: string, messageId: string): string {
  return relPathOf(workspaceId(userId, messageId));
}

/** Absolute workspace directory of a (user, message) pair; ids never appear in the path. */
export function workspaceDirFor(dataDir: string, userId: string, messageId: string): string {
  return workspaceDirOfId(dataDir, workspaceId(userId, messageId));
}

/** Absolute workspace directory of a workspace id (what workspaceId returns: a job's message key). */
export function workspaceDirOfId(dataDir: string, id: string): string {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new Error("not a workspace id");
  return path.join(path.resolve(dataDir), ...relPathOf(id).split("/"));
}

const relPathOf = (id: string) => `workspaces/${id.slice(0, 2)}/${id}`;

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === "" || (!rel.startsWith(`..${path.sep}`) && rel !== ".." && !path.isAbsolute(rel));
}

/**
 * Resolve `rel` (posix or Windows separators) against `root` lexically and return the absolute path.
 * Rejects NUL bytes, absolute paths (`/x`, `C:\x`, `\\server`) and any `..` that leaves the root with
 * {@link PathEscapeError}. `""` and `"."` resolve to the root itself. Symlinks are not resolved: open with
 * O_NOFOLLOW (or check the realpath) before following a path that code could have changed.
 */
export function resolveInside(root: string, rel: string): string {
  if (typeof rel !== "string" || rel.includes("\0")) throw new PathEscapeError(root, String(rel));
  const normalised = rel.replace(/\\/g, "/");
  if (normalised.startsWith("/") || /^[a-zA-Z]:/.test(normalised)) throw new PathEscapeError(root, rel);
  const absRoot = path.resolve(root);
  const full = path.resolve(absRoot, ...normalised.split("/").filter((s) => s !== ""));
  if (!isInside(absRoot, full)) throw new PathEscapeError(root, rel);
  return full;
}

// ---------------------------------------------------------------------------------------------------
// /mnt/data <-> real directory translation

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// A match must not be glued to a longer path name on either side: `/mnt/database`, `/mnt/data2`,
// `/mnt/data.csv`, `/x/mnt/data` and `a/mnt/data` are different paths. Anything else (end, `/`, quotes,
// whitespace, brackets, commas, `{`...) is a boundary.
const NAME_CHAR = String.raw`[\p{L}\p{N}\p{M}_.\-~+@%=$]`;
const BEFORE = String.raw`(?<![\p{L}\p{N}\p{M}_.\-~+@%=$/])`;
const AFTER = String.raw`(?!${NAME_CHAR})`;

function trimTrailingSlashes(dir: string): string {
  const t = dir.replace(/\/+$/, "");
  return t === "" ? "/" : t;
}

/** Rewrite `/mnt/data` and `/mnt/data/...` in code to the real workspace directory, boundary-aware. */
export function toKernelCode(code: string, realDir: string): string {
  const dir = trimTrailingSlashes(realDir);
  const re = new RegExp(`${BEFORE}${escapeRegExp(VIRTUAL_ROOT)}${AFTER}`, "gu");
  return code.replace(re, () => dir);
}

/**
 * Rewrite the real workspace directory (and any alias of it, e.g. its realpath, passed in a list) back to
 * `/mnt/data` in kernel output (stdout, tracebacks, HTML). Same boundary rules as {@link toKernelCode}, so
 * `fromKernelText(toKernelCode(code, d), d) === code` for code that does not mention `d` itself.
 */
export function fromKernelText(text: string, realDir: string | readonly string[]): string {
  const dirs = [...new Set((typeof realDir === "string" ? [realDir] : realDir).map(trimTrailingSlashes))]
    .filter((d) => d !== "/")
    .sort((a, b) => b.length - a.length);
  // Most output names no path at all: no pattern is built for it (one per stream chunk and traceback line).
  if (!dirs.some((d) => text.includes(d))) return text;
  const re = new RegExp(`${BEFORE}(?:${dirs.map(escapeRegExp).join("|")})${AFTER}`, "gu");
  return text.replace(re, () => VIRTUAL_ROOT);
}

// ---------------------------------------------------------------------------------------------------
// sandbox: links in model output

function stripVirtualPrefix(p: string): string {
  let s = p;
  if (s.startsWith("sandbox:")) s = s.slice("sandbox:".length);
  if (s.startsWith(`${VIRTUAL_ROOT}/`)) s = s.slice(VIRTUAL_ROOT.length + 1);
  return s.replace(/^\/+/, "");
}

function spellings(p: string): string[] {
  const out = new Set<string>([p, p.replace(/ /g, "%20")]);
  try {
    out.add(encodeURI(p));
    out.add(p.split("/").map(encodeURIComponent).join("/"));
  } catch {
    // lone surrogates cannot be encoded; the raw spelling still works
  }
  return [...out];
}

// What may follow a link target: end, whitespace, closing brackets, quotes, query/fragment, punctuation.
// A `.` or `:` counts only at a sentence end, so `a.csv` is not matched inside `a.csv.bak`.
const LINK_END = /^(?:$|[\s)\]>"'`?#,;!]|[.:](?:\s|$))/u;

/**
 * Rewrite links to workspace files in model output (markdown or HTML) to their download URLs:
 * `sandbox:/mnt/data/x.csv` anywhere, and a bare `/mnt/data/x.csv` where it is a link target (right after
 * `(`, `<`, `="` or `='`: `[x](/mnt/data/x.csv)`, `<img src="/mnt/data/p.png">`). Prose and inline code
 * mentioning `/mnt/data/x.csv` are left alone. `files[].path` is relative to `/mnt/data` (a `/mnt/data/` or
 * `sandbox:` prefix is tolerated). Percent-encoded spellings (`my%20file.csv`) match too; names with spaces
 * or parentheses are matched against the known paths, longest first. Unknown paths are left as they are.
 */
export function rewriteSandboxLinks(text: string, files: ReadonlyArray<{ path: string; url: string }>): string {
  const known: Array<{ spelling: string; url: string }> = [];
  for (const f of files) {
    const rel = stripVirtualPrefix(f.path);
    if (rel === "") continue;
    for (const spelling of spellings(rel)) known.push({ spelling, url: f.url });
  }
  if (known.length === 0) return text;
  known.sort((a, b) => b.spelling.length - a.spelling.length);

  const re = /(?<![\p{L}\p{N}_])sandbox:\/mnt\/data\/|(?<=\(<?|<|=["'])\/mnt\/data\//gu;
  let out = "";
  let last = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const start = m.index;
    const rest = text.slice(start + m[0].length);
    const hit = known.find((k) => rest.startsWith(k.spelling) && LINK_END.test(rest.slice(k.spelling.length)));
    if (!hit) continue;
    out += text.slice(last, start) + hit.url;
    last = start + m[0].length + hit.spelling.length;
    re.lastIndex = last;
  }
  return out + text.slice(last);
}
