import type { Queue } from "bullmq";
import type { Db } from "@codeinterp/db";
import { finishExecution } from "@codeinterp/db";
import { workspaceId } from "@codeinterp/workspace";
import { enqueueJob } from "./catalog";
import { executionFailureSchema, executionMetricsSchema, executionResultSchema } from "./execution-record";
import type { ExecutionFailure, ExecutionMetrics, ExecutionResult } from "./execution-record";
import { doneExecution, smallEnough } from "./done-execution";
import { cancelChannel, cancelKey } from "./keys";
import { createEventPublisher } from "./publisher";
import type { EventPublisher } from "./publisher";
import type { Redis } from "./redis";

/**
 * The changes of an execution's state that span Postgres and Redis, each written once and used by the API,
 * the worker's job and the reconciler: run it, ask for it to stop, end it.
 */

export interface ExecutionStateDeps {
  db: Db;
  redis: Redis;
  /** QUEUE_PREFIX */
  prefix: string;
}

export type TerminalStatus = Parameters<typeof finishExecution>[2];
/** What an end records; written only after parsing with the stored record's schemas (execution-record.ts). */
export interface FinishData {
  result?: ExecutionResult | null;
  failure?: ExecutionFailure | null;
  metrics?: ExecutionMetrics;
  onlyFrom?: Parameters<typeof finishExecution>[3]["onlyFrom"];
}

/** Queues the run of an execution; enqueuing it twice (a retried request, the reconciler) makes one job. */
export async function enqueueExecution(
  queue: Pick<Queue, "name" | "add">,
  execution: { id: string; userId: string; messageId: string },
): Promise<void> {
  await enqueueJob(queue, "runExecution", {
    executionId: execution.id,
    messageKey: workspaceId(execution.userId, execution.messageId),
  });
}

// How long a cancel request waits for a worker to pick up the execution (a retried job a while later).
const CANCEL_MARK_TTL_S = 24 * 3600;

/** Asks whichever worker runs (or will run) the execution to stop it: a lasting mark, then a live message. */
export async function requestCancel(redis: Redis, prefix: string, executionId: string): Promise<void> {
  await redis.set(cancelKey(prefix, executionId), "1", "EX", CANCEL_MARK_TTL_S);
  await redis.publish(cancelChannel(prefix), executionId);
}

/** A cancel was requested before this worker was listening for it. */
export async function isCancelRequested(redis: Redis, prefix: string, executionId: string): Promise<boolean> {
  return (await redis.exists(cancelKey(prefix, executionId))) > 0;
}

/** Calls `onCancel` with each execution id a cancel is requested for; `subscriber` is a connection of its own. */
export async function onCancelRequests(
  subscriber: Redis,
  prefix: string,
  onCancel: (executionId: string) => void,
): Promise<void> {
  const channel = cancelChannel(prefix);
  await subscriber.subscribe(channel);
  subscriber.on("message", (from: string, executionId: string) => {
    if (from === channel) onCancel(executionId);
  });
}

/**
 * Ends an execution: its terminal state is written (only from an active state, or from `onlyFrom`), then
 * announced on its event channel and replay log (the status, then `done`). Terminal states are final, so of
 * two finishes of one execution the first wins and only it is announced; false when this one did nothing.
 * The announcement is best effort: the database holds the truth. `publisher`: the execution's own, when the
 * caller has one (an event it holds goes out ahead of the end, in the same round trip).
 */
export async function finishAndAnnounce(
  deps: ExecutionStateDeps,
  executionId: string,
  status: TerminalStatus,
  data: FinishData,
  publisher?: EventPublisher,
): Promise<boolean> {
  const result = data.result ? executionResultSchema.parse(data.result) : data.result;
  const failure = data.failure ? executionFailureSchema.parse(data.failure) : data.failure;
  const ended = await finishExecution(deps.db, executionId, status, {
    result,
    failure,
    metrics: data.metrics ? executionMetricsSchema.parse(data.metrics) : undefined,
    onlyFrom: data.onlyFrom,
    // A small record comes back from the same statement and rides on `done` (done-execution.ts).
    returnExecution: smallEnough(result, data.metrics?.filesCaptured),
  });
  // Whoever moved it first (a cancel, say) already announced the end: nothing of this one may follow it.
  if (!ended.moved) {
    publisher?.drop();
    return false;
  }
  await (publisher ?? createEventPublisher(deps.redis, deps.prefix, executionId)).end(
    status,
    ended.execution ? doneExecution(ended.execution) : undefined,
  );
  return true;
}
