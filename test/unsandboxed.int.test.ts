import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDb } from "@codeinterp/db";
import { silentLog } from "@codeinterp/kernel";
import { startLocalJupyter } from "@codeinterp/kernel-host";
import { SandboxUnavailableError } from "../apps/worker/src/start";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";
import { observeStack } from "./helpers/observe";

// The same file story on plain kernels of a shared Jupyter server (KERNEL_SANDBOX=off, or a remote gateway
// without the sandbox): /mnt/data is a translated path and the pooled kernel waits in a shared folder.
let stack: TestStack;
let api: ReturnType<typeof client>;
let key: string;

beforeAll(async () => {
  stack = await startTestStack({ env: { KERNEL_SANDBOX: "off", KERNEL_POOL_SIZE: "1" } });
  key = (await stack.newUser("plain")).key;
  api = client(stack.url, key);
});
afterAll(async () => stack?.close());

describe("without the sandbox", () => {
  it("KERNEL_SANDBOX=on refuses to start a worker when the gateway has no network-less sandbox", async () => {
    const root = path.join(inject("testRoot"), `plain-${process.pid}`);
    const plain = await startLocalJupyter({
      rootDir: root,
      stateDir: path.join(root, ".state"),
      log: silentLog,
      sandbox: false,
    });
    try {
      await expect(
        stack.startWorker({ KERNEL_SANDBOX: "on", JUPYTER_URL: plain.url, JUPYTER_TOKEN: plain.token }),
      ).rejects.toBeInstanceOf(SandboxUnavailableError);
    } finally {
      await plain.stop();
    }
  });

  it("/readyz says in plain words that kernels are not sandboxed and have the network", async () => {
    const ready = (await (await fetch(`${stack.url}/readyz`)).json()) as { kernels: unknown };
    expect(ready.kernels).toEqual({
      sandboxed: false,
      network: "unrestricted",
      warning: expect.stringMatching(
        /^Kernels are not sandboxed: code they run can reach the network, this machine's Postgres, Redis/,
      ),
      // DATA_DIR here is not on btrfs with quotas (test/workspace-disk.int.test.ts covers the budget)
      diskBudgetMb: null,
      diskWarning: expect.stringMatching(
        /^Workspaces have no disk budget: one kernel can fill the file system holding DATA_DIR/,
      ),
    });
  });

  it("a pooled kernel enters the new message's workspace; attachments, outputs and paths work as with the sandbox", async () => {
    await api.run({ messageId: "warmup", code: "1" });
    const observe = observeStack(stack);
    try {
      await expect.poll(() => observe.poolKernels(), { timeout: 30_000 }).toBe(1);
    } finally {
      observe.close();
    }
    const form = new FormData();
    form.append("file", new Blob(["a,b\n1,2\n"]), "in.csv");
    const up = (await (
      await fetch(`${stack.url}/v1/files`, { method: "POST", headers: { authorization: `Bearer ${key}` }, body: form })
    ).json()) as { id: string };
    const done = await api.run({
      messageId: "fresh",
      fileIds: [up.id],
      code: "import os, pandas as pd\ndf = pd.read_csv('/mnt/data/in.csv')\ndf.to_csv('out.csv', index=False)\nprint(os.getcwd(), len(df))\nopen('/mnt/data/nope/x')",
    });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toBe("/mnt/data 1\n");
    expect(done.result.error.evalue).toContain("/mnt/data/nope/x");
    expect(done.files.map((f: { path: string }) => f.path)).toEqual(["out.csv"]);
    const db = createDb({ url: stack.databaseUrl });
    try {
      const metrics = (await db.execution.findUniqueOrThrow({ where: { id: done.id } })).metrics as {
        pooledKernel: boolean;
      };
      expect(metrics.pooledKernel).toBe(true);
    } finally {
      await db.$disconnect();
    }
    const again = await api.run({ messageId: "fresh", code: "print(len(df), sorted(os.listdir('.')))" });
    expect(again.result.stdout).toBe("1 ['in.csv', 'out.csv']\n");
  });
});
