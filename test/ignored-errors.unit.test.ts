import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// An error dropped with `.catch(() => undefined)` is a decision: the line says why ignoring it is right (a
// `//` comment on it or on one of the two lines above), or the error is logged instead. Production code only.
const root = path.resolve(import.meta.dirname, "..");
const dirs = ["apps", "packages"].flatMap((d) =>
  readdirSync(path.join(root, d)).map((name) => path.join(root, d, name, "src")),
);

function sourceFiles(dir: string): string[] {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === "generated" || e.name === "node_modules" ? [] : sourceFiles(p);
    return /\.(ts|mts|js|mjs)$/.test(e.name) ? [p] : [];
  });
}

describe("ignored errors", () => {
  it("every .catch(() => undefined) in production code says why ignoring the error is right", () => {
    const unexplained: string[] = [];
    for (const file of dirs.flatMap(sourceFiles)) {
      const lines = readFileSync(file, "utf8").split("\n");
      lines.forEach((line, i) => {
        if (!/\.catch\(\(\) => (undefined|\{\s*\})\)/.test(line)) return;
        // The comment sits on the line, or above the statement the formatter may have spread over lines:
        // look back over the statement's own lines and the two lines above where it starts.
        let start = i;
        while (start > 0 && i - start < 12 && !/[;{}]\s*$/.test(lines[start - 1] ?? "")) start--;
        const near = lines.slice(Math.max(0, start - 2), i + 1);
        if (!near.some((l) => l.includes("//"))) unexplained.push(`${path.relative(root, file)}:${i + 1}`);
      });
    }
    expect(unexplained).toEqual([]);
  });
});
