import { readdirSync, readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, report, settle, startFaultStack, waitFor } from "./harness";
import type { FaultStack } from "./harness";
import { isAlive } from "@codeinterp/kernel-host";

/** Processes whose parent is `pid` (from /proc), e.g. the kernels a Jupyter server started. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(e));
    } catch {
      // exited
    }
  }
  return out;
}

type Ready = {
  status: string;
  checks: Record<string, string>;
  problems: string[];
  gateway: { reachable: boolean; restarts: number } | null;
};

/**
 * The embedded Jupyter server, supervised as `npm start` runs it, frozen with SIGSTOP while executions run
 * and others wait: the way the server looked when it wedged in a blocking ZMQ send under a burst (it
 * keeps its sockets open and never answers). Within seconds the supervisor kills it (with its kernels)
 * and starts a new one on the same port and token; every execution ends or re-runs, none stays
 * non-terminal, and the next execution works.
 */
describe("a frozen Jupyter server", () => {
  let stack: FaultStack;
  let key: string;
  const restarts: string[] = [];
  beforeAll(async () => {
    stack = await startFaultStack({
      jupyter: { supervise: true, liveness: { unresponsiveMs: 4000 }, onRestart: (r) => restarts.push(r.reason) },
      env: {
        GATEWAY_UNRESPONSIVE_MS: "4000",
        GATEWAY_RETRY_BUDGET_MS: "60000",
        WORKER_HEARTBEAT_MS: "1000",
        WORKER_CONCURRENCY: "4",
      },
    });
    key = (await stack.newUser("freeze")).key;
  });
  afterAll(async () => stack?.close());

  const readyz = async (): Promise<{ status: number; body: Ready }> => {
    const r = await fetch(`${stack.apiUrl}/readyz`, { signal: AbortSignal.timeout(10_000) });
    return { status: r.status, body: (await r.json()) as Ready };
  };

  it("is detected within seconds, restarted, and no execution is left behind", async () => {
    const a = api(stack.apiUrl, key);
    await waitFor(async () => (await readyz()).status === 200, 20_000, "ready before the fault");

    // Four executions reach kernels and keep them busy; eight more wait for the gateway to answer again.
    const running: string[] = [];
    for (let i = 0; i < 4; i++)
      running.push(
        await a.submit({
          chatId: "freeze",
          messageId: `busy-${i}`,
          code: "import time\ntime.sleep(60)\nprint('late')",
        }),
      );
    await waitFor(
      async () => (await stack.sql(`SELECT 1 FROM executions WHERE status = 'running'`)).length === 4,
      30_000,
      "four executions running",
    );
    const oldPid = stack.jupyter.pid;
    const oldKernels = childrenOf(oldPid);
    expect(oldKernels.length).toBeGreaterThanOrEqual(4);
    const t0 = Date.now();
    process.kill(oldPid, "SIGSTOP");
    // Accepted while the server is frozen, so none of their code can reach a kernel before the freeze: the
    // worker has free slots (the shared queue's and its cell queue's), and one submitted just before the
    // freeze could be mid-run on the old server, where failing it (gateway_restarted) is right.
    const queued: string[] = [];
    for (let i = 0; i < 8; i++)
      queued.push(await a.submit({ chatId: "freeze", messageId: `waiting-${i}`, code: `print('after ${i}')` }));
    try {
      // /readyz says plainly what is wrong, from the workers' heartbeats (the API never calls Jupyter).
      const down = await waitFor(
        async () => {
          const r = await readyz();
          return r.status === 503 && r.body.checks.kernelGateway === "down" ? r.body : undefined;
        },
        20_000,
        "/readyz reports the gateway down",
      );
      const detectedMs = Date.now() - t0;
      expect(down.problems.join("\n")).toMatch(/kernel gateway unresponsive since \S+/);

      // The supervisor killed the frozen server and its kernels, and started a new one (same port and token).
      await waitFor(async () => stack.jupyter.pid !== oldPid && restarts.length > 0, 30_000, "Jupyter restarted");
      const restartedMs = Date.now() - t0;
      expect(restarts).toEqual(["unresponsive"]);
      await waitFor(
        async () => !isAlive(oldPid) && oldKernels.every((k) => !isAlive(k)),
        10_000,
        "old server and kernels gone",
      );
      report("freeze-timeline", { detectedMs, restartedMs, oldKernels: oldKernels.length });
      expect(detectedMs).toBeLessThan(15_000);
      expect(restartedMs).toBeLessThan(20_000);
    } finally {
      if (isAlive(oldPid)) process.kill(oldPid, "SIGCONT");
    }

    // Every execution ends: those whose code had reached a kernel fail with a clear code (never run twice),
    // those that had not run on the new server.
    const census = await settle(stack, 90_000, "freeze");
    report("freeze", census);
    expect(census.stuck).toEqual([]);
    const rows = new Map(
      (
        await stack.sql<{ id: string; status: string; code: string | null }>(
          `SELECT id, status, failure->>'code' AS code FROM executions`,
        )
      ).map((r) => [r.id, r]),
    );
    for (const id of running) {
      expect(rows.get(id)?.status, id).toBe("failed");
      expect(rows.get(id)?.code, id).toBe("gateway_restarted");
    }
    for (const id of queued) expect(rows.get(id)?.status, id).toBe("completed");

    // The next execution works, also in a message whose kernel died with the server.
    const next = await a.submit({ chatId: "freeze", messageId: "busy-0", code: "print(6 * 7)" });
    const done = await a.get(`/v1/executions/${next}?waitMs=30000`, 40_000);
    expect(done.body.status).toBe("completed");
    expect(done.body.result.stdout).toBe("42\n");

    // Ready again, and both /readyz and /metrics count the restart.
    const ready = await waitFor(
      async () => {
        const r = await readyz();
        return r.status === 200 ? r.body : undefined;
      },
      20_000,
      "ready after the restart",
    );
    expect(ready.gateway?.restarts).toBe(1);
    const metrics = await (await fetch(`${stack.apiUrl}/metrics`)).text();
    expect(metrics).toMatch(/codeinterp_gateway_restarts_total\{[^}]*\} 1/);
    expect(metrics).toMatch(/codeinterp_gateway_up\{[^}]*\} 1/);
  });
});

