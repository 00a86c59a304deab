import { createHash } from "node:crypto";
import { Router } from "express";
import { findExecutionWithFiles, isTerminal } from "@codeinterp/db";
import type { ExecutionRow } from "@codeinterp/db";
import { executionMemoryBounds } from "@codeinterp/config";
import { userOf } from "../auth";
import { clientGone } from "../client-gone";
import type { ApiDeps } from "../deps";
import { HttpError, notFound } from "../errors";
import { createExecutionBody, ExecutionParams, WaitQuery } from "../schemas";
import { serializeExecution } from "../serialize";
import { parseInput } from "../validate";
import { submitAndWait, submitExecution, waitForExecution } from "../executions/service";
import type { SubmitInput } from "../executions/service";

export function executionsRouter(deps: ApiDeps): Router {
  const router = Router();
  const bodySchema = createExecutionBody(
    deps.env.MAX_CODE_BYTES,
    deps.env.MAX_EXECUTION_TIMEOUT_MS,
    deps.env.MAX_FILES_PER_EXECUTION,
    executionMemoryBounds(deps.env),
  );

  router.post("/executions", async (req, res) => {
    const userId = userOf(res);
    const body = parseInput(bodySchema, req.body, "body");
    const { waitMs } = parseInput(WaitQuery, req.query, "query");
    const input: SubmitInput = {
      userId,
      chatId: body.chatId,
      messageId: body.messageId,
      code: body.code,
      fileIds: body.fileIds,
      idempotencyKey: body.idempotencyKey,
      timeoutMs: Math.min(body.timeoutMs ?? deps.env.EXECUTION_TIMEOUT_MS, deps.env.MAX_EXECUTION_TIMEOUT_MS),
      memoryMb: body.limits?.memoryMb,
    };
    const refuseConflict = (execution: ExecutionRow, created: boolean) => {
      if (!created && !sameRequest(execution, body)) {
        throw new HttpError(409, "idempotency_conflict", "idempotencyKey was already used for a different request");
      }
    };
    if (waitMs) {
      // Submit and wait in one request: 200 with the ended execution, or 202 with it as it is after waitMs.
      const { execution, created, final } = await submitAndWait(
        deps,
        input,
        { ms: Math.min(waitMs, deps.env.MAX_WAIT_MS), signal: clientGone(res) },
        { beforeWait: refuseConflict },
      );
      if (!created) res.setHeader("Idempotent-Replayed", "true");
      // Deleted while it ran (its chat was deleted): it is gone, as a GET would say.
      if (!final) throw notFound("execution");
      const out = serializeExecution(final, final.files);
      if (isTerminal(final.status)) deps.finished?.set(userId, execution.id, out);
      res
        .status(isTerminal(final.status) ? 200 : 202)
        .location(`/v1/executions/${execution.id}`)
        .json(out);
      return;
    }
    const { execution, created } = await submitExecution(deps, input);
    refuseConflict(execution, created);
    if (!created) res.setHeader("Idempotent-Replayed", "true");
    // A new execution has no files yet; a replayed one may.
    const files = created ? [] : ((await findExecutionWithFiles(deps.db, userId, execution.id))?.files ?? []);
    res.status(202).location(`/v1/executions/${execution.id}`).json(serializeExecution(execution, files));
  });

  router.get("/executions/:id", async (req, res) => {
    const userId = userOf(res);
    const { id } = parseInput(ExecutionParams, req.params, "params");
    const { waitMs } = parseInput(WaitQuery, req.query, "query");
    const cached = deps.finished?.get(userId, id);
    if (cached) {
      res.json(cached);
      return;
    }
    let execution;
    if (waitMs) {
      // Only a held request needs to know that its client went away (a plain poll answers at once).
      execution = await waitForExecution(deps, userId, id, {
        ms: Math.min(waitMs, deps.env.MAX_WAIT_MS),
        signal: clientGone(res),
      });
    } else {
      execution = await findExecutionWithFiles(deps.db, userId, id);
    }
    if (!execution) throw notFound("execution");
    const body = serializeExecution(execution, execution.files);
    if (isTerminal(execution.status)) deps.finished?.set(userId, id, body);
    res.json(body);
  });

  return router;
}

function sameRequest(
  e: ExecutionRow,
  body: { chatId: string; messageId: string; code: string; limits?: { memoryMb?: number | undefined } | undefined },
): boolean {
  const sha = createHash("sha256").update(body.code).digest("hex");
  return (
    e.chatId === body.chatId &&
    e.messageId === body.messageId &&
    e.codeSha256 === sha &&
    e.memoryMb === (body.limits?.memoryMb ?? null)
  );
}
