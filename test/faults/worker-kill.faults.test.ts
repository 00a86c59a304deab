import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  api,
  checkWorkspaces,
  report,
  settle,
  sleep,
  startFaultStack,
  terminalSnapshot,
  waitFor,
  workloadCode,
} from "./harness";
import type { FaultStack, SubmittedRun } from "./harness";

/** The submissions' pacing: one every SUBMIT_EVERY_MS. */
const SUBMIT_EVERY_MS = 300;
/** The fault: how long the worker stays dead before it is started again (a supervisor's restart delay). */
const WORKER_DOWN_MS = 300;

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

    // Submit 30 executions over ~9 s on 6 messages while the worker is killed and restarted 4 times, each
    // time while it runs one of them.
    const submitting = (async () => {
      for (let i = 0; i < total; i++) {
        const messageId = `m${i % messages}`;
        const token = `t${i}`;
        runs.push({
          id: await a.submit({ chatId: "faults", messageId, code: workloadCode(token, 0.5) }),
          token,
          chatId: "faults",
          messageId,
        });
        await sleep(SUBMIT_EVERY_MS);
      }
    })();
    let submitted = false;
    void submitting.then(
      () => (submitted = true),
      () => (submitted = true),
    );
    let kills = 0;
    let killedMidRun = 0;
    for (let k = 0; k < 4; k++) {
      const worker = stack.worker!;
      // The (restarted) worker has picked up an execution and runs it; once everything has ended there is
      // nothing left to pick, and the worker is killed idle.
      const midRun = await waitFor(
        async () => {
          const [row] = await stack.sql<{ running: string; left: string }>(
            `SELECT count(*) FILTER (WHERE status = 'running' AND worker_id = $1) AS running,
                    count(*) FILTER (WHERE status NOT IN ('completed','failed','timed_out','cancelled')) AS left
             FROM executions WHERE chat_id = 'faults'`,
            [worker.workerId],
          );
          if (Number(row!.running) > 0) return "running";
          if (submitted && Number(row!.left) === 0) return "idle";
          return undefined;
        },
        60_000,
        `worker ${worker.workerId} running an execution`,
      );
      await worker.kill("SIGKILL");
      kills++;
      if (midRun === "running") killedMidRun++;
      await sleep(WORKER_DOWN_MS);
      await stack.startWorker();
    }
    await submitting;

    const census = await settle(stack, 60_000);
    const snap = await terminalSnapshot(stack);
    const ws = await checkWorkspaces(stack, user.key, runs);
    // Nothing moved after it ended (the follow-ups are new rows; the earlier ones keep status and finished_at).
    const snapAfter = await terminalSnapshot(stack);
    const moved = [...snap].filter(([id, v]) => snapAfter.get(id) !== v);
    report("worker-kill", {
      accepted: runs.length,
      kills,
      killedMidRun,
      ...census,
      ...ws,
      movedAfterTerminal: moved.length,
    });

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
