import { Router } from "express";
import type { Queue } from "bullmq";
import { findExecution, findExecutionWithFiles, isTerminal } from "@codeinterp/db";
import type { ExecutionRow } from "@codeinterp/db";
import { finishAndAnnounce, requestCancel } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { HttpError, notFound } from "../errors";
import { ExecutionParams } from "../schemas";
import { serializeExecution } from "../serialize";
import { parseInput } from "../validate";

/**
 * Cancel: a queued execution ends here and its job is removed; a preparing or running one is interrupted
 * by the worker that holds it (told over Redis), which records `cancelled`.
 */
export function cancelRouter(deps: ApiDeps & { redis: Redis; queuePrefix: string }): Router {
  const router = Router();
  router.post("/executions/:id/cancel", async (req, res) => {
    const userId = userOf(res);
    const { id } = parseInput(ExecutionParams, req.params, "params");
    const execution = await findExecution(deps.db, userId, id);
    if (!execution) throw notFound("execution");
    if (isTerminal(execution.status)) {
      throw new HttpError(409, "execution_finished", `execution already ended as ${execution.status}`);
    }
    await cancelExecution(deps, execution);
    const current = await findExecutionWithFiles(deps.db, userId, id);
    res.status(202).json(current ? serializeExecution(current, current.files) : serializeExecution(execution, []));
  });
  return router;
}

/** Ends a queued execution at once, or asks the worker running it to interrupt it (shared by the Jupyter surface). */
export async function cancelExecution(
  deps: Pick<ApiDeps, "db" | "log" | "executionQueue" | "redis" | "queuePrefix">,
  execution: Pick<ExecutionRow, "id" | "messageId">,
): Promise<void> {
  const { id } = execution;
  const log = deps.log.child({ executionId: id, messageId: execution.messageId });
  const moved = await finishAndAnnounce({ db: deps.db, redis: deps.redis, prefix: deps.queuePrefix }, id, "cancelled", {
    onlyFrom: ["queued"],
  });
  if (moved) {
    await removeJob(deps.executionQueue, id);
    log.info("queued execution cancelled");
  } else {
    await requestCancel(deps.redis, deps.queuePrefix, id);
    log.info("cancel sent to the worker");
  }
}

async function removeJob(queue: Queue, id: string): Promise<void> {
  // An active (locked) job cannot be removed; the worker then finds the execution already terminal.
  await queue.remove(id).catch(() => undefined);
}
