import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createWorkerEvents } from "../src/events";
import { client, startTestStack } from "../../../test/helpers/stack";
import type { TestStack } from "../../../test/helpers/stack";
import { recordEvents } from "./helpers/worker-events";

// The pool is sized by demand: a burst of new messages raises how many kernels it keeps ready (up to
// KERNEL_POOL_MAX_SIZE and a quarter of the live-kernel ceiling); once the burst is past the demand window it
// falls back to KERNEL_POOL_SIZE, shutting the extra kernels down.
let stack: TestStack;
let api: ReturnType<typeof client>;
const events = createWorkerEvents();
const refilled = recordEvents(events, "pool:refilled");
const shrunk = recordEvents(events, "pool:shrunk");

beforeAll(async () => {
  stack = await startTestStack({
    events,
    env: {
      KERNEL_POOL_SIZE: "1",
      KERNEL_POOL_MAX_SIZE: "4",
      KERNEL_POOL_DEMAND_WINDOW_MS: "60000",
      MAX_LIVE_KERNELS: "16",
    },
  });
  api = client(stack.url, (await stack.newUser("burst")).key);
});
afterAll(async () => {
  await stack?.close();
});

describe("a pool sized by demand", () => {
  it("grows after a burst of new messages and shrinks back once they stop", { timeout: 240_000 }, async () => {
    await expect.poll(() => refilled.seen.length, { timeout: 60_000, interval: 200 }).toBe(1);
    const done = await Promise.all(
      Array.from({ length: 5 }, (_, i) => api.run({ messageId: `burst-${i}`, code: "print(1)" })),
    );
    expect(done.map((d) => d.result.stdout)).toEqual(Array(5).fill("1\n"));
    // More than KERNEL_POOL_SIZE kernels wait ready while the burst is recent...
    // (Kernel starts take seconds each, and much longer on a loaded machine: wait most of the window.)
    const mostReady = () => Math.max(...refilled.seen.map((e) => e.ready));
    await expect.poll(mostReady, { timeout: 55_000, interval: 100 }).toBeGreaterThan(1);
    // ...and the pool is back to KERNEL_POOL_SIZE once it is not.
    await expect.poll(() => shrunk.seen.at(-1)?.ready, { timeout: 100_000, interval: 200 }).toBe(1);
    expect(shrunk.seen.at(-1)?.target).toBe(1);
  });
});
