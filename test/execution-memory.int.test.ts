import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_KERNEL_MEMORY_MB } from "./global-setup";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// An execution may ask its kernel for more memory than the deployment's default, up to the operator's
// KERNEL_MEMORY_MAX_MB (issue 11). The run's Jupyter server caps each kernel at TEST_KERNEL_MEMORY_MB (512).
const MAX_MB = 1024;
let stack: TestStack;
let alice: ReturnType<typeof client>;
let n = 0;
const msg = () => `mem-${++n}`;
/** Holds `mb` MB in `x`, every page touched. */
const hold = (mb: number) => `x = b"\\x01" * (${mb} << 20)\nprint("holding", len(x) >> 20)`;

beforeAll(async () => {
  stack = await startTestStack({
    env: {
      KERNEL_SANDBOX: "on",
      KERNEL_POOL_SIZE: "1",
      KERNEL_MEMORY_MB: String(TEST_KERNEL_MEMORY_MB),
      KERNEL_MEMORY_MAX_MB: String(MAX_MB),
    },
  });
  alice = client(stack.url, (await stack.newUser("alice")).key);
});
afterAll(async () => {
  await stack?.close();
});

describe("per-execution memory", () => {
  it("an execution asking 1024 MB holds 700 MB; the message's next execution and another message's keep the 512 MB default", async () => {
    const m = msg();
    const big = await alice.run({ messageId: m, limits: { memoryMb: 1024 }, code: `${hold(700)}\ndel x` }, 60_000);
    const [next, other] = await Promise.all([
      alice.run({ messageId: m, code: hold(700) }, 60_000),
      alice.run({ messageId: msg(), code: hold(700) }, 60_000),
    ]);
    const capped = {
      code: "memory_limit",
      message: expect.stringContaining(`memory limit of ${TEST_KERNEL_MEMORY_MB} MB`),
    };
    expect({
      big: { status: big.status, stdout: big.result?.stdout, limits: big.limits },
      next: { status: next.status, failure: next.failure, limits: next.limits },
      other: { status: other.status, failure: other.failure },
    }).toEqual({
      big: { status: "completed", stdout: "holding 700\n", limits: { memoryMb: 1024 } },
      next: { status: "failed", failure: capped, limits: { memoryMb: null } },
      other: { status: "failed", failure: capped },
    });
  });

  it("a kernel still holding more than the next execution's limit is replaced by a fresh one, and the result says so", async () => {
    const m = msg();
    const big = await alice.run({ messageId: m, limits: { memoryMb: 1024 }, code: hold(700) }, 60_000);
    const next = await alice.run({ messageId: m, code: "print('x' in dir())" });
    expect({
      big: big.status,
      next: { status: next.status, stdout: next.result?.stdout, notes: next.result?.notes },
    }).toEqual({
      big: "completed",
      next: {
        status: "completed",
        stdout: "False\n",
        notes: [expect.stringContaining("variables and imports from them were reset")],
      },
    });
  });

  it("asking more than KERNEL_MEMORY_MAX_MB is a 400 that creates nothing", async () => {
    const m = msg();
    const res = await alice.post("/v1/executions", {
      chatId: "c",
      messageId: m,
      code: "print(1)",
      limits: { memoryMb: MAX_MB + 1 },
    });
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    const rows = await db
      .query("SELECT count(*)::int AS n FROM executions WHERE message_id = $1", [m])
      .finally(() => db.end());
    expect({ status: res.status, error: res.body.error, created: rows.rows[0].n }).toEqual({
      status: 400,
      error: expect.objectContaining({
        code: "validation_error",
        message: expect.stringContaining(`at most ${MAX_MB} MB`),
      }),
      created: 0,
    });
  });
});

// A worker told its gateway's kernels run elsewhere (KERNEL_HOST=remote, as with Enterprise Gateway) knows
// nothing of their memory, even where the cgroups happen to be readable: it says the ask was not applied,
// and a kernel killed for its memory is reported as a plain death.
describe("per-execution memory under a remote kernel host", () => {
  let remote: TestStack;
  let bob: ReturnType<typeof client>;
  beforeAll(async () => {
    remote = await startTestStack({
      env: {
        KERNEL_SANDBOX: "on",
        KERNEL_HOST: "remote",
        KERNEL_POOL_SIZE: "0",
        KERNEL_MEMORY_MB: String(TEST_KERNEL_MEMORY_MB),
        KERNEL_MEMORY_MAX_MB: String(MAX_MB),
      },
    });
    bob = client(remote.url, (await remote.newUser("bob")).key);
  });
  afterAll(async () => {
    await remote?.close();
  });

  it("an ask for 1024 MB is not applied and says so; going over the kernel's own cap is a kernel death", async () => {
    const m = msg();
    const asked = await bob.run({ messageId: m, limits: { memoryMb: 1024 }, code: "print(1)" }, 60_000);
    const over = await bob.run({ messageId: m, code: hold(700) }, 60_000);
    expect({
      asked: { status: asked.status, notes: asked.result?.notes },
      over: { status: over.status, code: over.failure?.code },
    }).toEqual({
      asked: { status: "completed", notes: [expect.stringContaining("limits.memoryMb was not applied")] },
      over: { status: "failed", code: "kernel_died" },
    });
  });
});
