// The kernel broker on the real Redis and the run's real Jupyter server: the message -> kernel mapping, the
// idle sweep, eviction of a lost execution's kernel, and the live-kernel ceiling (LRU eviction, all busy).
// What lease() itself decides (attach, adopt, replace, one kernel per message) is in lease.int.test.ts.
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  cellKeyPrefix,
  holdMessage,
  liveKernelsKey,
  markKernelReset,
  markKernelRetired,
  takeRetiredKernels,
} from "@codeinterp/queue";
import { createLiveKernels, defaultMaxLiveKernels } from "../src/kernels/live-kernels";
import { brokerFixture, use } from "./helpers/broker";
import { recordEvents } from "./helpers/worker-events";

const fx = brokerFixture("broker-test");
beforeAll(() => fx.open());
afterEach(() => fx.closeBrokers());
afterAll(() => fx.close());
const { exists } = fx;

/** What the API does for the Jupyter surface's restart: the message's next turn starts on a fresh kernel. */
const askRestart = (prefix: string, messageKey: string) => markKernelReset(fx.redis.multi(), prefix, messageKey).exec();

describe("mapping", () => {
  it("a restart mark (the Jupyter surface's) gives the message's next turn a fresh kernel; one set during a turn waits for the next", async () => {
    const { broker, prefix } = fx.newBroker();
    const req = fx.request();
    const first = await use(broker, req, "x = 1");
    await askRestart(prefix, req.messageKey);
    const second = await use(broker, req, "print('x' in globals())", true);
    expect({ how: second.lease.how, replaced: second.lease.replaced, stdout: second.out.stdout }).toEqual({
      how: "started",
      replaced: true,
      stdout: "False\n",
    });
    await expect.poll(() => exists(first.lease.session.id), { timeout: 15_000 }).toBe(false);
    // Asked while the second execution still holds the turn: that execution keeps its kernel.
    await askRestart(prefix, req.messageKey);
    await second.lease.release();
    await second.turn!.release();
    const third = await use(broker, req, "print(1)");
    expect(third.lease.how).toBe("started");
    expect(third.lease.session.id).not.toBe(second.lease.session.id);
    // The mark was consumed: the turn after attaches to the third kernel.
    const fourth = await use(broker, req, "print(2)");
    expect([fourth.lease.how, fourth.lease.session.id]).toEqual(["attached", third.lease.session.id]);
  });

  it("a message's second execution attaches to the kernel its first one left, with its variables", async () => {
    const { broker } = fx.newBroker();
    const req = fx.request();
    const first = await use(broker, req, "x = 41");
    expect(first.lease.how).toBe("started");
    const turn = await broker.takeTurn(req.messageKey);
    expect(turn.mapping?.kernelId).toBe(first.lease.session.id);
    const lease = await broker.lease(turn, req);
    expect([lease.how, lease.replaced]).toEqual(["attached", false]);
    expect(lease.session.id).toBe(first.lease.session.id);
    expect((await (await lease.ready()).execute("print(x + 1)", { timeoutMs: 10_000 })).stdout).toBe("42\n");
    await lease.retire();
    await turn.release();
    expect(await exists(first.lease.session.id)).toBe(false);
  });

  it("one turn per message: a second try fails while the first is held, and succeeds after it is released", async () => {
    const { broker } = fx.newBroker();
    const req = fx.request();
    const turn = await broker.takeTurn(req.messageKey);
    expect(await broker.tryTurn(req.messageKey)).toBeNull();
    expect(await broker.tryTurn(fx.request().messageKey)).not.toBeNull();
    await turn.release();
    const again = await broker.tryTurn(req.messageKey);
    expect(again).not.toBeNull();
    await again!.release();
  });
});

describe("sweep and evict", () => {
  it("the idle sweep shuts down a kernel past its TTL and forgets it, but not one whose turn is held", async () => {
    const { broker } = fx.newBroker({ idleTtlMs: 2000 });
    const idle = fx.request();
    const busy = fx.request();
    const b = await use(broker, busy, "pass", true);
    await b.lease.release();
    const a = await use(broker, idle);
    // Still inside its turn (an execution preparing): the sweep must leave it alone.
    await expect.poll(async () => broker.sweep(), { timeout: 10_000, interval: 200 }).toBeGreaterThan(0);
    expect(await exists(a.lease.session.id)).toBe(false);
    expect(await exists(b.lease.session.id)).toBe(true);
    const t = await broker.takeTurn(idle.messageKey);
    expect(t.mapping).toBeNull();
    await t.release();
    await broker.evict(b.turn!, b.lease.session.id);
    await b.turn!.release();
  });

  it("evict shuts down a lost execution's kernel and clears the mapping, so the next execution starts fresh", async () => {
    const { broker, live } = fx.newBroker();
    const req = fx.request();
    const first = await use(broker, req, "y = 1");
    expect(await live.count()).toBe(1);
    const turn = await broker.takeTurn(req.messageKey);
    await broker.evict(turn, first.lease.session.id);
    await turn.release();
    expect(await exists(first.lease.session.id)).toBe(false);
    expect(await live.count()).toBe(0);
    const next = await use(broker, req, "print('y' in globals())");
    expect(next.lease.how).toBe("started");
    expect(next.out.stdout).toBe("False\n");
  });
});

