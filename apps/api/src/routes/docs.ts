import { createRequire } from "node:module";
import path from "node:path";
import { Router } from "express";

// swagger-ui-dist ships the built UI; it is served from node_modules, so /docs needs no CDN.
const distDir = path.dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
const ASSETS = new Set([
  "swagger-ui.css",
  "swagger-ui-bundle.js",
  "swagger-ui-standalone-preset.js",
  "favicon-32x32.png",
  "favicon-16x16.png",
]);

// Relative URLs throughout, so the page also works behind a proxy that mounts the API under a prefix.
const PAGE = `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>codeinterp API</title>
    <link rel="stylesheet" type="text/css" href="./swagger-ui.css">
    <link rel="icon" type="image/png" href="./favicon-32x32.png" sizes="32x32">
    <link rel="icon" type="image/png" href="./favicon-16x16.png" sizes="16x16">
    <style>body { margin: 0; } .swagger-ui .topbar { display: none; }</style>
  </head>
  <body>
    <div id="swagger-ui" data-spec-url="../openapi.json"></div>
    <script src="./swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="./init.js" charset="UTF-8"></script>
  </body>
</html>
`;

// A file rather than an inline script, so a strict Content-Security-Policy in front of the API still works.
const INIT = `window.addEventListener("load", function () {
  var el = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: new URL(el.dataset.specUrl, window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    tryItOutEnabled: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout"
  });
});
`;

/** GET /docs: Swagger UI over the served /openapi.json (same schemas that validate requests). */
export function docsRouter(): Router {
  const router = Router();
  router.get("/docs", (req, res) => {
    // The page uses relative URLs: it must be at /docs/ so ./asset resolves under /docs.
    if (!req.originalUrl.split("?")[0]!.endsWith("/")) return res.redirect(301, "docs/");
    res.type("html").setHeader("cache-control", "no-cache").send(PAGE);
  });
  router.get("/docs/init.js", (_req, res) => {
    res.type("application/javascript").setHeader("cache-control", "no-cache").send(INIT);
  });
  router.get("/docs/:asset", (req, res, next) => {
    const asset = req.params.asset;
    if (!ASSETS.has(asset)) return next();
    res.sendFile(asset, { root: distDir, maxAge: "1d" });
  });
  return router;
}
