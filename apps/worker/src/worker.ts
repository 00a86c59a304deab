import type { WorkerEvents } from "./events";
import { DelayedError, UnrecoverableError, Worker } from "bullmq";
import type { Job } from "bullmq";
import { readExecutionToRun } from "@codeinterp/db";
import { jobCatalog, parseJobPayload, queueNames } from "@codeinterp/queue";
import type { RunExecutionDeps } from "./jobs/run-execution";
import { runExecution } from "./jobs/run-execution";

/** How long a job whose message is busy steps aside (plus up to as much again, so waiters spread out). */
const LOCK_BUSY_DELAY_MS = 100;
/** How long a job that needs a kernel while every kernel is busy (at the ceiling) steps aside, likewise. */
const CAPACITY_WAIT_DELAY_MS = 250;

/**
 * The BullMQ worker for executions. Stalled-job settings are chosen on purpose: a worker that dies is
 * noticed within `stalledInterval`, and its job is moved back to waiting once (`maxStalledCount`), where
 * runExecution sees how far the previous attempt got and either re-runs (it never reached the kernel)
 * or fails the execution clearly (it did).
 */
export function createExecutionWorker(
  deps: RunExecutionDeps & {
    connection: RunExecutionDeps["redis"];
    events?: WorkerEvents;
    /** The shared queue (default) or this cell's own (packages/queue/src/cells.ts). */
    queueName?: string;
  },
): Worker {
  const worker = new Worker(
    deps.queueName ?? queueNames.executions,
    async (job: Job, token?: string) => {
      if (job.name !== jobCatalog.runExecution.name) throw new UnrecoverableError(`unknown job ${job.name}`);
      let payload;
      try {
        payload = parseJobPayload("runExecution", job.data);
      } catch (err) {
        throw new UnrecoverableError((err as Error).message);
      }
      const stepAside = async (delayMs: number, reason: "message_busy" | "capacity"): Promise<never> => {
        if (!token) throw new Error("a job without a lock token cannot wait");
        deps.events?.emit("turn:steppedAside", { executionId: payload.executionId, reason });
        await job.moveToDelayed(Date.now() + delayMs + Math.floor(Math.random() * delayMs), token);
        throw new DelayedError();
      };
      // The execution is read while the turn is taken (a read changes nothing: a job that steps aside only
      // wasted it), and a warm one is then started in one statement just before its code is sent. A job that
      // stepped aside before (its message was busy) reads only once it has the turn.
      const steppedAside = job.attemptsStarted > job.attemptsMade + 1;
      const read = steppedAside ? undefined : readExecutionToRun(deps.db, payload.executionId);
      // Awaited in runExecution, which sees its error; this only keeps a job that steps aside from leaving it unhandled.
      read?.catch(() => undefined);
      // The message's turn is this job's, from here to the finally below. Another execution of the message
      // has it: rather than wait for it in one of this worker's slots (executions of other messages would
      // queue behind), the job steps aside for a moment; the execution stays queued.
      const turn = payload.messageKey ? await deps.broker.tryTurn(payload.messageKey) : null;
      if (payload.messageKey && !turn) await stepAside(LOCK_BUSY_DELAY_MS, "message_busy");
      try {
        // Every kernel busy at the live-kernel ceiling: likewise, without starting one more.
        if (turn && !(await deps.broker.makeRoom(turn))) await stepAside(CAPACITY_WAIT_DELAY_MS, "capacity");
        const attempts = job.opts.attempts ?? 1;
        return await runExecution(deps, payload.executionId, {
          jobId: job.id,
          finalAttempt: job.attemptsMade + 1 >= attempts,
          turn,
          ...(read ? { read } : {}),
        });
      } catch (err) {
        if ((err as { retryable?: boolean }).retryable === false) throw new UnrecoverableError((err as Error).message);
        throw err;
      } finally {
        await turn?.release();
      }
    },
    {
      connection: deps.connection,
      prefix: deps.env.QUEUE_PREFIX,
      concurrency: deps.env.WORKER_CONCURRENCY,
      stalledInterval: deps.env.JOB_STALLED_INTERVAL_MS,
      maxStalledCount: 1,
      lockDuration: deps.env.JOB_LOCK_DURATION_MS,
      autorun: true,
    },
  );
  worker.on("error", (err) => deps.log.warn({ err: err.message }, "worker connection error"));
  worker.on("failed", (job, err) => deps.log.warn({ jobId: job?.id, err: err.message }, "job failed"));
  return worker;
}
