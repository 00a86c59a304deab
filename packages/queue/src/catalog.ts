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
        messageKey: z.string().regex(/^[0-9a-f]{64}$/).optional(),
      })
      .strict(),
    // jobId is the executionId, so enqueuing twice (a retried request, the reconciler) makes one job.
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
  if (!parsed.success) throw new InvalidJobPayloadError(`invalid ${jobCatalog[name].name} payload: ${parsed.error.message}`);
  return parsed.data as JobPayload<N>;
}

