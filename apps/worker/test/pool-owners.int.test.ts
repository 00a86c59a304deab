import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "@codeinterp/logger";
import { createRedis, poolOwnersKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { createPoolOwners } from "../src/kernels/pool-owners";
import { testRedisUrl } from "../../../test/helpers/redis";

// Pool-kernel ownership on real Redis. The failure injected here is the one a Redis restart causes: the
// transaction that forgets a kernel taken from the pool does not reach Redis.
let redis: Redis;
beforeAll(() => {
  redis = createRedis(testRedisUrl, { name: "pool-owners-test" });
});
afterAll(() => redis?.disconnect());

describe("pool owners", () => {
  it("never shuts down a kernel its pool gave to a message, even when forgetting it failed while Redis was away", async () => {
    const prefix = `citest-owners-${randomBytes(4).toString("hex")}`;
    const shutDown: string[] = [];
    let failNext = false;
    // Real Redis; only the one transaction a restart would lose is made to fail.
    const flaky = new Proxy(redis, {
      get(target, prop, receiver) {
        if (prop === "multi" && failNext) {
          failNext = false;
          return () => ({
            hset: () => undefined,
            hdel: () => undefined,
            exec: () => Promise.reject(new Error("Connection is closed.")),
          });
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const owners = createPoolOwners({
      redis: flaky,
      prefix,
      workerId: "w1",
      gateway: { shutdownKernel: async (id: string) => void shutDown.push(id) },
      log: createLogger({ name: "test", level: "silent" }),
      heartbeatMs: 60_000,
    });
    try {
      owners.record(["k-taken", "k-waiting"]);
      await expect.poll(() => redis.hlen(poolOwnersKey(prefix))).toBe(2);
      failNext = true;
      owners.record(["k-waiting"]); // k-taken went to a message; its record stays behind
      expect(await redis.hget(poolOwnersKey(prefix), "k-taken")).toBe("w1");
      expect(await owners.sweep()).toBe(0);
      expect(shutDown).toEqual([]);
      // The stale record is gone now, and the pool's own kernel is still recorded.
      expect(await redis.hgetall(poolOwnersKey(prefix))).toEqual({ "k-waiting": "w1" });
    } finally {
      await owners.close();
      await redis.del(poolOwnersKey(prefix));
    }
  });

  it("names a pool kernel of a gone worker that the gateway fails to shut down, and sweeps on", async () => {
    const prefix = `citest-owners-${randomBytes(4).toString("hex")}`;
    const logged: Record<string, unknown>[] = [];
    const log = createLogger({
      name: "test",
      level: "warn",
      destination: { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) },
    });
    const owners = createPoolOwners({
      redis,
      prefix,
      workerId: "w1",
      gateway: { shutdownKernel: () => Promise.reject(new Error("gateway unreachable")) },
      log,
      heartbeatMs: 60_000,
    });
    try {
      // Two kernels of a worker that never beats: both are gone through, the failure does not stop the sweep.
      await redis.hset(poolOwnersKey(prefix), "k-a", "w-gone", "k-b", "w-gone");
      expect(await owners.sweep()).toBe(2);
      expect(await redis.hlen(poolOwnersKey(prefix))).toBe(0);
      const warned = logged.filter((l) => l.level === 40).map((l) => [l.kernelId, l.err]);
      expect(warned.sort()).toEqual([
        ["k-a", "gateway unreachable"],
        ["k-b", "gateway unreachable"],
      ]);
    } finally {
      await owners.close();
      await redis.del(poolOwnersKey(prefix));
    }
  });
});
