// The kernel broker on the real Redis and the run's real Jupyter server: the message -> kernel mapping, the
// idle sweep, eviction of a lost execution's kernel, and the live-kernel ceiling (LRU eviction, all busy).
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { createKernelGateway, remoteKernelHost } from "@codeinterp/kernel";
import type { KernelGateway } from "@codeinterp/kernel";
import { createLogger } from "@codeinterp/logger";
import { createRedis, kernelResetKey, liveKernelsKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import type { AcquireRequest, KernelBroker, MessageTurn } from "../apps/worker/src/kernels/broker";
import { createLiveKernels, defaultMaxLiveKernels } from "../apps/worker/src/kernels/live-kernels";
import { createMessageKernelBroker } from "../apps/worker/src/kernels/message-broker";
import { kernelRequestFor } from "../apps/worker/src/jobs/run-execution";
import { WorkspaceLayout } from "../apps/worker/src/workspace-layout";

const log = createLogger({ name: "broker-test", level: "silent" });
let redis: Redis;
let gateway: KernelGateway;
let layout: WorkspaceLayout;
let dataDir: string;
const brokers: (KernelBroker & { sweep(): Promise<number> })[] = [];

beforeAll(async () => {
  redis = createRedis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { name: "broker-test" });
  gateway = createKernelGateway({
    baseUrl: inject("jupyterUrl"),
    token: inject("jupyterToken"),
    log,
    kernelName: "python3",
    host: remoteKernelHost,
  });
  dataDir = path.join(inject("testRoot"), `broker-${randomBytes(4).toString("hex")}`);
  await mkdir(dataDir, { recursive: true });
  layout = new WorkspaceLayout(false, dataDir, inject("testRoot"));
});
afterEach(async () => {
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});
afterAll(() => redis?.disconnect());

function newBroker(opts: { max?: number; idleTtlMs?: number; poolSize?: number; poolEvictionIdleMs?: number } = {}) {
  const prefix = `citest-broker-${randomBytes(5).toString("hex")}`;
  const live = createLiveKernels({ redis, prefix, max: opts.max ?? 10 });
  const broker = createMessageKernelBroker({
    gateway,
    redis,
    prefix,
    workerId: "w1",
    log,
    poolSize: opts.poolSize ?? 0,
    layout,
    idleTtlMs: opts.idleTtlMs ?? 60_000,
    live,
    sweepIntervalMs: 3_600_000,
    // The count ceiling's rules: any idle kernel may make room at once (a-conversation-in-progress protection
    // is tested in kernel-ceiling.int.test.ts).
    evictionProtectMs: 0,
    ...(opts.poolEvictionIdleMs !== undefined ? { poolEvictionIdleMs: opts.poolEvictionIdleMs } : {}),
  });
  brokers.push(broker);
  return { broker, live, prefix };
}
const request = (): AcquireRequest =>
  kernelRequestFor({ DATA_DIR: dataDir }, layout, "u", `m-${randomBytes(4).toString("hex")}`);
const exists = (id: string) => gateway.hasKernel(id);

/** One execution's use of a kernel, as the job does it: the turn held around acquire/bind/release. */
async function use(broker: KernelBroker, req: AcquireRequest, code = "pass", keepTurn = false) {
  const turn = await broker.takeTurn(req.messageKey);
  const lease = await broker.acquire(turn, req);
  if (!lease.reused) await broker.bind(turn, lease);
  const out = await lease.session.execute(code, { timeoutMs: 10_000 });
  if (keepTurn) return { lease, out, turn };
  await broker.release(turn, lease, { discard: false });
  await turn.release();
  return { lease, out, turn: null as MessageTurn | null };
}

describe("mapping", () => {
  it("a restart mark (the Jupyter surface's) gives the message's next turn a fresh kernel; one set during a turn waits for the next", async () => {
    const { broker, prefix } = newBroker();
    const req = request();
    const mark = kernelResetKey(prefix, req.messageKey);
    const first = await use(broker, req, "x = 1");
    await redis.set(mark, "1");
    const second = await use(broker, req, "print('x' in globals())", true);
    expect({ reused: second.lease.reused, stdout: second.out.stdout }).toEqual({ reused: false, stdout: "False\n" });
    expect(await redis.exists(mark)).toBe(0);
    await expect.poll(() => exists(first.lease.session.id), { timeout: 15_000 }).toBe(false);
    // Asked while the second execution still holds the turn: that execution keeps its kernel.
    await redis.set(mark, "1");
    await broker.release(second.turn!, second.lease, { discard: false });
    await second.turn!.release();
    const third = await use(broker, req, "print(1)");
    expect(third.lease.reused).toBe(false);
    expect(third.lease.session.id).not.toBe(second.lease.session.id);
    expect(await redis.exists(mark)).toBe(0);
  });

  it("a message's second execution attaches to the kernel its first one left, with its variables", async () => {
    const { broker } = newBroker();
    const req = request();
    const first = await use(broker, req, "x = 41");
    expect(first.lease.reused).toBe(false);
    const turn = await broker.takeTurn(req.messageKey);
    expect(turn.mapping?.kernelId).toBe(first.lease.session.id);
    const lease = await broker.acquire(turn, req);
    expect(lease.reused).toBe(true);
    expect(lease.session.id).toBe(first.lease.session.id);
    expect((await lease.session.execute("print(x + 1)", { timeoutMs: 10_000 })).stdout).toBe("42\n");
    await broker.release(turn, lease, { discard: true });
    await turn.release();
    expect(await exists(first.lease.session.id)).toBe(false);
  });

  it("one turn per message: a second try fails while the first is held, and succeeds after it is released", async () => {
    const { broker } = newBroker();
    const req = request();
    const turn = await broker.takeTurn(req.messageKey);
    expect(await broker.tryTurn(req.messageKey)).toBeNull();
    expect(await broker.tryTurn(request().messageKey)).not.toBeNull();
    await turn.release();
    const again = await broker.tryTurn(req.messageKey);
    expect(again).not.toBeNull();
    await again!.release();
  });
});

