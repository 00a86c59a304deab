import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "@codeinterp/db";
import type { Db } from "@codeinterp/db";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";
import { readSse } from "./helpers/sse";
import { observeStack } from "./helpers/observe";
import { createKernelMappings } from "../apps/worker/src/kernels/mappings";
import { RECENT_MS } from "../apps/worker/src/kernels/sessions";
import { workspaceId } from "@codeinterp/workspace";
import { cellKeyPrefix } from "@codeinterp/queue";

let stack: TestStack;
let api: ReturnType<typeof client>;
let key: string;
let db: Db;
let observe: ReturnType<typeof observeStack>;
let n = 0;
const msg = () => `kmsg-${++n}-${Date.now()}`;

beforeAll(async () => {
  stack = await startTestStack({
    env: { KERNEL_POOL_SIZE: "1", KERNEL_INTERRUPT_GRACE_MS: "1000", MAX_STREAM_BYTES: "100000" },
  });
  key = (await stack.newUser("kim")).key;
  api = client(stack.url, key);
  db = createDb({ url: stack.databaseUrl });
  observe = observeStack(stack);
});
afterAll(async () => {
  observe?.close();
  await db?.$disconnect();
  await stack?.close();
});

const metricsOf = async (id: string) =>
  (await db.execution.findUniqueOrThrow({ where: { id } })).metrics as Record<string, unknown>;

