import { hostname } from "node:os";
// The live-kernel ceiling on the real stack (issue 11, item 4), with a Jupyter server of this file's own so
// that its REST API's kernel list counts exactly this file's kernels.
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { silentLog, startLocalJupyter } from "@codeinterp/kernel";
import type { LocalJupyter } from "@codeinterp/kernel";
import {
  LIVE_KERNEL_START_PREFIX,
  createRedis,
  liveKernelsKey,
  workerMetricsKey,
  cellKeyPrefix,
} from "@codeinterp/queue";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

const RESET_NOTE = /variables from earlier executions are gone/;

let jupyter: LocalJupyter;
beforeAll(async () => {
  const stateDir = path.join(inject("testRoot"), `jupyter-ceiling-${randomBytes(4).toString("hex")}`);
  await mkdir(stateDir, { recursive: true });
  jupyter = await startLocalJupyter({ rootDir: inject("testRoot"), stateDir, port: 0, log: silentLog });
});
afterAll(async () => jupyter?.stop());

/** The server's kernel ids; bounded: a server that keeps failing fails the test instead of looping for good. */
const kernelIds = async (): Promise<string[]> => {
  let last = "";
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      const res = await fetch(`${jupyter.url}/api/kernels`, {
        headers: { authorization: `token ${jupyter.token}` },
        signal: AbortSignal.timeout(5_000),
      });
      const body = (await res.json()) as unknown;
      // jupyter_server 1.23 can answer 500 while a kernel in the list is being shut down: ask again.
      if (res.ok && Array.isArray(body)) return (body as { id: string }[]).map((k) => k.id);
      last = `HTTP ${res.status}`;
    } catch (err) {
      // A connection reset while the server is busy starting and stopping kernels: ask again.
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the Jupyter server did not list its kernels: ${last}`);
};

/**
 * Counts the Jupyter server's kernels (GET /api/kernels) every 100 ms and remembers the most seen at once.
 * Kernels there before it started are left out: message kernels outlive a stack that closed (they stay for
 * the next worker), and those of an earlier test here are not this test's.
 */
async function countKernels() {
  let most = 0;
  let stopped = false;
  const before = new Set(await kernelIds());
  const count = async () => (await kernelIds()).filter((id) => !before.has(id)).length;
  const loop = (async () => {
    while (!stopped) {
      most = Math.max(most, await count());
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  // Its failure is the test's, reported by stop(), not an unhandled rejection meanwhile.
  loop.catch(() => undefined);
  return {
    get most() {
      return most;
    },
    now: count,
    async stop() {
      stopped = true;
      await loop;
      return most;
    },
  };
}

const env = (extra: Record<string, string> = {}) => ({
  JUPYTER_URL: jupyter.url,
  JUPYTER_TOKEN: jupyter.token,
  MAX_LIVE_KERNELS: "2",
  // These cases are about the count ceiling: any idle kernel may make room at once.
  KERNEL_EVICTION_PROTECT_MS: "0",
  ...extra,
});

describe("a ceiling of two live kernels", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ env: env({ KERNEL_POOL_SIZE: "1", WORKER_CONCURRENCY: "4" }) });
  });
  afterAll(async () => stack?.close());

  it("five messages submitted at once all complete, the server never has more than two kernels, and the waits are counted", async () => {
    const api = client(stack.url, (await stack.newUser("five")).key);
    const kernels = await countKernels();
    const runs = await Promise.all(
      [1, 2, 3, 4, 5].map((i) =>
        api.run({ messageId: `five-${i}`, code: `import time\ntime.sleep(0.5)\nprint(${i})` }, 90_000),
      ),
    );
    expect(runs.map((r) => [r.status, r.result?.stdout])).toEqual([1, 2, 3, 4, 5].map((i) => ["completed", `${i}\n`]));
    expect(await kernels.stop()).toBeLessThanOrEqual(2);
    const redis = createRedis(stack.env.REDIS_URL!, { name: "test" });
    try {
      const metric = async (name: string) => {
        const keys = await redis.keys(workerMetricsKey(stack.queuePrefix, "*"));
        const snap = JSON.parse((await redis.get(keys[0]!)) ?? "{}") as {
          metrics?: { name: string; values: { value: number }[] }[];
        };
        return snap.metrics?.find((m) => m.name === name)?.values[0]?.value;
      };
      // Four worker slots, two kernels, every execution busy for 0.5 s: some had to wait.
      await expect.poll(() => metric("codeinterp_kernel_capacity_waits_total"), { timeout: 10_000 }).toBeGreaterThan(0);
      expect(await metric("codeinterp_kernels_live_max")).toBe(2);
      expect(await metric("codeinterp_kernels_live")).toBeLessThanOrEqual(2);
    } finally {
      redis.disconnect();
    }
  }, 150_000);

  it("a message whose idle kernel made room for others runs again on a new kernel, and its result says its variables were reset", async () => {
    const api = client(stack.url, (await stack.newUser("lru")).key);
    const kernels = await countKernels();
    const first = await api.run({ messageId: "a", code: "x = 1\nopen('/mnt/data/kept.txt', 'w').write('k')" });
    expect(first.result.notes).toEqual([]);
    await api.run({ messageId: "b", code: "y = 2" });
    await api.run({ messageId: "c", code: "z = 3" });
    // a was the least recently used idle kernel when c needed one.
    const again = await api.run({ messageId: "a", code: "print('x' in globals(), open('kept.txt').read())" });
    expect(again.status).toBe("completed");
    expect(again.result.stdout).toBe("False k\n");
    expect(again.result.notes).toEqual([expect.stringMatching(RESET_NOTE)]);
    // Its next execution keeps the new kernel's variables, without the note.
    await api.run({ messageId: "a", code: "w = 4" });
    const kept = await api.run({ messageId: "a", code: "print(w)" });
    expect(kept.result.stdout).toBe("4\n");
    expect(kept.result.notes).toEqual([]);
    expect(await kernels.stop()).toBeLessThanOrEqual(2);
  });

  it("while both kernels are busy a third message waits queued, and runs once one is free", async () => {
    const api = client(stack.url, (await stack.newUser("busy")).key);
    const kernels = await countKernels();
    const slow = "import time\ntime.sleep(3)\nprint('slow')";
    const one = await api.post("/v1/executions", { chatId: "c", messageId: "one", code: slow });
    const two = await api.post("/v1/executions", { chatId: "c", messageId: "two", code: slow });
    await api.waitForStatus(one.body.id, "running");
    await api.waitForStatus(two.body.id, "running");
    const three = await api.post("/v1/executions", { chatId: "c", messageId: "three", code: "print('three')" });
    const seen = new Set<string>();
    for (;;) {
      const [a, b, c] = await Promise.all(
        [one, two, three].map(async (e) => (await api.get(`/v1/executions/${e.body.id}`)).body.status as string),
      );
      if (a !== "running" || b !== "running") break;
      seen.add(c!);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect([...seen]).toEqual(["queued"]);
    const done = await api.get(`/v1/executions/${three.body.id}?waitMs=30000`);
    expect(done.body.status).toBe("completed");
    expect(done.body.result.stdout).toBe("three\n");
    expect(await kernels.stop()).toBeLessThanOrEqual(2);
  });
});

describe("a conversation in progress is not evicted for a new message", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({
      env: env({ KERNEL_POOL_SIZE: "0", WORKER_CONCURRENCY: "4", KERNEL_EVICTION_PROTECT_MS: "4000" }),
    });
  });
  afterAll(async () => stack?.close());

  it("a new message waits while both kernels were used moments ago; their follow-ups keep their variables", async () => {
    const api = client(stack.url, (await stack.newUser("protect")).key);
    await api.run({ messageId: "talk-1", code: "v = 1" });
    await api.run({ messageId: "talk-2", code: "v = 2" });
    const newcomer = await api.post("/v1/executions", { chatId: "c", messageId: "new", code: "print('new')" });
    // The follow-ups come while the newcomer waits: neither conversation lost its kernel to it.
    const [one, two] = await Promise.all([
      api.run({ messageId: "talk-1", code: "print(v)" }),
      api.run({ messageId: "talk-2", code: "print(v)" }),
    ]);
    expect([one.result.stdout, one.result.notes, two.result.stdout, two.result.notes]).toEqual(["1\n", [], "2\n", []]);
    // Once one of them has been idle past the protection it makes room, and the newcomer runs.
    const done = await api.get(`/v1/executions/${newcomer.body.id}?waitMs=30000`);
    expect([done.body.status, done.body.result?.stdout]).toEqual(["completed", "new\n"]);
  });
});

describe("a worker SIGKILLed while holding places under the ceiling", () => {
  let stack: TestStack;
  const fast = { JOB_LOCK_DURATION_MS: "2000", JOB_STALLED_INTERVAL_MS: "1000", WORKER_HEARTBEAT_MS: "300" };
  beforeAll(async () => {
    stack = await startTestStack({ worker: false, env: env({ ...fast, KERNEL_POOL_SIZE: "0" }) });
  });
  afterAll(async () => stack?.close());

  it("does not shrink capacity for good: its running and pre-started kernels give their places back", async () => {
    const api = client(stack.url, (await stack.newUser("kill")).key);
    const redis = createRedis(stack.env.REDIS_URL!, { name: "test" });
    // One running execution and one pre-started kernel: both places of the ceiling.
    const child = stack.spawnWorker({ WORKER_ID: "doomed", KERNEL_POOL_SIZE: "1" });
    const kernels = await countKernels();
    try {
      const lost = await api.post("/v1/executions", {
        chatId: "c",
        messageId: "lost",
        code: "import time\ntime.sleep(60)",
      });
      await api.waitForStatus(lost.body.id, "running", 30_000);
      // Both places held by started kernels (a place still reserved for a start in flight is freed as soon as
      // the worker stops beating, while the kernel it was starting may still come up: not what this tests).
      const startedKernels = async () =>
        (
          await redis.zrangebyscore(liveKernelsKey(cellKeyPrefix(stack.queuePrefix, hostname())), Date.now(), "+inf")
        ).filter((m) => !m.startsWith(LIVE_KERNEL_START_PREFIX)).length;
      await expect.poll(startedKernels, { timeout: 30_000 }).toBe(2);
      child.kill("SIGKILL");
      await stack.startWorker();
      const runs = await Promise.all(
        ["after-1", "after-2"].map((m) => api.run({ messageId: m, code: `print('${m}')` }, 60_000)),
      );
      expect(runs.map((r) => r.status)).toEqual(["completed", "completed"]);
      const ended = await api.get(`/v1/executions/${lost.body.id}?waitMs=30000`);
      expect(ended.body.failure?.code).toBe("worker_lost");
      expect(await kernels.stop()).toBeLessThanOrEqual(2);
    } finally {
      child.kill("SIGKILL");
      await kernels.stop();
      redis.disconnect();
    }
  });
});
