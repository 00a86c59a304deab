import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  api,
  checkWorkspaces,
  deleteKernel,
  listKernels,
  report,
  settle,
  sleep,
  startFaultStack,
  TERMINAL,
  waitFor,
  waitForFlowUnderWay,
  workloadCode,
} from "./harness";
import type { Census, FaultStack, SubmittedRun } from "./harness";

// The faults themselves: how long a dependency stays away, and how far apart kernels are killed (so the kills
// land on different executions over the flow rather than back to back). Pauses on purpose, not waits.
const REDIS_DOWN_MS = 2000;
const POSTGRES_DOWN_MS = 10_000;
const KERNEL_KILLS = 4;
const KERNEL_KILL_SPACING_MS = 700;
/** How often the outage probes call the API (pacing). */
const PROBE_EVERY_MS = 250;

/**
 * One private deployment, broken five ways in turn: kernels killed, Redis restarted with and without
 * persistence, Postgres stopped for 10 s, the Jupyter server restarted. Each phase uses its own chat, and
 * after each the invariants are checked on that phase's executions.
 */
describe("dependencies failing under a flow of executions", () => {
  let stack: FaultStack;
  let key: string;
  beforeAll(async () => {
    stack = await startFaultStack({ appendonly: true, env: { KERNEL_POOL_SIZE: "2" }, worker: false });
    // At debug the worker logs which kernel each execution got, so an execution left behind can be followed.
    await stack.startWorker({ LOG_LEVEL: "debug" });
    key = (await stack.newUser("deps")).key;
  });
  afterAll(async () => stack?.close());

  /** Submits `count` executions, one every `everyMs`, on `messages` messages of chat `phase`. */
  function flow(phase: string, count: number, opts: { messages: number; everyMs: number; sleepS: number }) {
    const a = api(stack.apiUrl, key);
    const runs: SubmittedRun[] = [];
    const done = (async () => {
      for (let i = 0; i < count; i++) {
        const messageId = `${phase}-m${i % opts.messages}`;
        const token = `${phase}-t${i}`;
        runs.push({
          id: await a.submit({ chatId: phase, messageId, code: workloadCode(token, opts.sleepS) }),
          token,
          chatId: phase,
          messageId,
        });
        // The flow's pacing: one submission every `everyMs`.
        await sleep(opts.everyMs);
      }
    })();
    return { runs, done };
  }

  async function verify(phase: string, runs: SubmittedRun[], allowedFailures: string[]): Promise<Census> {
    const census = await settle(stack, 60_000, phase);
    const ws = await checkWorkspaces(stack, key, runs);
    report(phase, { accepted: runs.length, ...census, ...ws, workerAlive: stack.worker?.alive });
    expect(census.stuck).toEqual([]);
    expect(census.total).toBe(runs.length);
    expect(census.duplicates).toBe(0);
    expect(ws.ranTwice).toEqual([]);
    expect(ws.missingCompleted).toEqual([]);
    expect(ws.followUpFailures).toEqual([]);
    expect(Object.keys(census.failureCodes).filter((c) => !allowedFailures.includes(c))).toEqual([]);
    expect(stack.worker?.alive).toBe(true);
    return census;
  }

  it("kernels shut down through the Jupyter API mid-run", async () => {
    const { runs, done } = flow("kernels", 16, { messages: 4, everyMs: 250, sleepS: 1 });
    let flowing = true;
    // (A failed submission surfaces at `await done` below.)
    void done.then(
      () => (flowing = false),
      () => (flowing = false),
    );
    // Kill the kernels running the workload (a running execution's kernel, busy on the gateway) until 4 are
    // gone, or until the flow has ended with nothing left running: the first kill must happen.
    let killed = 0;
    const shot = new Set<string>();
    while (killed < KERNEL_KILLS) {
      const target = await waitFor(
        async () => {
          const busy = new Set((await listKernels(stack)).filter((k) => k.execution_state === "busy").map((k) => k.id));
          const running = await stack.sql<{ kernel_id: string }>(
            `SELECT kernel_id FROM executions WHERE chat_id = 'kernels' AND status = 'running' AND kernel_id IS NOT NULL`,
          );
          const hit = running.find((r) => busy.has(r.kernel_id) && !shot.has(r.kernel_id));
          if (hit) return hit.kernel_id;
          if (killed > 0 && !flowing) {
            const [left] = await stack.sql<{ n: string }>(
              `SELECT count(*) AS n FROM executions WHERE chat_id = 'kernels' AND status NOT IN ('completed','failed','timed_out','cancelled')`,
            );
            if (Number(left!.n) === 0) return null;
          }
          return undefined;
        },
        30_000,
        "a kernel busy running a workload execution",
      );
      if (target === null) break;
      shot.add(target);
      if ((await deleteKernel(stack, target)) === 204) {
        killed++;
        await sleep(KERNEL_KILL_SPACING_MS);
      }
    }
    await done;
    report("kernels-killed", { killed });
    expect(killed).toBeGreaterThan(0);
    await verify("kernels", runs, ["kernel_died"]);
  });

  it("Redis killed and restarted with its append-only file", async () => {
    const { runs, done } = flow("redis-aof", 16, { messages: 4, everyMs: 250, sleepS: 0.5 });
    await waitForFlowUnderWay(stack, "redis-aof");
    await stack.redis.stop("SIGKILL");
    await sleep(REDIS_DOWN_MS);
    await stack.redis.start();
    await done;
    await verify("redis-aof", runs, ["worker_lost"]);
  });

  it("Redis away: a submit that asks to wait is recorded, answered when its wait is over, and runs once Redis is back", async () => {
    const a = api(stack.apiUrl, key);
    await stack.redis.stop("SIGKILL");
    let down = true;
    try {
      // No events to wait by: the wait reads the record instead, and ends at waitMs as it would with Redis.
      const r = await a.post(
        "/v1/executions?waitMs=3000",
        { chatId: "redis-wait", messageId: "w", code: "print(7)" },
        20_000,
      );
      expect(r.status).toBe(202);
      expect(r.body.status).toBe("queued");
      await stack.redis.start();
      down = false;
      // The reconciler queues it from Postgres; it runs once.
      const done = await waitFor(async () => {
        const g = await a.get(`/v1/executions/${r.body.id}`);
        return TERMINAL.includes(g.body?.status) ? g.body : undefined;
      }, 60_000);
      expect(done.status).toBe("completed");
      expect(done.result.stdout).toBe("7\n");
    } finally {
      if (down) await stack.redis.start();
    }
  });

  it("Redis restarted empty (no persistence): the reconciler recovers queued executions from Postgres", async () => {
    const { runs, done } = flow("redis-empty", 16, { messages: 4, everyMs: 150, sleepS: 0.5 });
    await waitForFlowUnderWay(stack, "redis-empty");
    await stack.redis.stop("SIGKILL");
    stack.redis.setAppendonly(false);
    await sleep(REDIS_DOWN_MS);
    await stack.redis.start();
    await done;
    await verify("redis-empty", runs, ["worker_lost"]);
  });

  it("Postgres stopped for 10 s: the API answers 503 JSON promptly, and everything ends afterwards", async () => {
    const a = api(stack.apiUrl, key);
    const probeId = await a.submit({ chatId: "probe", messageId: "probe", code: "print(1)" });
    const { runs, done } = flow("postgres", 12, { messages: 4, everyMs: 250, sleepS: 0.5 });
    await waitForFlowUnderWay(stack, "postgres");

    type Probe = { route: string; status: number; ms: number; json: boolean; code?: string; during: boolean };
    const probes: Probe[] = [];
    let outage = false;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const during = outage;
        const one = async (route: string, fn: () => Promise<{ status: number; body: unknown }>) => {
          const t0 = Date.now();
          try {
            const r = await fn();
            const body = r.body as { error?: { code?: string; message?: string } } | null;
            probes.push({
              route,
              status: r.status,
              ms: Date.now() - t0,
              json: typeof body === "object" && body !== null,
              code: body?.error?.code,
              during,
            });
          } catch (err) {
            probes.push({ route, status: 0, ms: Date.now() - t0, json: false, code: String(err), during });
          }
        };
        await Promise.all([
          one("GET /v1/executions/:id", () => a.get(`/v1/executions/${probeId}`, 15_000)),
          one("POST /v1/executions", () =>
            a.post("/v1/executions", { chatId: "probe", messageId: "probe-post", code: "print(2)" }, 15_000),
          ),
          one("GET /readyz", async () => {
            const r = await fetch(`${stack.apiUrl}/readyz`, { signal: AbortSignal.timeout(15_000) });
            return { status: r.status, body: await r.json() };
          }),
        ]);
        await sleep(PROBE_EVERY_MS);
      }
    })();

    // One round of probes answered before the outage: the probes themselves work.
    await waitFor(async () => probes.length >= 3, 15_000, "a round of probes before the outage");
    outage = true;
    const t0 = Date.now();
    await stack.postgres.stop("fast");
    await sleep(POSTGRES_DOWN_MS);
    await stack.postgres.start();
    const downFor = Date.now() - t0;
    outage = false;
    // The API is usable again soon after.
    const recoveredIn = await waitFor(
      async () =>
        (await a.get(`/v1/executions/${probeId}`).catch(() => ({ status: 0 }))).status === 200
          ? Date.now() - t0 - downFor
          : undefined,
      20_000,
      "API recovery",
    );
    polling = false;
    await poll;
    await done;

    const during = probes.filter((p) => p.during);
    const summary: Record<string, { n: number; statuses: Record<number, number>; maxMs: number; codes: string[] }> = {};
    for (const p of during) {
      const s = (summary[p.route] ??= { n: 0, statuses: {}, maxMs: 0, codes: [] });
      s.n++;
      s.statuses[p.status] = (s.statuses[p.status] ?? 0) + 1;
      s.maxMs = Math.max(s.maxMs, p.ms);
      if (p.code && !s.codes.includes(p.code)) s.codes.push(p.code);
    }
    report("postgres-outage-probes", { downForMs: downFor, recoveredInMs: recoveredIn, summary });

    // Bounded: no request held longer than a few seconds while the database is away.
    expect(Math.max(...during.map((p) => p.ms))).toBeLessThan(6000);
    // Only 503 (or, for POST racing the stop, 202 / readyz 200 right at the edge) and always JSON.
    for (const p of during) {
      expect([200, 202, 503], `${p.route} answered ${p.status} (${p.code})`).toContain(p.status);
      expect(p.json, `${p.route} answered a non-JSON body`).toBe(true);
      if (p.status === 503 && p.route !== "GET /readyz") expect(p.code).toBe("dependency_unavailable");
    }
    expect(during.some((p) => p.route === "GET /readyz" && p.status === 503)).toBe(true);
    expect(during.some((p) => p.route === "GET /v1/executions/:id" && p.status === 503)).toBe(true);

    await verify("postgres", runs, ["worker_lost", "internal_error"]);
    await settle(stack, 30_000, "probe");
  });

  it("the Jupyter server restarted (same port and token) mid-run", async () => {
    const { runs, done } = flow("jupyter", 12, { messages: 4, everyMs: 300, sleepS: 1 });
    await waitForFlowUnderWay(stack, "jupyter");
    await stack.restartJupyter();
    await done;
    await verify("jupyter", runs, ["kernel_died", "gateway_unavailable", "gateway_restarted", "worker_lost"]);
  });
});