describe("retired kernels (a deleted Jupyter-surface kernel)", () => {
  it("the cell holding the message shuts its kernel down, whichever cell's sweep takes the mark first", async () => {
    const prefix = `citest-retire-${randomBytes(5).toString("hex")}`;
    const a = fx.newBroker({ prefix, workerId: "wa", cellPrefix: cellKeyPrefix(prefix, "a") });
    const b = fx.newBroker({ prefix, workerId: "wb", cellPrefix: cellKeyPrefix(prefix, "b") });
    const req = fx.request();
    // The message ran in cell a, then moved to cell b, which records that it holds it (as a cell does on every
    // turn): a still has its old kernel, b has the message's own.
    const stale = await use(a.broker, req);
    const { lease } = await use(b.broker, req);
    await holdMessage(fx.redis, prefix, req.messageKey, "b", 60_000);
    await markKernelRetired(fx.redis.multi(), prefix, req.messageKey).exec();
    // Cell a's sweep takes the mark first: it shuts its stale kernel down, and the mark stays for b.
    expect(await a.broker.sweep()).toBe(1);
    expect(await exists(stale.lease.session.id)).toBe(false);
    expect(await exists(lease.session.id)).toBe(true);
    expect(await b.broker.sweep()).toBe(1);
    expect(await exists(lease.session.id)).toBe(false);
    // Handled: no mark is left for anyone.
    expect(await takeRetiredKernels(fx.redis, prefix, 10)).toEqual([]);
  });
});

describe("live-kernel ceiling", () => {
  it("places reserved by a worker that stopped beating are freed, a live worker's are kept", async () => {
    const prefix = `citest-live-${randomBytes(5).toString("hex")}`;
    const live = createLiveKernels({ redis: fx.redis, prefix, max: 2 });
    expect(await live.reserve(120_000, "gone-worker")).not.toBeNull();
    expect(await live.reserve(120_000, "live-worker")).not.toBeNull();
    expect(await live.reserve(120_000, "live-worker")).toBeNull(); // at the ceiling
    expect(await live.dropStartsOfGoneWorkers(async (id) => id === "live-worker")).toBe(1);
    expect(await live.count()).toBe(1);
    expect(await live.reserve(120_000, "live-worker")).not.toBeNull();
    await fx.redis.del(liveKernelsKey(prefix));
  });

  it("defaults to as many kernels at their cap as the budget holds, at least one", () => {
    const GiB = 1024 ** 3;
    expect(defaultMaxLiveKernels({ kernelMemoryBytes: 2 * GiB, budgetBytes: 18 * GiB })).toBe(9);
    expect(defaultMaxLiveKernels({ kernelMemoryBytes: 2 * GiB, budgetBytes: 3 * GiB })).toBe(1);
    expect(defaultMaxLiveKernels({ kernelMemoryBytes: 2 * GiB, budgetBytes: -100 })).toBe(1);
  });

  it("at the ceiling the least recently used idle kernel makes room; its message's next kernel says its state was reset", async () => {
    const { broker, live, events } = fx.newBroker({ max: 2 });
    const evicted = recordEvents(events, "kernel:evicted");
    const [a, b, c] = [fx.request(), fx.request(), fx.request()];
    const ka = await use(broker, a, "v = 1");
    const kb = await use(broker, b);
    expect(await live.count()).toBe(2);
    const turn = await broker.takeTurn(c.messageKey);
    expect(await broker.makeRoom(turn)).toBe(true);
    expect(evicted.seen).toEqual([{ reason: "ceiling" }]);
    expect(await exists(ka.lease.session.id)).toBe(false); // a was used least recently
    expect(await exists(kb.lease.session.id)).toBe(true);
    const lc = await broker.lease(turn, c);
    expect(lc.stateReset).toBe(false);
    await lc.release();
    await turn.release();
    expect(await live.count()).toBe(2);
    const again = await use(broker, a, "print('v' in globals())");
    expect([again.lease.stateReset, again.lease.replaced]).toEqual([true, false]);
    expect(again.out.stdout).toBe("False\n");
    expect(await live.count()).toBe(2);
  });

  it("at the ceiling the pool refills in the place of a message kernel idle long enough, never a recently used one", async () => {
    const { broker, live, events } = fx.newBroker({ max: 2, poolSize: 1, poolEvictionIdleMs: 1500 });
    const refills = recordEvents(events, "pool:refilled");
    await expect.poll(() => refills.seen.length, { timeout: 20_000 }).toBe(1);
    const [a, b] = [fx.request(), fx.request()];
    const ka = await use(broker, a);
    expect(ka.lease.how).toBe("adopted");
    // The refill took the second place; b takes that kernel, and the pool is left at the ceiling.
    await expect.poll(() => refills.seen.length, { timeout: 20_000 }).toBe(2);
    const kb = await use(broker, b);
    expect(kb.lease.how).toBe("adopted");
    expect(await live.count()).toBe(2);
    // a has been idle longest and, after the idle time, makes way for a warm kernel; b stays.
    await expect.poll(() => refills.seen.length, { timeout: 20_000 }).toBe(3);
    expect(await exists(ka.lease.session.id)).toBe(false);
    expect(await exists(kb.lease.session.id)).toBe(true);
    expect(await live.count()).toBe(2);
  });

  it("when every kernel is busy there is no room, and none is started; room comes back when one is released", async () => {
    const { broker, live } = fx.newBroker({ max: 1 });
    const [a, b] = [fx.request(), fx.request()];
    const busy = await use(broker, a, "pass", true);
    const turn = await broker.takeTurn(b.messageKey);
    expect(await broker.makeRoom(turn)).toBe(false);
    expect(await live.count()).toBe(1);
    await busy.lease.release();
    await busy.turn!.release();
    expect(await broker.makeRoom(turn)).toBe(true);
    expect(await exists(busy.lease.session.id)).toBe(false);
    await turn.release();
    // The place reserved and not used is given back with the turn.
    expect(await live.count()).toBe(0);
  });
});