/**
 * The same freeze on a gateway that is not ours to restart (a remote Enterprise Gateway, say): the same
 * detection ends every execution cleanly once GATEWAY_RETRY_BUDGET_MS is spent, instead of retrying
 * forever; when the gateway answers again, executions run.
 */
describe("a frozen gateway that is not ours to restart", () => {
  let stack: FaultStack;
  let key: string;
  beforeAll(async () => {
    stack = await startFaultStack({
      env: {
        GATEWAY_UNRESPONSIVE_MS: "3000",
        GATEWAY_RETRY_BUDGET_MS: "10000",
        WORKER_HEARTBEAT_MS: "1000",
        WORKER_CONCURRENCY: "2",
      },
    });
    key = (await stack.newUser("remote")).key;
  });
  afterAll(async () => stack?.close());

  it("ends running and waiting executions with gateway_unavailable within the budget, and works again after", async () => {
    const a = api(stack.apiUrl, key);
    const running: string[] = [];
    for (let i = 0; i < 2; i++)
      running.push(await a.submit({ chatId: "remote", messageId: `busy-${i}`, code: "import time\ntime.sleep(60)" }));
    await waitFor(
      async () => (await stack.sql(`SELECT 1 FROM executions WHERE status = 'running'`)).length === 2,
      30_000,
      "two executions running",
    );
    const queued: string[] = [];
    for (let i = 0; i < 4; i++)
      queued.push(await a.submit({ chatId: "remote", messageId: `waiting-${i}`, code: `print(${i})` }));

    const pid = stack.jupyter.pid;
    const t0 = Date.now();
    process.kill(pid, "SIGSTOP");
    let census;
    try {
      census = await settle(stack, 90_000, "remote");
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const endedMs = Date.now() - t0;
    report("remote-freeze", { endedMs, ...census });
    expect(census.stuck).toEqual([]);
    const rows = await stack.sql<{ id: string; status: string; code: string | null; message: string | null }>(
      `SELECT id, status, failure->>'code' AS code, failure->>'message' AS message FROM executions`,
    );
    for (const r of rows) {
      expect(r.status, r.id).toBe("failed");
      expect(r.code, r.id).toBe("gateway_unavailable");
    }
    for (const id of queued) expect(rows.find((r) => r.id === id)?.message).toMatch(/the code did not run/);
    for (const id of running)
      expect(rows.find((r) => r.id === id)?.message).toMatch(/stopped answering while this code ran/);
    // Unresponsive after 3 s, then a 10 s budget for what waited (and one bounded attempt): not forever.
    expect(endedMs).toBeLessThan(60_000);

    // Answering again (SIGCONT): ready, and the next execution runs.
    await waitFor(async () => (await fetch(`${stack.apiUrl}/readyz`)).status === 200, 20_000, "ready again");
    const next = await a.submit({ chatId: "remote", messageId: "busy-0", code: "print('back')" });
    const done = await a.get(`/v1/executions/${next}?waitMs=30000`, 40_000);
    expect(done.body.status).toBe("completed");
    expect(done.body.result.stdout).toBe("back\n");
  });
});
