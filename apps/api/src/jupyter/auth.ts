import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Db } from "@codeinterp/db";
import { findUserByApiKey } from "@codeinterp/db";
import { jupyterSessionKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";

export const SESSION_COOKIE = "codeinterp-jupyter";
export const XSRF_COOKIE = "_xsrf";

/** Who sent a request, and how: a cookie session must also prove it came from our page (the _xsrf check). */
export interface JupyterCaller {
  userId: string;
  via: "key" | "cookie";
}

/** Cookie values here are tokens we set ourselves (hex); anything else is ignored, not decoded. */
export function readCookies(req: IncomingMessage): Map<string, string> {
  const jar = new Map<string, string>();
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (/^[A-Za-z0-9|_-]{1,512}$/.test(value) && !jar.has(name)) jar.set(name, value);
  }
  return jar;
}

/** The API key of a Jupyter client: `?token=`, `Authorization: token …` or `Authorization: Bearer …`. */
export function presentedKey(req: IncomingMessage): string | null {
  const m = /^(?:token|bearer)\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
  if (m?.[1]) return m[1];
  const query = (req.url ?? "").split("?")[1] ?? "";
  const token = new URLSearchParams(query).get("token");
  return token && token.length <= 512 ? token : null;
}

export const newToken = () => randomBytes(24).toString("hex");
const digest = (s: string) => createHash("sha256").update(s).digest();

export function sameToken(a: string | undefined | null, b: string | undefined | null): boolean {
  if (!a || !b) return false;
  return timingSafeEqual(digest(a), digest(b));
}

/** Server-side login sessions: the cookie holds a random id, Redis its user, so any API instance accepts it. */
export function createSessionStore(redis: Redis, prefix: string, ttlMs: number) {
  const key = (sid: string) => jupyterSessionKey(prefix, digest(sid).toString("hex"));
  return {
    async create(userId: string): Promise<string> {
      const sid = newToken();
      await redis.set(key(sid), userId, "PX", ttlMs);
      return sid;
    },
    async userOf(sid: string): Promise<string | null> {
      return redis.get(key(sid));
    },
  };
}
export type SessionStore = ReturnType<typeof createSessionStore>;

/** Resolves the caller from an API key (any of the three forms) or a login session cookie; null if neither holds. */
export async function identify(req: IncomingMessage, db: Db, sessions: SessionStore): Promise<JupyterCaller | null> {
  const key = presentedKey(req);
  if (key) {
    const userId = await findUserByApiKey(db, key);
    return userId ? { userId, via: "key" } : null;
  }
  const sid = readCookies(req).get(SESSION_COOKIE);
  if (!sid) return null;
  const userId = await sessions.userOf(sid);
  return userId ? { userId, via: "cookie" } : null;
}

/** Jupyter Server's rule: a cookie-authenticated request that changes something echoes the _xsrf cookie in X-XSRFToken. */
export function xsrfOk(req: IncomingMessage, formValue?: unknown): boolean {
  const cookie = readCookies(req).get(XSRF_COOKIE);
  const header = req.headers["x-xsrftoken"];
  const presented = typeof header === "string" ? header : typeof formValue === "string" ? formValue : null;
  return sameToken(cookie, presented);
}
