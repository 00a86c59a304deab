import { describe, expect, it } from "vitest";
import type { WorkerBeat } from "@codeinterp/queue";
import { gatewayFromBeats, kernelIsolationFromBeats } from "../src/readiness";

const now = Date.parse("2026-11-29T20:00:00Z");
const beat = (workerId: string, gateway: Partial<NonNullable<WorkerBeat["gateway"]>> | null): WorkerBeat => ({
  workerId,
  at: now - 1000,
  gateway: gateway && {
    reachable: true,
    since: now - 60_000,
    lastError: null,
    restarts: 0,
    lastRestartAt: null,
    sandboxed: true,
    ...gateway,
  },
});

describe("/readyz's view of the kernel gateway, from worker heartbeats", () => {
  it("is ready with one live worker whose gateway answers", () => {
    const r = gatewayFromBeats([beat("w1", {})], now);
    expect(r.ok).toBe(true);
    expect(r.problems).toEqual([]);
    expect(r.gateway).toMatchObject({ reachable: true, restarts: 0, sandboxed: true });
  });

  it("says there is no live worker", () => {
    const r = gatewayFromBeats([], now);
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual(["no live worker: no worker has sent a heartbeat recently, so nothing can run code"]);
  });

  it("says since when the gateway is unresponsive, why, and how often it restarted", () => {
    const since = now - 42_000;
    const r = gatewayFromBeats(
      [
        beat("w1", {
          reachable: false,
          since,
          lastError: "no answer within 2000 ms",
          restarts: 2,
          lastRestartAt: now - 300_000,
        }),
        beat("w2", { reachable: false, since: now - 20_000, lastError: "ECONNREFUSED", restarts: 1 }),
      ],
      now,
    );
    expect(r.ok).toBe(false);
    expect(r.problems).toEqual([
      "kernel gateway unresponsive since 2026-11-29T19:59:18.000Z (42 s, seen by 2 workers: no answer within 2000 ms); restarted 2 times, last at 2026-11-29T19:55:00.000Z",
    ]);
    expect(r.gateway).toMatchObject({ reachable: false, restarts: 2 });
  });

  it("is ready while one worker still reaches the gateway, and names the others", () => {
    const r = gatewayFromBeats([beat("w1", {}), beat("w2", { reachable: false, lastError: "ECONNREFUSED" })], now);
    expect(r.ok).toBe(true);
    expect(r.problems).toEqual(["kernel gateway unreachable from worker(s) w2"]);
  });

  it("says when kernels are not sandboxed on some worker", () => {
    expect(gatewayFromBeats([beat("w1", {}), beat("w2", { sandboxed: false })], now).gateway?.sandboxed).toBe(false);
  });

  it("says plainly when workspaces have no disk budget, and names the budget when every worker has one", () => {
    expect(
      kernelIsolationFromBeats([beat("w1", { diskBudgetMb: 1024 }), beat("w2", { diskBudgetMb: null })]),
    ).toMatchObject({
      diskBudgetMb: null,
      diskWarning: expect.stringMatching(/^Workspaces have no disk budget/),
    });
    const budgeted = kernelIsolationFromBeats([beat("w1", { diskBudgetMb: 1024 }), beat("w2", { diskBudgetMb: 512 })]);
    expect(budgeted.diskBudgetMb).toBe(512);
    expect(budgeted.diskWarning).toBeUndefined();
  });
});
