// The message lock on the real Redis, tested the way BullMQ tests its lock manager: a held lock is renewed
// past its TTL, only its holder can release it, contenders take turns, and a holder that stops renewing
// (dies) frees it within the TTL.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createRedis } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { LockTimeoutError, acquireLock, tryLock } from "../src/kernels/lock";
import { testRedisUrl } from "../../../test/helpers/redis";

let redis: Redis;
beforeAll(() => {
  redis = createRedis(testRedisUrl, { name: "lock-test" });
});
afterAll(() => redis?.disconnect());

const newKey = () => `citest-lock-${randomBytes(6).toString("hex")}`;
// redis-semaphore's Mutex stores the lock under "mutex:<key>".
const stored = (key: string) => `mutex:${key}`;

it("a held lock is renewed past its TTL, and the key is gone once released", async () => {
  const key = newKey();
  const lock = await tryLock(redis, key, 300);
  expect(lock?.firstTry).toBe(true);
  const t0 = Date.now();
  // Well past three TTLs, nobody else can take it.
  while (Date.now() - t0 < 1200) {
    expect(await tryLock(redis, key, 300)).toBeNull();
    expect(await redis.pttl(stored(key))).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 100));
  }
  await lock!.release();
  expect(await redis.exists(stored(key))).toBe(0);
});

it("release is tokened: a holder whose lock lapsed and was taken by another does not free the new holder's lock", async () => {
  const key = newKey();
  const lost: Error[] = [];
  const first = await tryLock(redis, key, 300, (err) => lost.push(err));
  expect(first).not.toBeNull();
  // As if the first holder froze past its TTL: the key expired and someone else took the lock.
  await redis.del(stored(key));
  const second = await tryLock(redis, key, 5000);
  expect(second).not.toBeNull();
  // The first holder's next renewal finds the lock is not its own any more and says so.
  await expect.poll(() => lost.length, { timeout: 3000 }).toBeGreaterThan(0);
  await first!.release();
  expect(await tryLock(redis, key, 5000)).toBeNull();
  await second!.release();
  const third = await tryLock(redis, key, 5000);
  expect(third).not.toBeNull();
  await third!.release();
});

it("contenders take turns: never two inside at once, and every one gets in", async () => {
  const key = newKey();
  let inside = 0;
  let maxInside = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async (_, i) => {
      const lock = await acquireLock(redis, key, { ttlMs: 2000, waitMs: 20_000 });
      inside++;
      maxInside = Math.max(maxInside, inside);
      await new Promise((r) => setTimeout(r, 20));
      order.push(i);
      inside--;
      await lock.release();
    }),
  );
  expect(maxInside).toBe(1);
  expect(order.sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
});

it("a waiter gives up with LockTimeoutError at its deadline or when its signal aborts, and firstTry says it waited", async () => {
  const key = newKey();
  const held = await acquireLock(redis, key, { ttlMs: 5000, waitMs: 0 });
  await expect(acquireLock(redis, key, { ttlMs: 5000, waitMs: 0 })).rejects.toBeInstanceOf(LockTimeoutError);
  await expect(acquireLock(redis, key, { ttlMs: 5000, waitMs: 200 })).rejects.toBeInstanceOf(LockTimeoutError);
  const ctl = new AbortController();
  const waiting = acquireLock(redis, key, { ttlMs: 5000, waitMs: 20_000, signal: ctl.signal });
  ctl.abort();
  await expect(waiting).rejects.toBeInstanceOf(LockTimeoutError);
  const later = acquireLock(redis, key, { ttlMs: 5000, waitMs: 20_000 });
  await held.release();
  const next = await later;
  expect(next.firstTry).toBe(false);
  await next.release();
});

it("a holder that stops renewing (a dead worker) frees the lock within its TTL", async () => {
  const key = newKey();
  // What a SIGKILLed holder leaves: the key with its TTL, and nobody renewing it.
  await redis.set(stored(key), "dead-holder", "PX", 400);
  const t0 = Date.now();
  const lock = await acquireLock(redis, key, { ttlMs: 5000, waitMs: 10_000 });
  expect(Date.now() - t0).toBeLessThan(2000);
  expect(lock.firstTry).toBe(false);
  await lock.release();
});
