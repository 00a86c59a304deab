import { Mutex } from "redis-semaphore";
import type { Redis } from "@codeinterp/queue";

export class LockTimeoutError extends Error {
  override name = "LockTimeoutError";
}

export interface HeldLock {
  /** Taken at the first attempt: nobody held it. */
  firstTry: boolean;
  /** Deletes the lock only if it is still this holder's (tokened); stops renewing it. */
  release(): Promise<void>;
}

export interface LockOptions {
  /** A holder that stops renewing (killed, frozen) loses the lock after this long. */
  ttlMs: number;
  /** Longest wait for a lock someone else holds; 0 tries once. */
  waitMs: number;
  signal?: AbortSignal;
  /** Renewal found the lock taken over (it lapsed while this process was frozen). */
  onLost?: (err: Error) => void;
}

const mutex = (redis: Redis, key: string, opts: LockOptions, wait: boolean) =>
  new Mutex(redis, key, {
    lockTimeout: opts.ttlMs,
    acquireTimeout: wait ? opts.waitMs : opts.ttlMs,
    acquireAttemptsLimit: wait ? Number.POSITIVE_INFINITY : 1,
    // The library sleeps one interval after a failed attempt even when it will not try again.
    retryInterval: wait ? 50 : 0,
    refreshInterval: Math.max(Math.floor(opts.ttlMs / 3), 50),
    // The library's default throws from a timer; a lost lock is logged by the owner instead.
    onLockLost: (err) => opts.onLost?.(err),
  });

/**
 * A Redis lock (redis-semaphore's Mutex: SET NX PX, renewed and released only with its holder's token), so
 * a worker that dies frees it within `ttlMs` while a long execution keeps it. The first SET is sent before
 * this function yields: a command the caller sends right after it runs after the SET on that connection.
 */
export async function acquireLock(redis: Redis, key: string, opts: LockOptions): Promise<HeldLock> {
  const first = mutex(redis, key, opts, false);
  try {
    if (await first.tryAcquire(opts.signal)) return held(first, true);
    if (opts.waitMs <= 0) throw new LockTimeoutError(`${key} is held`);
    const waiting = mutex(redis, key, opts, true);
    if (await waiting.tryAcquire(opts.signal)) return held(waiting, false);
  } catch (err) {
    if (opts.signal?.aborted && !(err instanceof LockTimeoutError))
      throw new LockTimeoutError(`gave up waiting for ${key}`);
    throw err;
  }
  throw new LockTimeoutError(`waited ${opts.waitMs} ms for ${key}`);
}

/** The lock if nobody holds it, without waiting; null when someone does. */
export async function tryLock(
  redis: Redis,
  key: string,
  ttlMs: number,
  onLost?: (err: Error) => void,
): Promise<HeldLock | null> {
  const m = mutex(redis, key, { ttlMs, waitMs: 0, ...(onLost ? { onLost } : {}) }, false);
  return (await m.tryAcquire()) ? held(m, true) : null;
}

function held(m: Mutex, firstTry: boolean): HeldLock {
  return {
    firstTry,
    async release() {
      // A lock whose release fails expires with its TTL; the token keeps it from freeing someone else's.
      await m.release().catch(() => undefined);
    },
  };
}
