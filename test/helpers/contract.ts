import { readFileSync } from "node:fs";
import path from "node:path";

export type Route = { method: string; path: string };

/**
 * The routes docs/API.md promises, as OpenAPI writes them (`/v1/files/{id}`): every backticked `METHOD /path`
 * on the page. The page is the contract; tests compare it with what the API serves.
 */
export function contractRoutes(): Route[] {
  const page = readFileSync(path.resolve(import.meta.dirname, "../../docs/API.md"), "utf8");
  const routes = [...page.matchAll(/`(GET|POST|PUT|PATCH|DELETE) (\/[^`\s?]*)/g)].map((m) => ({
    method: (m[1] ?? "").toLowerCase(),
    path: (m[2] ?? "").replace(/:([A-Za-z_]+)/g, "{$1}"),
  }));
  return [...new Map(routes.map((r) => [`${r.method} ${r.path}`, r])).values()];
}