describe("kernel lifecycle", () => {
  it("a message's first execution takes a pre-started kernel from the pool", async () => {
    await api.run({ code: "1" }); // the pool is filled in the background after the worker starts
    await expect.poll(() => observe.poolKernels(), { timeout: 30_000 }).toBe(1);
    const done = await api.run({ messageId: msg(), code: "print('pooled')" });
    expect(done.result.stdout).toBe("pooled\n");
    const metrics = await metricsOf(done.id);
    expect(metrics.pooledKernel).toBe(true);
    expect(metrics.reusedKernel).toBe(false);
  });

  it("executions of one message share variables and its working directory is /mnt/data", async () => {
    // From a pool kernel, which set up its return to /mnt/data while it waited (no setup cell on the way).
    await expect.poll(() => observe.poolKernels(), { timeout: 30_000 }).toBe(1);
    const m = msg();
    const first = await api.run({ messageId: m, code: "x = 41\nimport os\nos.chdir('/tmp')" });
    expect((await metricsOf(first.id)).pooledKernel).toBe(true);
    const second = await api.run({ messageId: m, code: "import os\nprint(x + 1, os.getcwd())" });
    expect(second.result.stdout).toBe("42 /mnt/data\n");
    expect((await metricsOf(second.id)).reusedKernel).toBe(true);
  });

  it("two messages never share a kernel", async () => {
    await api.run({ messageId: msg(), code: "secret = 'A'" });
    const other = await api.run({ messageId: msg(), code: "print('secret' in globals())" });
    expect(other.result.stdout).toBe("False\n");
  });

  it("runaway code ends timed_out at the deadline, keeps earlier output, and the message goes on", async () => {
    const m = msg();
    await api.run({ messageId: m, code: "kept = 7" });
    const t0 = Date.now();
    const done = await api.run({
      messageId: m,
      code: "print('started', flush=True)\nwhile True: pass",
      timeoutMs: 2000,
    });
    expect(done.status).toBe("timed_out");
    expect(done.result.stdout).toBe("started\n");
    expect(Date.now() - t0).toBeLessThan(15_000);
    const next = await api.run({ messageId: m, code: "print(kept)" });
    expect(next.status).toBe("completed");
    expect(next.result.stdout).toBe("7\n");
  });

  it("code whose kernel's end of output is lost completes when its output stops, and says output may be missing", async () => {
    // A flood of output can make the queue between kernel and server drop the kernel's `idle`; without it, the
    // execution used to run to its deadline. Here the kernel drops it every time.
    const m = msg();
    const t0 = Date.now();
    const done = await api.run({
      messageId: m,
      code: [
        "k = get_ipython().kernel",
        "publish = k._publish_status",
        "k._publish_status = lambda status, *a, **kw: None if status == 'idle' else publish(status, *a, **kw)",
        "print('ran')",
      ].join("\n"),
      timeoutMs: 30_000,
    });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toBe("ran\n");
    expect(done.result.notes).toEqual([expect.stringContaining("some of it, near the end, may be missing")]);
    expect(Date.now() - t0).toBeLessThan(15_000);
    const next = await api.run({ messageId: m, code: "k._publish_status = publish\nprint('same kernel')" });
    expect(next.status).toBe("completed");
    expect(next.result.stdout).toBe("same kernel\n");
    expect(next.result.notes).toEqual([]);
  });

  it("code that ignores SIGINT is still stopped", async () => {
    const m = msg();
    const done = await api.run({
      messageId: m,
      code: "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
      timeoutMs: 1500,
    });
    expect(done.status).toBe("timed_out");
    const next = await api.run({ messageId: m, code: "print('alive')" });
    expect(next.result.stdout).toBe("alive\n");
  });

  it("a kernel that dies mid-run fails the execution with kernel_died, and the next one works", async () => {
    const m = msg();
    const done = await api.run({ messageId: m, code: "import os\nprint('bye', flush=True)\nos._exit(1)" });
    expect(done.status).toBe("failed");
    expect(done.failure.code).toBe("kernel_died");
    const next = await api.run({ messageId: m, code: "print('back')" });
    expect(next.status).toBe("completed");
    expect(next.result.stdout).toBe("back\n");
  });

  it("a message's kernel deleted on the server while idle is replaced before any code is sent", async () => {
    const m = msg();
    const first = await api.run({ messageId: m, code: "x = 1" });
    const { kernelId, userId } = await db.execution.findUniqueOrThrow({ where: { id: first.id } });
    const del = await fetch(`${stack.env.JUPYTER_URL}/api/kernels/${kernelId}`, {
      method: "DELETE",
      headers: { authorization: `token ${stack.env.JUPYTER_TOKEN}` },
    });
    expect(del.status).toBe(204);
    // Past the few seconds in which a kernel just released is reused without asking the server (its mapping
    // records when the worker released it).
    // The stack's worker is one cell, named by this machine (CELL_ID's default): its mappings live under it.
    const mappings = createKernelMappings(observe.redis, cellKeyPrefix(stack.queuePrefix, hostname()), 60_000);
    const idleMs = async () => Date.now() - ((await mappings.read(workspaceId(userId, m)))?.lastUsed ?? Date.now());
    await expect.poll(idleMs, { timeout: 30_000 }).toBeGreaterThan(RECENT_MS);
    const next = await api.run({ messageId: m, code: "print('x' in globals())" });
    expect(next.status).toBe("completed");
    expect(next.result.stdout).toBe("False\n");
    expect((await db.execution.findUniqueOrThrow({ where: { id: next.id } })).kernelId).not.toBe(kernelId);
  });

  describe("an interrupt the worker did not send", () => {
    /** Starts code that sleeps on message `m`, waits until it prints, and returns its execution and kernel. */
    const startSleeper = async (m: string) => {
      const created = await api.post("/v1/executions", {
        chatId: "chat-1",
        messageId: m,
        code: "import time\nprint('go', flush=True)\ntime.sleep(60)",
      });
      await readSse(`${stack.url}/v1/executions/${created.body.id}/events`, key, {
        until: (e) => e.event === "stdout",
      });
      const { kernelId } = await db.execution.findUniqueOrThrow({ where: { id: created.body.id } });
      return { id: created.body.id as string, kernelId: kernelId! };
    };
    const onServer = (kernelId: string, method: string, what = "") =>
      fetch(`${stack.env.JUPYTER_URL}/api/kernels/${kernelId}${what}`, {
        method,
        headers: { authorization: `token ${stack.env.JUPYTER_TOKEN}` },
      });

    it("is the code's error while its kernel stays: the message keeps its variables", async () => {
      const m = msg();
      await api.run({ messageId: m, code: "kept = 3" });
      const { id, kernelId } = await startSleeper(m);
      expect((await onServer(kernelId, "POST", "/interrupt")).status).toBe(204);
      const done = await api.get(`/v1/executions/${id}?waitMs=15000`);
      expect(done.body.status).toBe("completed");
      expect(done.body.result.error.ename).toBe("KeyboardInterrupt");
      const next = await api.run({ messageId: m, code: "print(kept)" });
      expect(next.result.stdout).toBe("3\n");
    });

    it("followed by the kernel's shutdown (a server deleting it, or stopping) fails the execution kernel_died", async () => {
      // jupyter_client's own order: interrupt, then shut down. The cell's reply (KeyboardInterrupt) comes
      // while the server still lists the kernel, so a single look right then took it for the code's error.
      const m = msg();
      await api.run({ messageId: m, code: "kept = 3" });
      const { id, kernelId } = await startSleeper(m);
      expect((await onServer(kernelId, "POST", "/interrupt")).status).toBe(204);
      expect((await onServer(kernelId, "DELETE")).status).toBe(204);
      const done = await api.get(`/v1/executions/${id}?waitMs=15000`);
      expect(done.body.status).toBe("failed");
      expect(done.body.failure.code).toBe("kernel_died");
      const next = await api.run({ messageId: m, code: "print('kept' in globals())" });
      expect(next.result.stdout).toBe("False\n");
    });
  });

  it("huge output is truncated with a marker saying how much was dropped", async () => {
    const done = await api.run({
      messageId: msg(),
      code: "import sys\nfor i in range(100_000): sys.stdout.write('x' * 99 + '\\n')",
    });
    expect(done.status).toBe("completed");
    expect(done.result.stdout.length).toBeLessThan(120_000);
    expect(done.result.stdout).toMatch(/output truncated: [\d,]+ bytes dropped/);
  });

  it("cancel interrupts a running execution", async () => {
    const created = await api.post("/v1/executions", {
      chatId: "c",
      messageId: msg(),
      code: "import time\nprint('go', flush=True)\ntime.sleep(60)",
    });
    const events = await readSse(`${stack.url}/v1/executions/${created.body.id}/events`, key, {
      until: (e) => e.event === "stdout",
    });
    expect(events.some((e) => e.event === "stdout")).toBe(true);
    const res = await api.post(`/v1/executions/${created.body.id}/cancel`);
    expect(res.status).toBe(202);
    const done = await api.get(`/v1/executions/${created.body.id}?waitMs=15000`);
    expect(done.body.status).toBe("cancelled");
    expect(done.body.result.stdout).toBe("go\n");
    const again = await api.post(`/v1/executions/${created.body.id}/cancel`);
    expect(again.status).toBe(409);
  });

  it("SSE shows output while the code runs and ends with done carrying the execution", async () => {
    const created = await api.post("/v1/executions", {
      chatId: "c",
      messageId: msg(),
      code: "import time\nfor i in range(5):\n    print('tick', i, flush=True)\n    time.sleep(0.3)",
    });
    const events = await readSse(`${stack.url}/v1/executions/${created.body.id}/events`, key);
    const ticks = events.filter((e) => e.event === "stdout");
    const done = events.at(-1)!;
    expect(done.event).toBe("done");
    expect((done.data as { status: string; result: { stdout: string } }).status).toBe("completed");
    expect((done.data as { result: { stdout: string } }).result.stdout).toContain("tick 4");
    expect(ticks.length).toBeGreaterThanOrEqual(2);
    // The first tick arrived well before the end: it was streamed, not delivered with the result.
    expect(done.at - ticks[0]!.at).toBeGreaterThan(600);
    expect(events.map((e) => e.event)).toEqual(expect.arrayContaining(["status", "stdout", "done"]));
  });

  it("a late SSE subscriber gets the replay and done", async () => {
    const done = await api.run({ messageId: msg(), code: "print('early')" });
    const events = await readSse(`${stack.url}/v1/executions/${done.id}/events`, key);
    expect(events.at(-1)?.event).toBe("done");
    expect((events.at(-1)?.data as { result: { stdout: string } }).result.stdout).toBe("early\n");
  });
});

describe("cancel while queued", () => {
  it("removes the job and ends the execution as cancelled", async () => {
    const idle = await startTestStack({ worker: false });
    try {
      const k = (await idle.newUser("q")).key;
      const c = client(idle.url, k);
      const created = await c.post("/v1/executions", { chatId: "c", messageId: "m", code: "print('never')" });
      const res = await c.post(`/v1/executions/${created.body.id}/cancel`);
      expect(res.status).toBe(202);
      expect(res.body.status).toBe("cancelled");
      await idle.startWorker();
      // The worker takes jobs in order: once a later execution has run, it has passed the cancelled one.
      const later = await c.run({ messageId: "later", code: "print('later')" });
      expect(later.result.stdout).toBe("later\n");
      const after = await c.get(`/v1/executions/${created.body.id}`);
      expect(after.body.status).toBe("cancelled");
      expect(after.body.result).toBeNull();
    } finally {
      await idle.close();
    }
  });
});
