import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Response } from "express";
import { Router } from "express";
import { repoRoot } from "@codeinterp/config";

/** The page's assets: apps/api/public/playground (HTML, CSS, and a TypeScript module bundled with the client). */
export const PLAYGROUND_DIR = path.join(repoRoot, "apps/api/public/playground");

/**
 * No inline script or style anywhere; the page talks only to this origin; images are inline plots (data:) or
 * this origin's signed links, and nothing can frame it.
 */
export const PLAYGROUND_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

function secure(res: Response, type: string) {
  res.setHeader("Content-Type", type);
  res.setHeader("Content-Security-Policy", PLAYGROUND_CSP);
  res.setHeader("X-Content-Type-Options", "nosniff");
  res.setHeader("Referrer-Policy", "no-referrer");
  res.setHeader("Cache-Control", "no-cache");
}

/**
 * The browser script is TypeScript that imports @codeinterp/client: esbuild (the engine tsx already runs
 * the apps with) bundles it once, in memory, on first request.
 */
let bundle: Promise<string> | null = null;
async function buildBundle(): Promise<string> {
  const esbuild = await import("esbuild");
  const out = await esbuild.build({
    entryPoints: [path.join(PLAYGROUND_DIR, "playground.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    minify: false,
    legalComments: "none",
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}

export function playgroundRouter(): Router {
  const router = Router();

  router.get("/", async (_req, res) => {
    secure(res, "text/html; charset=utf-8");
    res.send(await readFile(path.join(PLAYGROUND_DIR, "index.html"), "utf8"));
  });

  router.get("/playground/playground.css", async (_req, res) => {
    secure(res, "text/css; charset=utf-8");
    res.send(await readFile(path.join(PLAYGROUND_DIR, "playground.css"), "utf8"));
  });

  router.get("/playground/playground.js", async (_req, res) => {
    bundle ??= buildBundle().catch((err: unknown) => {
      bundle = null;
      throw err;
    });
    const js = await bundle;
    secure(res, "text/javascript; charset=utf-8");
    res.send(js);
  });

  return router;
}
