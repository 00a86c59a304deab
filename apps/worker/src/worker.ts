import { DelayedError, UnrecoverableError, Worker } from "bullmq";
import type { Job } from "bullmq";
import { jobCatalog, parseJobPayload, queueNames } from "@codeinterp/queue";
import type { RunExecutionDeps } from "./jobs/run-execution";
import { runExecution } from "./jobs/run-execution";
import type { HeldLock } from "./kernels/lock";

/** How long a job whose message is busy steps aside (plus up to as much again, so waiters spread out). */
const LOCK_BUSY_DELAY_MS = 100;

/**
 * The BullMQ worker for executions. Stalled-job settings are chosen on purpose: a worker that dies is
 * noticed within `stalledInterval`, and its job is moved back to waiting once (`maxStalledCount`), where
 * runExecution sees how far the previous attempt got and either re-runs (it never reached the kernel)
 * or fails the execution clearly (it did).
 */
export function createExecutionWorker(deps: RunExecutionDeps & { connection: RunExecutionDeps["redis"] }): Worker {
  const worker = new Worker(
    queueNames.executions,
    async (job: Job, token?: string) => {
      if (job.name !== jobCatalog.runExecution.name) throw new UnrecoverableError(`unknown job ${job.name}`);
      let payload;
      try {
        payload = parseJobPayload("runExecution", job.data);
      } catch (err) {
        throw new UnrecoverableError((err as Error).message);
      }
      // Another execution of this message holds its kernel: rather than wait for it in one of this worker's
      // slots (executions of other messages would queue behind), the job steps aside for a moment.
      let held: HeldLock | null = null;
      if (payload.messageKey) {
        held = await deps.broker.tryMessageLock(payload.messageKey);
        if (!held && token) {
          await job.moveToDelayed(Date.now() + LOCK_BUSY_DELAY_MS + Math.floor(Math.random() * LOCK_BUSY_DELAY_MS), token);
          throw new DelayedError();
        }
      }
      let handedOver = false;
      const messageLock = held && payload.messageKey
        ? {
            messageKey: payload.messageKey,
            take: () => {
              handedOver = true;
              return held ?? undefined;
            },
            peek: () => held ?? undefined,
          }
        : undefined;
      const attempts = job.opts.attempts ?? 1;
      try {
        return await runExecution(deps, payload.executionId, { jobId: job.id, finalAttempt: job.attemptsMade + 1 >= attempts, messageLock });
      } catch (err) {
        if ((err as { retryable?: boolean }).retryable === false) throw new UnrecoverableError((err as Error).message);
        throw err;
      } finally {
        if (held && !handedOver) await held.release();
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
