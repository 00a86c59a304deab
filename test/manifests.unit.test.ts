import { readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import { describe, expect, it } from "vitest";

// npm hoists every dependency to the root node_modules, so an import a package.json forgot still resolves
// here and breaks only where the package is installed on its own. This keeps each manifest honest.
const root = path.resolve(import.meta.dirname, "..");
const workspaces = ["apps", "packages"].flatMap((dir) =>
  readdirSync(path.join(root, dir))
    .map((name) => path.join(dir, name))
    .filter((ws) => statSync(path.join(root, ws, "package.json"), { throwIfNoEntry: false })),
);

function sourceFiles(dir: string): string[] {
  const entries = readdirSync(dir, { withFileTypes: true });
  return entries.flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === "generated" || e.name === "node_modules" ? [] : sourceFiles(p);
    return /\.(ts|mts|tsx|js|mjs)$/.test(e.name) && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

/** Package names a file imports (static, type-only, dynamic and re-exports), without node built-ins. */
function importedPackages(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [
    ...text.matchAll(
      /(?:^|\n)\s*(?:import|export)\b[^'"`;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|(?:^|\n)\s*import\s*["']([^"']+)["']/g,
    ),
  ].map((m) => m[1] ?? m[2] ?? m[3] ?? "");
  return specs
    .filter(
      (s) =>
        s &&
        !s.startsWith(".") &&
        !s.startsWith("/") &&
        !s.startsWith("node:") &&
        !builtinModules.includes(s.split("/")[0] ?? ""),
    )
    .map((s) => (s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : (s.split("/")[0] ?? s)));
}

describe("package manifests", () => {
  it("finds the workspaces", () => {
    expect(workspaces.length).toBeGreaterThanOrEqual(8);
  });

  for (const ws of workspaces) {
    it(`${ws} declares every package its sources import`, () => {
      const manifest = JSON.parse(readFileSync(path.join(root, ws, "package.json"), "utf8")) as {
        name: string;
        dependencies?: Record<string, string>;
        devDependencies?: Record<string, string>;
      };
      const declared = new Set([
        ...Object.keys(manifest.dependencies ?? {}),
        ...Object.keys(manifest.devDependencies ?? {}),
        manifest.name,
      ]);
      const srcDirs = ["src", "bin", "public"]
        .map((d) => path.join(root, ws, d))
        .filter((d) => statSync(d, { throwIfNoEntry: false })?.isDirectory());
      const missing = new Set<string>();
      for (const file of srcDirs.flatMap(sourceFiles)) {
        for (const pkg of importedPackages(file))
          if (!declared.has(pkg)) missing.add(`${pkg} (${path.relative(root, file)})`);
      }
      expect([...missing].sort()).toEqual([]);
    });
  }

  it("the API never drives kernels: it does not depend on the kernel package", () => {
    const api = JSON.parse(readFileSync(path.join(root, "apps/api/package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
    };
    expect(Object.keys(api.dependencies ?? {})).not.toContain("@codeinterp/kernel");
    expect(Object.keys(api.dependencies ?? {})).not.toContain("@codeinterp/kernel-host");
  });

  it("the Jupyter client does not depend on the host tooling (the host is injected into it)", () => {
    const kernel = JSON.parse(readFileSync(path.join(root, "packages/kernel/package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    const declared = [...Object.keys(kernel.dependencies ?? {}), ...Object.keys(kernel.devDependencies ?? {})];
    expect(declared).not.toContain("@codeinterp/kernel-host");
    const imports = ["src", "test"]
      .flatMap((d) => sourceFiles(path.join(root, "packages/kernel", d)))
      .filter((f) => /(?:from|import\()\s*["'][^"']*kernel-host/.test(readFileSync(f, "utf8")));
    expect(imports).toEqual([]);
  });
});
