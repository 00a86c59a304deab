import { UnrecoverableError, Worker } from "bullmq";
import type { Job } from "bullmq";
import { jobCatalog, parseJobPayload, queueNames } from "@codeinterp/queue";
import type { RunExecutionDeps } from "./jobs/run-execution";
import { runExecution } from "./jobs/run-execution";

/**
 * The BullMQ worker for executions. Stalled-job settings are chosen on purpose: a worker that dies is
 * noticed within `stalledInterval`, and its job is moved back to waiting once (`maxStalledCount`), where
 * runExecution sees how far the previous attempt got and either re-runs (it never reached the kernel)
 * or fails the execution clearly (it did).
 */
export function createExecutionWorker(deps: RunExecutionDeps & { connection: RunExecutionDeps["redis"] }): Worker {
  const worker = new Worker(
    queueNames.executions,
    async (job: Job) => {
      if (job.name !== jobCatalog.runExecution.name) throw new UnrecoverableError(`unknown job ${job.name}`);
      let payload;
      try {
        payload = parseJobPayload("runExecution", job.data);
      } catch (err) {
        throw new UnrecoverableError((err as Error).message);
      }
      const attempts = job.opts.attempts ?? 1;
      try {
        return await runExecution(deps, payload.executionId, { jobId: job.id, finalAttempt: job.attemptsMade + 1 >= attempts });
      } catch (err) {
        if ((err as { retryable?: boolean }).retryable === false) throw new UnrecoverableError((err as Error).message);
        throw err;
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
