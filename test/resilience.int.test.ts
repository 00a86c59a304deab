import { hostname } from "node:os";
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "@codeinterp/db";
import { cellKeyPrefix, createRedis, poolOwnersKey } from "@codeinterp/queue";
import { workspaceDirFor } from "@codeinterp/workspace";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

const fastStall = { JOB_LOCK_DURATION_MS: "2000", JOB_STALLED_INTERVAL_MS: "1000", KERNEL_POOL_SIZE: "0" };

async function waitFor<T>(fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("a worker killed mid-job", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ worker: false, env: fastStall });
  });
  afterAll(async () => stack?.close());

  it("ends the execution clearly, exactly once, instead of leaving it running", async () => {
    const { key } = await stack.newUser("kill");
    const api = client(stack.url, key);
    const child = stack.spawnWorker();
    try {
      const created = await api.post("/v1/executions", {
        chatId: "c",
        messageId: "m",
        code: "import time\ntime.sleep(20)\nprint('late')",
      });
      await api.waitForStatus(created.body.id, "running");
      child.kill("SIGKILL");
      await stack.startWorker(fastStall);
      const done = await api.get(`/v1/executions/${created.body.id}?waitMs=30000`);
      expect(done.body.status).toBe("failed");
      expect(done.body.failure.code).toBe("worker_lost");
      // The message is usable again.
      const next = await api.run({ chatId: "c", messageId: "m", code: "print('again')" });
      expect(next.status).toBe("completed");
      expect(next.result.stdout).toBe("again\n");
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("a worker SIGKILLed with kernels in its pool", () => {
  let stack: TestStack;
  const quick = { KERNEL_POOL_SIZE: "0", WORKER_HEARTBEAT_MS: "300", KERNEL_IDLE_TTL_MS: "4000" };
  beforeAll(async () => {
    stack = await startTestStack({ worker: false, env: quick });
  });
  afterAll(async () => stack?.close());

  it("leaves no kernels behind: another worker shuts its pool down", async () => {
    const redis = createRedis(stack.env.REDIS_URL!, { name: "test" });
    // The spawned worker is a cell named by this machine (CELL_ID's default); its pool is recorded under it.
    const ownersKey = poolOwnersKey(cellKeyPrefix(stack.queuePrefix, hostname()));
    const child = stack.spawnWorker({ KERNEL_POOL_SIZE: "2", WORKER_ID: "doomed" });
    try {
      const pooled = await waitFor(async () => {
        const ids = Object.entries(await redis.hgetall(ownersKey))
          .filter(([, w]) => w === "doomed")
          .map(([id]) => id);
        return ids.length === 2 ? ids : undefined;
      }, 30_000);
      const exists = async (id: string) =>
        (
          await fetch(`${stack.env.JUPYTER_URL}/api/kernels/${id}`, {
            headers: { authorization: `token ${stack.env.JUPYTER_TOKEN}` },
          })
        ).status === 200;
      for (const id of pooled) expect(await exists(id)).toBe(true);
      child.kill("SIGKILL");
      await stack.startWorker(quick);
      await waitFor(async () => ((await Promise.all(pooled.map(exists))).some(Boolean) ? undefined : true), 15_000);
      expect(Object.values(await redis.hgetall(ownersKey))).not.toContain("doomed");
    } finally {
      child.kill("SIGKILL");
      redis.disconnect();
    }
  });
});

describe("a kernel gateway that is down", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({
      worker: false,
      env: { KERNEL_POOL_SIZE: "0", GATEWAY_UNRESPONSIVE_MS: "2000", GATEWAY_RETRY_BUDGET_MS: "8000" },
    });
    await stack.startWorker({ JUPYTER_URL: "http://127.0.0.1:9" });
  });
  afterAll(async () => stack?.close());

  it("fails the execution with gateway_unavailable once the retry budget is spent", async () => {
    const api = client(stack.url, (await stack.newUser("gw")).key);
    const t0 = Date.now();
    const done = await api.run({ code: "print(1)" }, 60_000);
    expect(done.status).toBe("failed");
    expect(done.failure.code).toBe("gateway_unavailable");
    expect(done.failure.message).toMatch(/did not answer \(retried for \d+ s\); the code did not run/);
    // GATEWAY_RETRY_BUDGET_MS (8 s) plus one bounded attempt, not BullMQ's attempts times long timeouts.
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it("/readyz says the gateway is unresponsive, and since when", async () => {
    const body = await waitFor(async () => {
      const r = await fetch(`${stack.url}/readyz`);
      const b = (await r.json()) as { checks: Record<string, string>; problems: string[] };
      return r.status === 503 && b.checks.kernelGateway === "down" ? b : undefined;
    }, 20_000);
    expect(body.problems.join("\n")).toMatch(
      /kernel gateway unresponsive since \d{4}-\d\d-\d\dT\S+ \(\d+ s, seen by 1 worker: /,
    );
  });
});

describe("workspace retention", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ env: { WORKSPACE_RETENTION_MS: "1000", WORKSPACE_SWEEP_INTERVAL_MS: "1000" } });
  });
  afterAll(async () => stack?.close());

  it("removes idle workspaces and keeps the registered files", async () => {
    const user = await stack.newUser("ret");
    const api = client(stack.url, user.key);
    const done = await api.run({ messageId: "old", code: "open('/mnt/data/keep.txt','w').write('kept')" });
    expect(done.files).toHaveLength(1);
    const dir = workspaceDirFor(stack.dataDir, "ret", "old");
    expect(existsSync(path.join(dir, "keep.txt"))).toBe(true);
    await waitFor(async () => (existsSync(dir) ? undefined : true), 15_000);
    const file = await fetch(`${stack.url}${done.files[0].url}`, { headers: { authorization: `Bearer ${user.key}` } });
    expect(file.status).toBe(200);
    expect(await file.text()).toBe("kept");
  });

  it("never removes a workspace while an execution runs in it, however long past the retention age", async () => {
    const api = client(stack.url, (await stack.newUser("long")).key);
    const code =
      "import time\nopen('/mnt/data/a.txt','w').write('still here')\ntime.sleep(3)\nprint(open('/mnt/data/a.txt').read())";
    const done = await api.run({ messageId: "long", code });
    expect(done.status).toBe("completed");
    expect(done.result.error).toBeNull();
    expect(done.result.stdout).toBe("still here\n");
    expect(done.files.map((f: { path: string }) => f.path)).toEqual(["a.txt"]);
  });
});

describe("a cancel sent while no worker holds the execution", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ worker: false, env: { KERNEL_POOL_SIZE: "0" } });
  });
  afterAll(async () => stack?.close());

  it("is honoured when a worker picks the job up later (e.g. between retries): the code never runs", async () => {
    const api = client(stack.url, (await stack.newUser("late")).key);
    const created = await api.post("/v1/executions", {
      chatId: "c",
      messageId: "m",
      code: "open('/mnt/data/ran.txt','w').write('x')",
    });
    // As after an attempt that failed on a transient error and waits for its retry.
    const db = createDb({ url: stack.databaseUrl });
    try {
      await db.execution.update({ where: { id: created.body.id }, data: { status: "preparing" } });
    } finally {
      await db.$disconnect();
    }
    expect((await api.post(`/v1/executions/${created.body.id}/cancel`)).status).toBe(202);
    await stack.startWorker();
    const done = await api.get(`/v1/executions/${created.body.id}?waitMs=20000`);
    expect(done.body.status).toBe("cancelled");
    expect(done.body.files).toEqual([]);
    const after = await api.run({ chatId: "c", messageId: "m", code: "import os\nprint(os.path.exists('ran.txt'))" });
    expect(after.result.stdout).toBe("False\n");
  });
});
