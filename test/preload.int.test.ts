import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "@codeinterp/db";
import type { Db } from "@codeinterp/db";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Pool kernels come preloaded (KERNEL_PRELOAD, default numpy, pandas, matplotlib, openpyxl): a message's first
// analysis finds them imported, and nothing of the preload in its namespace.
let stack: TestStack;
let api: ReturnType<typeof client>;
let db: Db;

beforeAll(async () => {
  stack = await startTestStack({ env: { KERNEL_POOL_SIZE: "1", KERNEL_PRELOAD: "numpy,pandas,matplotlib,openpyxl" } });
  api = client(stack.url, (await stack.newUser("pre")).key);
  db = createDb({ url: stack.databaseUrl });
});
afterAll(async () => {
  await db?.$disconnect();
  await stack?.close();
});

const PROBE = `import sys as _s
print(sorted(m for m in ("numpy", "pandas", "matplotlib.pyplot", "openpyxl") if m in _s.modules))
print(sorted(k for k in globals() if not k.startswith("_") and k not in ("In", "Out", "get_ipython", "exit", "quit", "open")))`;

describe("preloaded pool kernels", () => {
  it("a new message's first execution on a pool kernel finds the modules imported and an empty namespace", async () => {
    let n = 0;
    // The pool fills in the background: new messages until one gets a pool kernel (the others start their own).
    await expect
      .poll(
        async () => {
          const done = await api.run({ messageId: `pre-${++n}`, code: PROBE });
          const metrics = (await db.execution.findUniqueOrThrow({ where: { id: done.id } })).metrics as {
            pooledKernel?: boolean;
          };
          return metrics.pooledKernel ? done.result.stdout : "not pooled";
        },
        { timeout: 60_000, interval: 500 },
      )
      .toBe("['matplotlib.pyplot', 'numpy', 'openpyxl', 'pandas']\n[]\n");
  });
});

describe("matplotlib's font cache", () => {
  it(
    "a sandboxed kernel starts with the server's prepared font cache in its own config dir",
    { timeout: 150_000 },
    async () => {
      const done = await api.run(
        {
          messageId: "pre-fonts",
          code: "import os\nd = os.environ['MPLCONFIGDIR']\nprint(d, any(n.startswith('fontlist-') for n in os.listdir(d)), os.access(d, os.W_OK))",
        },
        120_000,
      );
      expect([done.status, done.failure]).toEqual(["completed", null]);
      expect(done.result.stdout).toBe("/tmp/matplotlib True True\n");
    },
  );
});
