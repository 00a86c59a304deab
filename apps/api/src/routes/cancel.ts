import { Router } from "express";
import { findExecution, findExecutionWithFiles, isTerminal } from "@codeinterp/db";
import type { Redis } from "@codeinterp/queue";
import { userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { HttpError, notFound } from "../errors";
import { cancelExecution } from "../executions/service";
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
