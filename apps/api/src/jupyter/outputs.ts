import type { StoredOutput } from "@codeinterp/queue";

/** One output as an execution's result records it (images are stored files, text is inline). */
export type ResultOutput = StoredOutput;

/** One display_data / execute_result mime bundle, rebuilt from the result's flat output list. */
export interface Bundle {
  entries: ResultOutput[];
  image: boolean;
}

/**
 * The worker keeps, per Jupyter bundle, an image alone, or html/json followed by text/plain, or text/plain
 * (packages/kernel/src/outputs.ts selectBundle): a text/plain closes a bundle, an image is one.
 */
export function bundlesOf(outputs: ResultOutput[]): Bundle[] {
  const bundles: Bundle[] = [];
  let open: Bundle | null = null;
  for (const o of outputs) {
    if (o.type.startsWith("image/")) {
      open = null;
      bundles.push({ entries: [o], image: true });
    } else if (o.type === "text/plain") {
      if (open) open.entries.push(o);
      else bundles.push({ entries: [o], image: false });
      open = null;
    } else {
      open = { entries: [o], image: false };
      bundles.push(open);
    }
  }
  return bundles;
}

const STATEMENT_KEYWORDS =
  /^(import|from|def|class|if|elif|else|for|while|with|try|except|finally|return|pass|break|continue|raise|del|global|nonlocal|assert|async|await\s+\w+\s*=|print\s*\(|display\s*\(|@|%|!)/;

/**
 * Whether the cell's last top-level statement is an expression, which IPython answers with execute_result
 * (the record keeps outputs without their message type). A heuristic on the source: the last line at
 * column 0 starts the statement; keywords, assignments, `print(`/`display(` calls and a trailing `;` mean no.
 */
export function endsWithExpression(code: string): boolean {
  const lines = code.split("\n");
  let start = -1;
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (!line.trim() || line.trimStart().startsWith("#")) continue;
    if (!/^\s/.test(line) && !/^[)\]}]/.test(line)) {
      start = i;
      break;
    }
  }
  if (start < 0) return false;
  const statement = lines
    .slice(start)
    .filter((l) => !l.trimStart().startsWith("#"))
    .join("\n")
    .trim();
  if (STATEMENT_KEYWORDS.test(statement) || statement.endsWith(";") || statement.endsWith(":")) return false;
  return !hasTopLevelAssignment(statement);
}

function hasTopLevelAssignment(s: string): boolean {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) depth--;
    else if (c === "=" && depth === 0) {
      const prev = s[i - 1] ?? "";
      const next = s[i + 1] ?? "";
      if (next === "=") {
        i++;
        continue;
      }
      if (!"=!<>".includes(prev) || /[+\-*/%&|^@]/.test(prev)) return true;
    }
  }
  return false;
}
