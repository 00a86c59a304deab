import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  api,
  checkWorkspaces,
  report,
  settle,
  sleep,
  startFaultStack,
  terminalSnapshot,
  workloadCode,
} from "./harness";
import type { FaultStack, SubmittedRun } from "./harness";

describe("workers SIGKILLed repeatedly while executions flow", () => {
  let stack: FaultStack;
  beforeAll(async () => {
    stack = await startFaultStack({ env: { KERNEL_POOL_SIZE: "1" } });
  });
  afterAll(async () => stack?.close());

  it("ends every accepted execution exactly once, registers no file twice, keeps workspaces intact", async () => {
    const user = await stack.newUser("killer");
    const a = api(stack.apiUrl, user.key);
    const runs: SubmittedRun[] = [];
    const messages = 6;
    const total = 30;

    // Submit 30 executions over ~9 s on 6 messages while the worker is killed and restarted 4 times.
    const submitting = (async () => {
      for (let i = 0; i < total; i++) {
        const messageId = `m${i % messages}`;
        const token = `t${i}`;
        runs.push({
          id: await a.submit({ chatId: "faults", messageId, code: workloadCode(token, 0.5) }),
          token,
          messageId,
        });
        await sleep(300);
      }
    })();
    let kills = 0;
    for (let k = 0; k < 4; k++) {
      await sleep(1800);
      await stack.worker!.kill("SIGKILL");
      kills++;
      await sleep(300);
      await stack.startWorker();
    }
    await submitting;

    const census = await settle(stack, 60_000);
    const snap = await terminalSnapshot(stack);
    const ws = await checkWorkspaces(stack, user.key, runs);
    // Nothing moved after it ended (the follow-ups are new rows; the earlier ones keep status and finished_at).
    const snapAfter = await terminalSnapshot(stack);
    const moved = [...snap].filter(([id, v]) => snapAfter.get(id) !== v);
    report("worker-kill", { accepted: runs.length, kills, ...census, ...ws, movedAfterTerminal: moved.length });

    expect(census.stuck).toEqual([]);
    expect(census.total).toBe(total);
    expect(census.duplicates).toBe(0);
    expect(moved).toEqual([]);
    expect(ws.ranTwice).toEqual([]);
    expect(ws.missingCompleted).toEqual([]);
    expect(ws.followUpFailures).toEqual([]);
    // Every failure is the documented one for a lost worker.
    expect(Object.keys(census.failureCodes).filter((c) => c !== "worker_lost")).toEqual([]);
    expect(census.byStatus.completed ?? 0).toBeGreaterThan(0);
  });
});