describe("sweep and evict", () => {
  it("the idle sweep shuts down a kernel past its TTL and forgets it, but not one whose turn is held", async () => {
    const { broker } = newBroker({ idleTtlMs: 2000 });
    const idle = request();
    const busy = request();
    const b = await use(broker, busy, "pass", true);
    await broker.release(b.turn!, b.lease, { discard: false });
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
    const { broker, live } = newBroker();
    const req = request();
    const first = await use(broker, req, "y = 1");
    expect(await live.count()).toBe(1);
    const turn = await broker.takeTurn(req.messageKey);
    await broker.evict(turn, first.lease.session.id);
    await turn.release();
    expect(await exists(first.lease.session.id)).toBe(false);
    expect(await live.count()).toBe(0);
    const next = await use(broker, req, "print('y' in globals())");
    expect(next.lease.reused).toBe(false);
    expect(next.out.stdout).toBe("False\n");
  });
});

describe("live-kernel ceiling", () => {
  it("places reserved by a worker that stopped beating are freed, a live worker's are kept", async () => {
    const prefix = `citest-live-${randomBytes(5).toString("hex")}`;
    const live = createLiveKernels({ redis, prefix, max: 2 });
    expect(await live.reserve(120_000, "gone-worker")).not.toBeNull();
    expect(await live.reserve(120_000, "live-worker")).not.toBeNull();
    expect(await live.reserve(120_000, "live-worker")).toBeNull(); // at the ceiling
    expect(await live.dropStartsOfGoneWorkers(async (id) => id === "live-worker")).toBe(1);
    expect(await live.count()).toBe(1);
    expect(await live.reserve(120_000, "live-worker")).not.toBeNull();
    await redis.del(liveKernelsKey(prefix));
  });

  it("defaults to as many kernels at their cap as the budget holds, at least one", () => {
    const GiB = 1024 ** 3;
    expect(defaultMaxLiveKernels({ kernelMemoryBytes: 2 * GiB, budgetBytes: 18 * GiB })).toBe(9);
    expect(defaultMaxLiveKernels({ kernelMemoryBytes: 2 * GiB, budgetBytes: 3 * GiB })).toBe(1);
    expect(defaultMaxLiveKernels({ kernelMemoryBytes: 2 * GiB, budgetBytes: -100 })).toBe(1);
  });

  it("at the ceiling the least recently used idle kernel makes room; its message's next kernel says its state was reset", async () => {
    const { broker, live } = newBroker({ max: 2 });
    const [a, b, c] = [request(), request(), request()];
    const ka = await use(broker, a, "v = 1");
    const kb = await use(broker, b);
    expect(await live.count()).toBe(2);
    const turn = await broker.takeTurn(c.messageKey);
    expect(await broker.makeRoom(turn)).toBe(true);
    expect(await exists(ka.lease.session.id)).toBe(false); // a was used least recently
    expect(await exists(kb.lease.session.id)).toBe(true);
    const lc = await broker.acquire(turn, c);
    expect(lc.stateReset).toBe(false);
    await broker.bind(turn, lc);
    await broker.release(turn, lc, { discard: false });
    await turn.release();
    expect(await live.count()).toBe(2);
    const again = await use(broker, a, "print('v' in globals())");
    expect(again.lease.stateReset).toBe(true);
    expect(again.out.stdout).toBe("False\n");
    expect(await live.count()).toBe(2);
  });

  it("at the ceiling the pool refills in the place of a message kernel idle long enough, never a recently used one", async () => {
    const { broker, live } = newBroker({ max: 2, poolSize: 1, poolEvictionIdleMs: 1500 });
    await expect.poll(() => broker.pool.available, { timeout: 20_000 }).toBe(1);
    const [a, b] = [request(), request()];
    const ka = await use(broker, a);
    expect(ka.lease.pooled).toBe(true);
    // The refill took the second place; b takes that kernel, and the pool is left at the ceiling.
    await expect.poll(() => broker.pool.available, { timeout: 20_000 }).toBe(1);
    const kb = await use(broker, b);
    expect(kb.lease.pooled).toBe(true);
    expect(await live.count()).toBe(2);
    // a has been idle longest and, after the idle time, makes way for a warm kernel; b stays.
    await expect.poll(() => broker.pool.available, { timeout: 20_000 }).toBe(1);
    expect(await exists(ka.lease.session.id)).toBe(false);
    expect(await exists(kb.lease.session.id)).toBe(true);
    expect(await live.count()).toBe(2);
  });

  it("when every kernel is busy there is no room, and none is started; room comes back when one is released", async () => {
    const { broker, live } = newBroker({ max: 1 });
    const [a, b] = [request(), request()];
    const busy = await use(broker, a, "pass", true);
    const turn = await broker.takeTurn(b.messageKey);
    expect(await broker.makeRoom(turn)).toBe(false);
    expect(await live.count()).toBe(1);
    await broker.release(busy.turn!, busy.lease, { discard: false });
    await busy.turn!.release();
    expect(await broker.makeRoom(turn)).toBe(true);
    expect(await exists(busy.lease.session.id)).toBe(false);
    await turn.release();
    // The place reserved and not used is given back with the turn.
    expect(await live.count()).toBe(0);
  });
});
