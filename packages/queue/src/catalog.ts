import type { Queue } from "bullmq";
import { z } from "zod";

/** Every queue and job the system knows, with the schema of its payload. Payloads carry ids, never data. */
export const queueNames = {
  executions: "executions",
  maintenance: "maintenance",
} as const;
export type QueueName = (typeof queueNames)[keyof typeof queueNames];

export const jobCatalog = {
  runExecution: {
    queue: queueNames.executions,
    name: "run-execution",
    schema: z
      .object({
        executionId: z.uuid(),
        // The message's kernel key (`workspaceId(userId, messageId)`): lets a worker see that another execution
        // of the message holds its kernel and put the job back for a moment instead of waiting in a slot.
        // A hint: the worker checks it against the execution's row.
        messageKey: z
          .string()
          .regex(/^[0-9a-f]{64}$/)
          .optional(),
      })
      .strict(),
    // The job id is the executionId, so enqueuing twice (a retried request, the reconciler) makes one job.
    jobId: (payload: { executionId: string }) => payload.executionId,
    options: {
      // Retries cover a dependency outage of ~30 s (2+4+8+16 s); an attempt that had reached the kernel is
      // never re-run (see runExecution).
      attempts: 5,
      backoff: { type: "exponential", delay: 2000 },
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  },
  cleanWorkspaces: {
    queue: queueNames.maintenance,
    name: "clean-workspaces",
    schema: z.object({}).strict(),
    jobId: () => undefined,
    options: { removeOnComplete: true, removeOnFail: { age: 24 * 3600 } },
  },
} as const;

export type JobName = keyof typeof jobCatalog;
export type JobPayload<N extends JobName> = z.infer<(typeof jobCatalog)[N]["schema"]>;

export class InvalidJobPayloadError extends Error {
  override name = "InvalidJobPayloadError";
  /** A malformed payload will be just as malformed on the next attempt. */
  readonly retryable = false;
}

/** Job data comes from Redis, which anyone with access could have written: parse it as untrusted. */
export function parseJobPayload<N extends JobName>(name: N, data: unknown): JobPayload<N> {
  const parsed = jobCatalog[name].schema.safeParse(data);
  if (!parsed.success)
    throw new InvalidJobPayloadError(`invalid ${jobCatalog[name].name} payload: ${parsed.error.message}`);
  return parsed.data as JobPayload<N>;
}

/** A cell's own queue of executions (packages/queue/src/cells.ts) takes the same jobs as the shared one. */
const isCellQueueOf = (queue: QueueName, name: string) =>
  queue === queueNames.executions && name.startsWith(`${queueNames.executions}-cell-`);

export class WrongQueueError extends Error {
  override name = "WrongQueueError";
}

/**
 * The one way to put a job in a queue: the payload is typed by the job's name, and the job's options and id
 * come from the catalog. Consumers still parse it (parseJobPayload): Redis is not trusted.
 */
export async function enqueueJob<N extends JobName>(
  queue: Pick<Queue, "name" | "add">,
  name: N,
  payload: JobPayload<N>,
): Promise<void> {
  const job = jobCatalog[name];
  if (queue.name !== job.queue && !isCellQueueOf(job.queue, queue.name))
    throw new WrongQueueError(`${job.name} belongs to the ${job.queue} queue, not ${queue.name}`);
  const jobId = (job.jobId as (p: JobPayload<N>) => string | undefined)(payload);
  await queue.add(job.name, payload, { ...job.options, ...(jobId ? { jobId } : {}) });
}
