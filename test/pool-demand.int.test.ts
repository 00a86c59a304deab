import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cellKeyPrefix, createRedis, poolOwnersKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// The pool is sized by demand: a burst of new messages raises how many kernels it keeps ready (up to
// KERNEL_POOL_MAX_SIZE and a quarter of the live-kernel ceiling); once the burst is past the demand window it
// falls back to KERNEL_POOL_SIZE, shutting the extra kernels down.
let stack: TestStack;
let api: ReturnType<typeof client>;
let redis: Redis;

beforeAll(async () => {
  stack = await startTestStack({
    env: {
      KERNEL_POOL_SIZE: "1",
      KERNEL_POOL_MAX_SIZE: "4",
      KERNEL_POOL_DEMAND_WINDOW_MS: "60000",
      MAX_LIVE_KERNELS: "16",
    },
  });
  api = client(stack.url, (await stack.newUser("burst")).key);
  redis = createRedis(stack.env.REDIS_URL!, { name: "pool-demand-test" });
});
afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

describe("a pool sized by demand", () => {
  it("grows after a burst of new messages and shrinks back once they stop", { timeout: 240_000 }, async () => {
    const poolKernels = async () =>
      (await redis.hkeys(poolOwnersKey(cellKeyPrefix(stack.queuePrefix, hostname())))).length;
    await expect.poll(poolKernels, { timeout: 60_000, interval: 200 }).toBe(1);
    const done = await Promise.all(
      Array.from({ length: 5 }, (_, i) => api.run({ messageId: `burst-${i}`, code: "print(1)" })),
    );
    expect(done.map((d) => d.result.stdout)).toEqual(Array(5).fill("1\n"));
    // More than KERNEL_POOL_SIZE kernels wait ready while the burst is recent...
    // (Kernel starts take seconds each, and much longer on a loaded machine: wait most of the window.)
    await expect.poll(poolKernels, { timeout: 55_000, interval: 100 }).toBeGreaterThan(1);
    // ...and the pool is back to KERNEL_POOL_SIZE once it is not.
    await expect.poll(poolKernels, { timeout: 100_000, interval: 200 }).toBe(1);
  });
});
