import { randomBytes } from "node:crypto";
import type { Redis } from "@codeinterp/queue";

const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

export class LockTimeoutError extends Error {
  override name = "LockTimeoutError";
}

export interface HeldLock {
  /** Taken at the first attempt: nobody held it. */
  firstTry: boolean;
  release(): Promise<void>;
}

/**
 * A Redis lock (SET NX PX, released only by its holder) renewed while held, so a worker that dies frees
 * it within `ttlMs` while a long execution keeps it.
 */
export async function acquireLock(redis: Redis, key: string, opts: { ttlMs: number; waitMs: number; signal?: AbortSignal }): Promise<HeldLock> {
  const token = randomBytes(12).toString("hex");
  const until = Date.now() + opts.waitMs;
  let delay = 10;
  let attempts = 0;
  for (;;) {
    attempts++;
    if ((await redis.set(key, token, "PX", opts.ttlMs, "NX")) === "OK") break;
    if (Date.now() >= until) throw new LockTimeoutError(`waited ${opts.waitMs} ms for ${key}`);
    if (opts.signal?.aborted) throw new LockTimeoutError(`gave up waiting for ${key}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 200);
  }
  const renew = setInterval(() => {
    redis.eval(EXTEND, 1, key, token, String(opts.ttlMs)).catch(() => undefined);
  }, Math.max(Math.floor(opts.ttlMs / 3), 50));
  renew.unref();
  return {
    firstTry: attempts === 1,
    async release() {
      clearInterval(renew);
      await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
    },
  };
}

export async function tryLock(redis: Redis, key: string, ttlMs: number): Promise<HeldLock | null> {
  try {
    return await acquireLock(redis, key, { ttlMs, waitMs: 0 });
  } catch (err) {
    if (err instanceof LockTimeoutError) return null;
    throw err;
  }
}
