// Admission by memory in use (issue 21, item 2) on real cgroups: each describe has a Jupyter server of its own,
// so its kernels' parent cgroup holds exactly this file's kernels.
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { silentLog } from "@codeinterp/kernel";
import { readHostAvailableBytes, startLocalJupyter } from "@codeinterp/kernel-host";
import type { LocalJupyter, SandboxLimits } from "@codeinterp/kernel-host";
import { client, startTestStack } from "../../../test/helpers/stack";
import type { TestStack } from "../../../test/helpers/stack";

const MiB = 1024 ** 2;
const RESET_NOTE = /variables from earlier executions are gone/;

async function ownJupyter(limits: Partial<SandboxLimits>): Promise<LocalJupyter> {
  const stateDir = path.join(inject("testRoot"), `jupyter-memory-${randomBytes(4).toString("hex")}`);
  await mkdir(stateDir, { recursive: true });
  return startLocalJupyter({ rootDir: inject("testRoot"), stateDir, port: 0, log: silentLog, sandboxLimits: limits });
}

describe("over the high watermark, idle kernels go before a busy one is harmed", () => {
  let jupyter: LocalJupyter;
  let stack: TestStack;
  beforeAll(async () => {
    // 1.5 GiB for all kernels (high watermark 85%: ~1.3 GiB), 768 MiB each.
    jupyter = await ownJupyter({ memoryBytes: 768 * MiB, kernelsMemoryBudgetBytes: 1536 * MiB });
    stack = await startTestStack({
      env: {
        JUPYTER_URL: jupyter.url,
        JUPYTER_TOKEN: jupyter.token,
        KERNEL_POOL_SIZE: "0",
        WORKER_CONCURRENCY: "4",
        // The returning message below may need an idle kernel's room once the growth is over: short, so the
        // test need not wait out the default minute of a conversation's protection.
        KERNEL_EVICTION_PROTECT_MS: "5000",
      },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await jupyter?.stop();
  });

  it("a message growing past the watermark completes while the least recently used idle kernels are shut down", async () => {
    if (!jupyter.sandbox.caps.cgroup) return; // admission by memory needs the kernels' cgroup
    const api = client(stack.url, (await stack.newUser("grow")).key);
    // Three idle messages holding 300 MB each (written, so the pages are really used).
    for (const m of ["idle-1", "idle-2", "idle-3"]) {
      const r = await api.run({ messageId: m, code: "held = b'\\x01' * (300 * 2**20)" });
      expect(r.status).toBe("completed");
    }
    // 500 MB more: with the three idle ones that is over the kernels' 1.5 GiB cap, where the kernel's
    // out-of-memory killer would pick the largest process (this one) if nothing made room first.
    const grow = await api.run(
      {
        messageId: "busy",
        code: "import time\nchunks = []\nfor i in range(5):\n    chunks.append(b'\\x01' * (100 * 2**20))\n    time.sleep(1)\nprint('grew', len(chunks))",
      },
      60_000,
    );
    expect([grow.status, grow.result?.stdout]).toEqual(["completed", "grew 5\n"]);
    // The first idle message was least recently used: its kernel went, its next execution says so.
    const first = await api.run({ messageId: "idle-1", code: "print('held' in globals())" });
    expect([first.result.stdout, first.result.notes]).toEqual(["False\n", [expect.stringMatching(RESET_NOTE)]]);
    // What operators see: the workers publish their counters within moments of a job's end.
    const report = async () => {
      const admin = await fetch(`${stack.url}/admin/kernels`, {
        headers: { authorization: `Bearer ${stack.adminToken}`, accept: "application/json" },
      });
      return (await admin.json()) as { memoryEvictions: number; memory: { budgetBytes: number } | null };
    };
    await expect.poll(async () => (await report()).memoryEvictions, { timeout: 15_000 }).toBeGreaterThan(0);
    expect((await report()).memory?.budgetBytes).toBe(1536 * MiB);
  }, 120_000);
});

describe("a hundred live messages with small working sets", () => {
  /** The test stops itself (and fails) before the host's MemAvailable falls below this. */
  const FLOOR_BYTES = 3 * 1024 * MiB;
  const MESSAGES = 100;
  let jupyter: LocalJupyter;
  let stack: TestStack;
  beforeAll(async () => {
    jupyter = await ownJupyter({ memoryBytes: 512 * MiB });
    stack = await startTestStack({
      env: { JUPYTER_URL: jupyter.url, JUPYTER_TOKEN: jupyter.token, KERNEL_POOL_SIZE: "2", WORKER_CONCURRENCY: "4" },
    });
  });
  afterAll(async () => {
    await stack?.close();
    await jupyter?.stop();
  });

  it("all keep their variables: none is evicted for another's new message", async () => {
    const api = client(stack.url, (await stack.newUser("hundred")).key);
    let lowest = await readHostAvailableBytes();
    const watch = async () => {
      const now = await readHostAvailableBytes();
      lowest = Math.min(lowest, now);
      if (now < FLOOR_BYTES) throw new Error(`stopped: MemAvailable ${Math.round(now / MiB)} MiB is under the floor`);
    };
    const ids = Array.from({ length: MESSAGES }, (_, i) => `live-${i}`);
    // Four at a time, as users arrive: each message loads pandas and a small frame and keeps it.
    for (let i = 0; i < ids.length; i += 4) {
      await watch();
      const batch = ids.slice(i, i + 4);
      const runs = await Promise.all(
        batch.map((m, j) =>
          api.run(
            { messageId: m, code: `import pandas as pd\ndf = pd.DataFrame({'n': range(${i + j}, ${i + j} + 20000)})` },
            60_000,
          ),
        ),
      );
      expect(runs.map((r) => r.status)).toEqual(batch.map(() => "completed"));
    }
    const again = [];
    for (let i = 0; i < ids.length; i += 4) {
      await watch();
      again.push(
        ...(await Promise.all(
          ids.slice(i, i + 4).map((m) => api.run({ messageId: m, code: "print(int(df.n.iloc[0]))" }, 60_000)),
        )),
      );
    }
    expect(again.map((r) => [r.result?.stdout, r.result?.notes])).toEqual(ids.map((_, i) => [`${i}\n`, []]));
    console.log(`${MESSAGES} live messages; lowest MemAvailable ${Math.round(lowest / MiB)} MiB`);
  }, 600_000);
});
