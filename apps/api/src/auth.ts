import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestHandler, Response } from "express";
import type { Db } from "@codeinterp/db";
import { findUserByApiKey } from "@codeinterp/db";
import { HttpError } from "./errors";

export function bearer(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1] ?? null;
}

/**
 * Key → user lookups are cached for a short while: every request (a client polling status, say) would
 * otherwise cost a database round trip. Only valid keys are cached, by their hash, so a wrong key is
 * always checked against the database.
 */
const KEY_CACHE_TTL_MS = 30_000;
const KEY_CACHE_MAX = 10_000;

/** Key → user id (null for an unknown or revoked key), with the short cache described above. */
export function apiKeyResolver(db: Db): (key: string) => Promise<string | null> {
  const cache = new Map<string, { userId: string; until: number }>();
  return async (key) => {
    const hash = digest(key).toString("hex");
    const hit = cache.get(hash);
    if (hit && hit.until > Date.now()) return hit.userId;
    const userId = await findUserByApiKey(db, key);
    if (userId) {
      if (cache.size >= KEY_CACHE_MAX) cache.clear();
      cache.set(hash, { userId, until: Date.now() + KEY_CACHE_TTL_MS });
    }
    return userId;
  };
}

export function requireApiKey(db: Db): RequestHandler {
  const resolve = apiKeyResolver(db);
  return async (req, res, next) => {
    const key = bearer(req.headers.authorization);
    if (!key) throw new HttpError(401, "unauthorized", "missing API key: send Authorization: Bearer <key>");
    const userId = await resolve(key);
    if (!userId) throw new HttpError(401, "unauthorized", "invalid API key");
    res.locals.userId = userId;
    next();
  };
}

export function userOf(res: Response): string {
  const id = res.locals.userId as unknown;
  if (typeof id !== "string") throw new HttpError(401, "unauthorized", "not authenticated");
  return id;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

export function adminTokenMatches(adminToken: string | undefined, presented: string | null): boolean {
  if (!adminToken || !presented) return false;
  return timingSafeEqual(digest(adminToken), digest(presented));
}

/** Admin routes: Bearer ADMIN_TOKEN, or basic auth with it as the password (for browsers, e.g. Bull Board). */
export function requireAdmin(adminToken: string | undefined, opts: { basicRealm?: string } = {}): RequestHandler {
  return (req, res, next) => {
    if (!adminToken) throw new HttpError(404, "not_found", "admin routes are disabled: set ADMIN_TOKEN");
    const header = req.headers.authorization ?? "";
    let presented = bearer(header);
    const basic = /^Basic\s+(\S+)$/i.exec(header);
    if (!presented && basic?.[1]) {
      const decoded = Buffer.from(basic[1], "base64").toString("utf8");
      presented = decoded.slice(decoded.indexOf(":") + 1);
    }
    if (adminTokenMatches(adminToken, presented)) return next();
    if (opts.basicRealm) res.setHeader("WWW-Authenticate", `Basic realm="${opts.basicRealm}"`);
    throw new HttpError(401, "unauthorized", "admin token required");
  };
}
