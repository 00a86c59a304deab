// lease(), the one way a turn gets a kernel, on the real Redis and the run's real Jupyter server: what it
// gives (attached, adopted from the pool, started), what it says (replaced: the message's variables are
// gone), and that a message never gets two kernels however many executions ask at once.
import { realpath } from "node:fs/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { brokerFixture, use } from "./helpers/broker";
import { recordEvents } from "./helpers/worker-events";

const fx = brokerFixture("lease-test");
beforeAll(() => fx.open());
afterEach(() => fx.closeBrokers());
afterAll(() => fx.close());

describe("lease()", () => {
  it("attaches to the message's live kernel: same kernel, variables kept, nothing replaced", async () => {
    const { broker, events } = fx.newBroker();
    const leased = recordEvents(events, "kernel:leased");
    const req = fx.request();
    const first = await use(broker, req, "x = 41");
    const turn = await broker.takeTurn(req.messageKey);
    try {
      const lease = await broker.lease(turn, { ...req, memoryBytes: 512 * 1024 ** 2 });
      const session = await lease.ready();
      expect([lease.how, lease.replaced, lease.stateReset, session.id]).toEqual([
        "attached",
        false,
        false,
        first.lease.session.id,
      ]);
      // Plain kernels have no cgroup this worker can write: the limit is said to be unavailable, not applied.
      expect(lease.memoryLimit).toBe("unavailable");
      expect((await session.execute("print(x + 1)", { timeoutMs: 10_000 })).stdout).toBe("42\n");
      await lease.release();
    } finally {
      await turn.release();
    }
    expect(leased.seen.map((e) => [e.how, e.replaced, e.kernelId])).toEqual([
      ["started", false, first.lease.session.id],
      ["attached", false, first.lease.session.id],
    ]);
  });

  it("adopts a ready pool kernel for a new message, set to run in the message's workspace", async () => {
    const { broker, events } = fx.newBroker({ poolSize: 1 });
    const refills = recordEvents(events, "pool:refilled");
    await expect.poll(() => refills.seen.length, { timeout: 30_000 }).toBeGreaterThan(0);
    const pooled = refills.seen[0]!.kernelId;
    const req = fx.request();
    const run = await use(broker, req, "import os\nprint(os.getcwd())");
    expect([run.lease.how, run.lease.replaced, run.lease.session.id]).toEqual(["adopted", false, pooled]);
    expect(run.out.stdout.trim()).toBe(await realpath(req.workspaceDir));
    // The adopted kernel is the message's now: its next turn attaches to it.
    const next = await use(broker, req, "print('again')");
    expect([next.lease.how, next.lease.session.id]).toEqual(["attached", pooled]);
  });

  it("replaces a message's kernel that is gone, and says the message's variables were reset", async () => {
    const { broker, prefix } = fx.newBroker();
    const req = fx.request();
    const first = await use(broker, req, "x = 1");
    // Deleted on the server (a culler, an operator): another worker's turn finds the mapping and no kernel.
    await fx.gateway().shutdownKernel(first.lease.session.id);
    const other = fx.newBroker({ prefix, workerId: "w2" });
    const leased = recordEvents(other.events, "kernel:leased");
    const again = await use(other.broker, req, "print('x' in globals())");
    expect([again.lease.how, again.lease.replaced, again.out.stdout]).toEqual(["started", true, "False\n"]);
    expect(again.lease.session.id).not.toBe(first.lease.session.id);
    expect(leased.seen.map((e) => [e.how, e.replaced])).toEqual([["started", true]]);
    // The replacement is the message's kernel from now on, for any worker.
    const third = await use(broker, req, "print(1)");
    expect([third.lease.how, third.lease.replaced, third.lease.session.id]).toEqual([
      "attached",
      false,
      again.lease.session.id,
    ]);
  });

  it("never gives one message two kernels: executions asking at once on two workers share one, in turn", async () => {
    const a = fx.newBroker();
    const b = fx.newBroker({ prefix: a.prefix, workerId: "w2" });
    const leased = [recordEvents(a.events, "kernel:leased"), recordEvents(b.events, "kernel:leased")];
    const req = fx.request();
    const runs = await Promise.all(
      [a, b, a, b].map(({ broker }) => use(broker, req, "n = globals().get('n', 0) + 1\nprint(n)")),
    );
    expect(new Set(runs.map((r) => r.lease.session.id)).size).toBe(1);
    // One after another on that kernel: each saw the one before it.
    expect(runs.map((r) => r.out.stdout).sort()).toEqual(["1\n", "2\n", "3\n", "4\n"]);
    const how = leased.flatMap((l) => l.seen.map((e) => e.how)).sort();
    expect(how).toEqual(["attached", "attached", "attached", "started"]);
  });
});
