import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "@codeinterp/db";
import { client, startTestStack } from "../../../test/helpers/stack";
import type { TestStack } from "../../../test/helpers/stack";
import { createWorkerEvents } from "../src/events";
import { recordEvents } from "./helpers/worker-events";

describe("one message across several workers", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ env: { KERNEL_POOL_SIZE: "0", WORKER_CONCURRENCY: "2" } });
    await stack.startWorker({ WORKER_ID: "second" });
  });
  afterAll(async () => stack?.close());

  it("executions of one message run one at a time, in one kernel, whichever worker takes them", async () => {
    const api = client(stack.url, (await stack.newUser("serial")).key);
    const code =
      "import time, os\nt0 = time.time()\ntime.sleep(0.8)\ncount = globals().get('count', 0) + 1\nprint(t0, time.time(), count, os.getpid())";
    const runs = await Promise.all([1, 2, 3].map(() => api.run({ messageId: "shared", code }, 60_000)));
    const spans = runs.map((r) => r.result.stdout.trim().split(" ").map(Number) as [number, number, number, number]);
    spans.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) expect(spans[i]![0]).toBeGreaterThanOrEqual(spans[i - 1]![1]);
    expect(spans.map((s) => s[2])).toEqual([1, 2, 3]);
    expect(new Set(spans.map((s) => s[3])).size).toBe(1);
  });
});

// Two worker slots: a cancel of an execution waiting for its message, and a busy message next to a free one.
describe("executions waiting for their message's previous one", () => {
  let stack: TestStack;
  const events = createWorkerEvents();
  // Executions whose job stepped aside (gave its slot back) because their message was busy.
  const waited = recordEvents(events, "turn:steppedAside");
  const steppedAside = (executionId: string) =>
    waited.seen.some((e) => e.executionId === executionId && e.reason === "message_busy");
  beforeAll(async () => {
    stack = await startTestStack({ events, env: { KERNEL_POOL_SIZE: "0", WORKER_CONCURRENCY: "2" } });
  });
  afterAll(async () => {
    waited.stop();
    await stack?.close();
  });

  it("a cancel ends the waiting one at once, without running it, and the first one still completes", async () => {
    const api = client(stack.url, (await stack.newUser("waiter")).key);
    const first = await api.post("/v1/executions", {
      chatId: "c",
      messageId: "m",
      code: "import time\ntime.sleep(4)\nprint('first')",
    });
    await api.waitForStatus(first.body.id, "running");
    const second = await api.post("/v1/executions", { chatId: "c", messageId: "m", code: "print('second')" });
    await expect.poll(() => steppedAside(second.body.id), { timeout: 10_000 }).toBe(true); // a worker saw it wait
    expect((await api.post(`/v1/executions/${second.body.id}/cancel`)).status).toBe(202);
    const cancelled = await api.get(`/v1/executions/${second.body.id}?waitMs=10000`);
    expect(cancelled.body.status).toBe("cancelled");
    // "At once": it did not wait for the message's turn, which the first still holds.
    expect((await api.get(`/v1/executions/${first.body.id}`)).body.status).toBe("running");
    const done = await api.get(`/v1/executions/${first.body.id}?waitMs=20000`);
    expect(done.body.status).toBe("completed");
    expect(done.body.result.stdout).toBe("first\n");
  });

  it("executions waiting for their message do not hold slots: another message runs at once, and the waiters run in turn", async () => {
    const api = client(stack.url, (await stack.newUser("busy")).key);
    const slow = "import time\ntime.sleep(6)\nprint('slow')";
    const first = await api.post("/v1/executions", { chatId: "c", messageId: "busy", code: slow });
    await api.waitForStatus(first.body.id, "running");
    // Three more for the busy message: with 2 slots they would fill both while they wait for its kernel.
    const waiting = await Promise.all(
      [1, 2, 3].map(() => api.post("/v1/executions", { chatId: "c", messageId: "busy", code: "print('next')" })),
    );
    // Each has been taken by the worker and stepped aside at least once.
    const seen = new Set<string>();
    await expect
      .poll(
        async () => {
          for (const w of waiting) if (steppedAside(w.body.id)) seen.add(w.body.id);
          return seen.size;
        },
        { timeout: 10_000, interval: 20 },
      )
      .toBe(3);
    const other = await api.run({ messageId: "other", code: "print('other')" });
    expect(other.result.stdout).toBe("other\n");
    const firstNow = await api.get(`/v1/executions/${first.body.id}`);
    expect(firstNow.body.status).toBe("running"); // the other message did not wait for the busy one
    for (const w of waiting) {
      const done = await api.get(`/v1/executions/${w.body.id}?waitMs=20000`);
      expect(done.body.status).toBe("completed");
      expect(done.body.result.stdout).toBe("next\n");
    }
  });
});

describe("idle kernels", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ env: { KERNEL_POOL_SIZE: "0", KERNEL_IDLE_TTL_MS: "1000" } });
  });
  afterAll(async () => stack?.close());

  it("are shut down after the TTL; the next execution gets a new kernel and still sees the files", async () => {
    const api = client(stack.url, (await stack.newUser("idle")).key);
    const first = await api.run({ messageId: "m", code: "v = 1\nopen('/mnt/data/kept.txt','w').write('k')" });
    const db = createDb({ url: stack.databaseUrl });
    let kernelId: string | null;
    try {
      ({ kernelId } = await db.execution.findUniqueOrThrow({ where: { id: first.id } }));
    } finally {
      await db.$disconnect();
    }
    // The idle sweep shuts the message's kernel down on the gateway.
    const gatewayKernel = `${stack.env.JUPYTER_URL}/api/kernels/${kernelId}?token=${stack.env.JUPYTER_TOKEN}`;
    const status = async () => {
      const res = await fetch(gatewayKernel);
      await res.arrayBuffer();
      return res.status;
    };
    await expect.poll(status, { timeout: 15_000, interval: 200 }).toBe(404);
    const later = await api.run({ messageId: "m", code: "print('v' in globals(), open('kept.txt').read())" });
    expect(later.result.stdout).toBe("False k\n");
  });
});

describe("SIGTERM", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ worker: false, env: { KERNEL_POOL_SIZE: "0" } });
  });
  afterAll(async () => stack?.close());

  it("drains: the running execution completes and the worker exits cleanly", async () => {
    const api = client(stack.url, (await stack.newUser("drain")).key);
    const child = stack.spawnWorker({ SHUTDOWN_DEADLINE_MS: "20000" });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const created = await api.post("/v1/executions", {
        chatId: "c",
        messageId: "m",
        code: "import time\ntime.sleep(2)\nprint('finished')",
      });
      await api.waitForStatus(created.body.id, "running");
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      const done = await api.get(`/v1/executions/${created.body.id}`);
      expect(done.body.status).toBe("completed");
      expect(done.body.result.stdout).toBe("finished\n");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
