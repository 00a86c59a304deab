import { createFileStore } from "@codeinterp/files";
import type { ExecutionEventBody } from "@codeinterp/queue";
import { normalizeError } from "@codeinterp/logger";
import { BlobStoreUnavailableError, diffSnapshots, snapshotWorkspace } from "@codeinterp/workspace";
import { captureFiles } from "../../capture";
import type { KernelLease } from "../../kernels/broker";
import { storeRichOutputs } from "../../rich-outputs";
import type { ExecutionContext } from "./context";
import type { Terminal } from "./outcome";
import { STATUS_BY_OUTCOME, finish, outcomeFailure, retryTransient } from "./outcome";
import type { PreparedWorkspace } from "./prepare-workspace";
import type { RunResult } from "./run-code";

/**
 * Captures the files the code wrote and its rich outputs, and records the result. The code has run: from
 * here a Postgres or Redis blip is waited out in place, because a retried job would find the execution
 * running and could only fail it. Capture and registration are idempotent.
 */
export async function recordOutcome(
  ctx: ExecutionContext,
  lease: KernelLease,
  ws: PreparedWorkspace,
  run: RunResult,
): Promise<Terminal | "skipped"> {
  try {
    return await retryTransient(() => recordOnce(ctx, lease, ws, run), ctx.log);
  } catch (err) {
    // Object storage away for longer than the retries: a retried job would find the code already run and
    // could only end it worker_lost. It ends here instead, with what the code printed and why its files are
    // not there (capture registered each file whole or not at all).
    if (!(err instanceof BlobStoreUnavailableError)) throw err;
    ctx.log.warn({ err: normalizeError(err).message }, "object storage unavailable; ending without the files");
    return finish(
      ctx.deps,
      ctx.exec.id,
      "failed",
      {
        result: { ...textResult(run), outputs: [], notes: ctx.notes },
        failure: {
          code: "blob_store_unavailable",
          message: "the code ran, but object storage was unavailable, so the files it wrote could not be saved",
        },
      },
      ctx.pub,
    );
  }
}

/** What the code printed and raised, with workspace paths shown as /mnt/data. */
function textResult({ outcome, back }: RunResult) {
  return {
    stdout: back(outcome.stdout),
    stderr: back(outcome.stderr),
    error: outcome.error
      ? { ename: outcome.error.ename, evalue: back(outcome.error.evalue), traceback: outcome.error.traceback.map(back) }
      : null,
    truncated: outcome.truncated,
  };
}

async function recordOnce(
  ctx: ExecutionContext,
  lease: KernelLease,
  ws: PreparedWorkspace,
  run: RunResult,
): Promise<Terminal | "skipped"> {
  const { env, db, blobs } = ctx.deps;
  const files = createFileStore({ db, blobs, log: ctx.log });
  const { exec, pub } = ctx;
  const { outcome } = run;
  const workspaceDir = ctx.req.workspaceDir;
  const tCapture = Date.now();
  const after = await snapshotWorkspace(workspaceDir, { ...ws.snapshotOpts, previous: ws.before });
  const diff = diffSnapshots(ws.before, after, {
    maxFiles: env.MAX_GENERATED_FILES,
    maxFileBytes: env.MAX_GENERATED_FILE_BYTES,
    maxTotalBytes: env.MAX_GENERATED_TOTAL_BYTES,
  });
  const fileCtx = {
    db,
    files,
    userId: exec.userId,
    chatId: exec.chatId,
    messageId: exec.messageId,
    executionId: exec.id,
  };
  // The files' and outputs' events go out together in one round trip, not awaited: the end, announced
  // after the row is written, follows them on the same connection.
  const events: ExecutionEventBody[] = [];
  // The files it wrote and the images it showed are stored side by side (different paths: registered apart);
  // both are settled before an error goes on, so a retry never overlaps a store still under way.
  const [capturing, storing] = await Promise.allSettled([
    captureFiles(
      { ...fileCtx, workspaceDir, maxFileBytes: env.MAX_GENERATED_FILE_BYTES, attachmentByPath: ws.attachmentByPath },
      diff,
      (f) => {
        events.push({
          type: "file",
          file: { id: f.id, name: f.name, path: f.path ?? f.name, size: f.size, mimeType: f.mimeType },
        });
        return Promise.resolve();
      },
    ),
    storeRichOutputs({ ...fileCtx, workspaceDirs: run.realDirs }, outcome.outputs),
  ]);
  if (capturing.status === "rejected") {
    if (storing.status === "rejected")
      ctx.log.warn({ err: normalizeError(storing.reason).message }, "storing the outputs failed as well");
    throw capturing.reason;
  }
  if (storing.status === "rejected") throw storing.reason;
  const captured = capturing.value;
  const outputs = storing.value;
  for (const o of outputs) if (o.fileId) events.push({ type: "output", output: o });
  if (events.length > 0) void pub.publish(...events);
  const captureMs = Date.now() - tCapture;

  const result = {
    ...textResult(run),
    outputs,
    // Hidden files, caches and configured excludes are policy, not news: only report what a user would
    // have expected back (limits, symlinks, special files).
    skippedFiles: captured.skipped.filter((x) => x.reason !== "excluded"),
    notes: ctx.notes,
  };
  const metrics = {
    queueWaitMs: ctx.startedAt.getTime() - exec.createdAt.getTime(),
    prepareMs: ws.prepareMs,
    kernelAcquireMs: lease.acquireMs,
    pooledKernel: lease.how === "adopted",
    reusedKernel: lease.how === "attached",
    runMs: run.runMs,
    captureMs,
    filesCaptured: captured.files.length,
  };
  return finish(
    ctx.deps,
    exec.id,
    STATUS_BY_OUTCOME[outcome.status],
    {
      result,
      failure: outcomeFailure(outcome),
      metrics,
    },
    pub,
  );
}
