import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "@codeinterp/config";
import { createDb } from "@codeinterp/db";
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
    const child = spawn(process.execPath, ["--import", "tsx", "apps/worker/src/main.ts"], {
      cwd: repoRoot,
      env: { ...process.env, ...stack.env },
      stdio: "ignore",
    });
    try {
      const created = await api.post("/v1/executions", { chatId: "c", messageId: "m", code: "import time\ntime.sleep(20)\nprint('late')" });
      await api.waitForStatus(created.body.id, "running");
      child.kill("SIGKILL");
      await stack.startWorker(fastStall);
      const done = await api.get(`/v1/executions/${created.body.id}?waitMs=30000`);
      expect(done.body.status).toBe("failed");
      expect(done.body.failure.code).toBe("worker_lost");
      // The message is usable again.
      const next = await api.run({ messageId: "m", code: "print('again')" });
      expect(next.status).toBe("completed");
      expect(next.result.stdout).toBe("again\n");
    } finally {
      child.kill("SIGKILL");
    }
  });
});

describe("a kernel gateway that is down", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ worker: false, env: { KERNEL_POOL_SIZE: "0" } });
    await stack.startWorker({ JUPYTER_URL: "http://127.0.0.1:9" });
  });
  afterAll(async () => stack?.close());

  it("fails the execution with gateway_unavailable after bounded retries", async () => {
    const api = client(stack.url, (await stack.newUser("gw")).key);
    const t0 = Date.now();
    const done = await api.run({ code: "print(1)" }, 60_000);
    expect(done.status).toBe("failed");
    expect(done.failure.code).toBe("gateway_unavailable");
    expect(Date.now() - t0).toBeLessThan(60_000);
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
});

describe("a cancel sent while no worker holds the execution", () => {
  let stack: TestStack;
  beforeAll(async () => {
    stack = await startTestStack({ worker: false, env: { KERNEL_POOL_SIZE: "0" } });
  });
  afterAll(async () => stack?.close());

  it("is honoured when a worker picks the job up later (e.g. between retries): the code never runs", async () => {
    const api = client(stack.url, (await stack.newUser("late")).key);
    const created = await api.post("/v1/executions", { chatId: "c", messageId: "m", code: "open('/mnt/data/ran.txt','w').write('x')" });
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
    const after = await api.run({ messageId: "m", code: "import os\nprint(os.path.exists('ran.txt'))" });
    expect(after.result.stdout).toBe("False\n");
  });
});
