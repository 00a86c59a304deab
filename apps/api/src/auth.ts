import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestHandler, Response } from "express";
import type { ApiKeyHolder, ApiKeyKind, Db } from "@codeinterp/db";
import { findApiKeyHolder, hashApiKey } from "@codeinterp/db";
import { END_USER_ID, endUserId } from "./end-users";
import { EndUserNotAllowedError, InvalidApiKeyError, InvalidEndUserError } from "./auth-errors";
import { HttpError } from "./errors";

export { EndUserNotAllowedError, InvalidApiKeyError, InvalidEndUserError };

export function bearer(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1] ?? null;
}

/** The header a tenant key names its end user with, on every surface that authenticates with requireApiKey. */
export const END_USER_HEADER = "x-end-user";

/** Who a request acts as. */
export interface Caller {
  /** The codeinterp user: the key's own, or the end user's derived one (see end-users.ts). */
  userId: string;
  keyId: string;
  keyKind: ApiKeyKind;
  /** A tenant key's tenant (its user id), whether or not an end user was named; null for a user key. */
  tenant: string | null;
  /** The end user named (tenant keys only). */
  endUser: string | null;
}

/**
 * Key → holder lookups are cached for a short while: every request (a client polling status, say) would
 * otherwise cost a database round trip. Only valid keys are cached, by their hash, so a wrong key is
 * always checked against the database. One cache per database handle, shared by every surface of the
 * process, so that a revocation through the admin API drops the key at once here (forgetApiKey); another
 * API process may serve a revoked key until its own entry lapses, at most KEY_CACHE_TTL_MS.
 */
export const KEY_CACHE_TTL_MS = 10_000;
const KEY_CACHE_MAX = 10_000;
type KeyCache = Map<string, { holder: ApiKeyHolder; until: number }>;
const caches = new WeakMap<Db, KeyCache>();

function cacheOf(db: Db): KeyCache {
  let cache = caches.get(db);
  if (!cache) {
    cache = new Map() as KeyCache;
    caches.set(db, cache);
  }
  return cache;
}

/** Key → its holder (null for an unknown or revoked key), with the short cache described above. */
export function apiKeyResolver(db: Db): (key: string) => Promise<ApiKeyHolder | null> {
  const cache = cacheOf(db);
  return async (key) => {
    const hash = hashApiKey(key);
    const hit = cache.get(hash);
    if (hit && hit.until > Date.now()) return hit.holder;
    const holder = await findApiKeyHolder(db, key);
    if (holder) {
      if (cache.size >= KEY_CACHE_MAX) cache.clear();
      cache.set(hash, { holder, until: Date.now() + KEY_CACHE_TTL_MS });
    } else cache.delete(hash);
    return holder;
  };
}

/** Drops a key from this process's cache (called when it is revoked). */
export function forgetApiKey(db: Db, keyHash: string): void {
  cacheOf(db).delete(keyHash);
}

/**
 * The codeinterp user a key acts as, with the end user it names (X-End-User, or a surface's own field;
 * undefined: none). A tenant key naming an end user acts as that end user's user; without one, as the
 * tenant itself. A user key acts as its user and may not name anyone. Throws InvalidApiKeyError,
 * EndUserNotAllowedError or InvalidEndUserError. Every surface resolves its callers with this.
 */
export function callerResolver(db: Db): (key: string, endUser: string | undefined) => Promise<Caller> {
  const resolve = apiKeyResolver(db);
  return async (key, endUser) => {
    const holder = await resolve(key);
    if (!holder) throw new InvalidApiKeyError("invalid API key");
    return callerOf(holder, endUser);
  };
}

export function callerOf(holder: ApiKeyHolder, endUser: string | undefined): Caller {
  const base = { keyId: holder.keyId, keyKind: holder.kind };
  if (endUser !== undefined) {
    if (holder.kind !== "tenant") throw new EndUserNotAllowedError("only a tenant key may name an end user");
    if (!END_USER_ID.test(endUser))
      throw new InvalidEndUserError("the end user must be 1 to 200 characters without control characters");
    return { ...base, userId: endUserId(holder.userId, endUser), tenant: holder.userId, endUser };
  }
  return { ...base, userId: holder.userId, tenant: holder.kind === "tenant" ? holder.userId : null, endUser: null };
}

/**
 * Bearer API key, and X-End-User for tenant keys. Sets res.locals.userId (the codeinterp user acted as,
 * the end user's when one is named) and res.locals.caller.
 */
export function requireApiKey(db: Db): RequestHandler {
  const resolve = callerResolver(db);
  return async (req, res, next) => {
    const key = bearer(req.headers.authorization);
    if (!key) throw new HttpError(401, "unauthorized", "missing API key: send Authorization: Bearer <key>");
    const header = req.headers[END_USER_HEADER];
    const caller = await resolve(key, typeof header === "string" ? header : undefined);
    res.locals.userId = caller.userId;
    res.locals.caller = caller;
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
