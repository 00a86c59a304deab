import {
  claimQueuedExecution,
  markExecutionRunning,
  getExecutionForWorker,
  noteQueuedAttempt,
  isTerminal,
  readExecutionToRun,
  retakeExecution,
  startQueuedExecution,
} from "@codeinterp/db";
import type { ExecutionRow, ExecutionToRun } from "@codeinterp/db";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import { createEventPublisher, isCancelRequested } from "@codeinterp/queue";
import { workspaceDirFor, workspaceDirOfId, workspaceId } from "@codeinterp/workspace";
import type { Cell } from "../cells/cell";
import type { WorkerEnv } from "../env";
import type { KernelLease, LeaseRequest, MessageTurn } from "../kernels/broker";
import { isGatewayFailure, judgeGatewayFailure } from "../gateway-watch";
import type { WorkspaceLayout } from "../workspace-layout";
import { MEMORY_REQUEST_NOT_APPLIED_NOTE, STATE_RESET_NOTE, kernelResetNote } from "./execution/kernel-outcome";
import type { ExecutionContext, RunExecutionDeps } from "./execution/context";
import type { Terminal } from "./execution/outcome";
import { emptyResult, failureCode, finish, isTransient } from "./execution/outcome";
import { prepareWorkspace } from "./execution/prepare-workspace";
import { recordOutcome } from "./execution/record-outcome";
import { resolveWorkspace, runCode } from "./execution/run-code";

export type { RunExecutionDeps } from "./execution/context";

const MiB = 1024 ** 2;

/**
 * How long a claimed execution's `preparing` is held back to go out with `running`: longer than adopting a
 * pool kernel, shorter than anyone watching would notice; a kernel start still shows `preparing`, this much
 * later. (A warm execution has no `preparing` at all.)
 */
const PREPARING_HOLD_MS = 100;

export class ExecutionNotFoundError extends Error {
  override name = "ExecutionNotFoundError";
  readonly retryable = false;
}

/** The execution ended (a cancel) while it was still queued, before a kernel was taken for it. */
export class ExecutionEndedError extends Error {
  override name = "ExecutionEndedError";
}

/**
 * One execution, start to finish: prepare the message's workspace, run the code in a kernel, capture what
 * it wrote, record the result. Runs inside the message's turn, which the job took (and releases). Safe to
 * run again for the same execution (a retried job): terminal states are final and file registration is
 * unique per (execution, path).
 */
export async function runExecution(
  deps: RunExecutionDeps,
  executionId: string,
  job: {
    jobId: string | undefined;
    finalAttempt: boolean;
    turn: MessageTurn | null;
    /** The execution as read while the job took the turn (read here when not given). */
    read?: Promise<ExecutionToRun | null>;
  },
): Promise<Terminal | "skipped"> {
  // Beside the read, under the turn: this cell holds the message from now on (a message another cell held
  // lost its kernel there; apps/worker/src/cells). The turn's key names the message (checked against the row
  // below).
  const [found] = await Promise.all([
    job.read ?? readExecutionToRun(deps.db, executionId),
    deps.cell && job.turn ? holdHere(deps, deps.cell, job.turn) : undefined,
  ]);
  if (!found) throw new ExecutionNotFoundError(`execution ${executionId} does not exist`);
  let exec = found.execution;
  const log = deps.log.child({ executionId, messageId: exec.messageId, chatId: exec.chatId, jobId: job.jobId });
  const pub = createEventPublisher(deps.redis, deps.env.QUEUE_PREFIX, executionId);
  if (isTerminal(exec.status)) return "skipped";
  const req = kernelRequestFor(deps.env, deps.layout, exec.userId, exec.messageId);
  const turn = job.turn;
  if (turn?.messageKey !== req.messageKey) {
    // Producers always name the execution's message; a job that names another cannot have its turn.
    log.error({ hinted: turn?.messageKey }, "the job's message key does not match the execution");
    return finish(deps, exec.id, "failed", {
      failure: { code: "internal_error", message: "the job does not match its execution" },
    });
  }

  // Warm: the message has its kernel, so the execution stays queued while that kernel is attached and the
  // workspace prepared (a millisecond nobody could watch) and goes to running in one statement just before its
  // code is sent; an attempt that stops before then leaves it queued, and the retry runs it. Should the kernel
  // turn out gone, it is claimed before another is taken. Otherwise it is claimed now, or it is a retry of an
  // attempt that got that far.
  const warm = exec.status === "queued" && turn.mapping !== null && !turn.resetAsked;
  let attachments = found.attachments;
  let startedAt = exec.startedAt ?? new Date();
  if (!warm) {
    const claim = exec.status === "queued" ? await claimQueuedExecution(deps.db, exec.id, deps.env.WORKER_ID) : null;
    if (claim) {
      ({ execution: exec, attachments } = claim);
      startedAt = exec.startedAt ?? startedAt;
    } else {
      const taken = await retake(deps, exec.id, turn, log);
      if (!("exec" in taken)) return taken.outcome;
      // (Its attachments are the ones read with it: they were committed before it was queued.)
      ({ exec, startedAt } = taken);
    }
  }
  const abort = deps.cancels.register(exec.id);
  // A cancel sent before this worker was listening for it (between retries, or just now) left a mark. It is
  // looked up while the kernel is acquired and honoured before any code is sent.
  const cancelMarkChecked = isCancelRequested(deps.redis, deps.env.QUEUE_PREFIX, exec.id).then(
    (requested) => {
      if (requested) abort.abort();
    },
    () => undefined,
  );
  // What the execution asked for, else the gateway's per-kernel default; unknown: the kernel is left as it is.
  const memoryBytes = exec.memoryMb === null ? deps.kernelMemoryBytes : exec.memoryMb * MiB;
  // Sent with `running` (or the end) when that comes within PREPARING_HOLD_MS, as it does on a pool kernel.
  const showPreparing = () => pub.hold({ type: "status", status: "preparing" }, PREPARING_HOLD_MS);
  if (!warm) showPreparing();
  const ctx: ExecutionContext = {
    deps,
    exec,
    turn,
    req: { ...req, signal: abort.signal, log, ...(memoryBytes !== undefined ? { memoryBytes } : {}) },
    pub,
    log,
    startedAt,
    queued: warm,
    cancelMarkChecked,
    attachments,
    notes: [],
  };
  if (warm) ctx.req.beforeNewKernel = () => claimBeforeNewKernel(ctx, showPreparing);
  const restartsBefore = deps.gatewayWatch?.monitor.health().restarts ?? 0;
  try {
    return await prepareAndRun(ctx);
  } catch (err) {
    // Ended meanwhile (cancelled while still queued): nothing ran, and its end was announced by whoever ended it.
    if (err instanceof ExecutionEndedError) return "skipped";
    const e = normalizeError(err);
    if (deps.gatewayWatch && isGatewayFailure(err)) {
      const verdict = await judgeGatewayFailure(deps.gatewayWatch, deps.db, exec.id, {
        startedAt,
        finalAttempt: job.finalAttempt,
        restartsBefore,
      });
      if (verdict.retry) {
        log.warn({ err: e }, "kernel gateway unavailable before the code ran; the job will be retried");
        await noteAttempt(ctx);
        throw err;
      }
      log.error({ err: e, failure: verdict.failure.code }, "execution failed: kernel gateway unavailable");
      return finish(deps, exec.id, "failed", { failure: verdict.failure }, pub);
    }
    if (!job.finalAttempt && isTransient(err)) {
      log.warn({ err: e }, "transient failure; the job will be retried");
      await noteAttempt(ctx);
      throw err;
    }
    log.error({ err: e }, "execution failed");
    return finish(deps, exec.id, "failed", { failure: { code: failureCode(err), message: e.message } }, pub);
  } finally {
    deps.cancels.unregister(exec.id);
    // Still held: the execution neither ran nor ended here (someone else ended it); nothing may follow.
    pub.drop();
  }
}

/**
 * The steps, in order: a kernel (it comes first: a sandboxed pool kernel's directory becomes the
 * workspace), the workspace, the run, the record. A cancel is honoured until the code is sent.
 */
async function prepareAndRun(ctx: ExecutionContext): Promise<Terminal | "skipped"> {
  const { deps, exec, pub } = ctx;
  const cancelled = () => finish(deps, exec.id, "cancelled", { result: emptyResult(ctx.notes) }, pub);
  if (ctx.req.signal.aborted) return cancelled();
  let lease: KernelLease;
  try {
    lease = await deps.broker.lease(ctx.turn, ctx.req);
  } catch (err) {
    // Cancelled while waiting (for room under the kernel ceiling): nothing ran.
    if (ctx.req.signal.aborted && !(err instanceof ExecutionEndedError)) return cancelled();
    throw err;
  }
  noteStateReset(ctx, lease);
  ctx.log.debug({ kernelId: lease.session.id, how: lease.how, acquireMs: lease.acquireMs }, "kernel acquired");
  let discard = false;
  try {
    const ws = await prepareWorkspace(ctx, ctx.attachments);
    await lease.ready();
    noteStateReset(ctx, lease);
    if (lease.memoryLimit === "unavailable" && exec.memoryMb !== null) ctx.notes.push(MEMORY_REQUEST_NOT_APPLIED_NOTE);
    const realDir = resolveWorkspace(ctx);
    await ctx.cancelMarkChecked;
    if (ctx.req.signal.aborted) return await cancelled();
    const kernelId = lease.session.id;
    const started = ctx.queued
      ? startQueuedExecution(deps.db, exec.id, { kernelId, workerId: deps.env.WORKER_ID, startedAt: ctx.startedAt })
      : markExecutionRunning(deps.db, exec.id, kernelId);
    // Not queued (warm) or preparing any more: it was cancelled or ended meanwhile, and the code is not sent.
    if (!(await started)) return "skipped";
    void pub.publish({ type: "status", status: "running" });
    // A message whose earlier executions ran on another kernel (it died, went over its memory limit, was
    // evicted or expired) is told its variables are gone; looked up while the code runs.
    const resetNote =
      lease.how === "attached" ? null : kernelResetNote(deps.db, exec, lease.session.id).catch(() => null);
    const run = await runCode(ctx, lease, await realDir);
    discard = run.discard;
    const reset = await resetNote;
    if (reset && !ctx.notes.includes(STATE_RESET_NOTE)) ctx.notes.push(reset);
    return await recordOutcome(ctx, lease, ws, run);
  } catch (err) {
    // The kernel's state is unknown after a failure half-way: the next execution gets a fresh one.
    discard = true;
    throw err;
  } finally {
    // A lease that already gave its kernel back (its `ready` failed) makes this a no-op.
    await (discard ? lease.retire() : lease.release()).catch((err: unknown) =>
      ctx.log.warn({ err: normalizeError(err) }, "kernel release failed"),
    );
  }
}

/**
 * A warm execution whose kernel turned out gone (or too big for its memory limit): claimed before another
 * kernel is taken for it, so the wait for that kernel shows as `preparing`. Ended meanwhile: nothing is taken.
 */
async function claimBeforeNewKernel(ctx: ExecutionContext, showPreparing: () => void): Promise<void> {
  if (!ctx.queued) return;
  const claim = await claimQueuedExecution(ctx.deps.db, ctx.exec.id, ctx.deps.env.WORKER_ID);
  if (!claim) throw new ExecutionEndedError(`execution ${ctx.exec.id} ended before a kernel was taken for it`);
  ctx.queued = false;
  showPreparing();
}

/**
 * A warm attempt that ends without starting and will be retried counts as an attempt, and the first one's
 * start is kept: the gateway's retry budget runs from it. Best effort (the database may be what failed).
 */
async function noteAttempt(ctx: ExecutionContext): Promise<void> {
  if (!ctx.queued) return;
  const { db, env } = ctx.deps;
  await noteQueuedAttempt(db, ctx.exec.id, { startedAt: ctx.startedAt, workerId: env.WORKER_ID }).catch(
    () => undefined,
  );
}

/**
 * An execution that could not be claimed: one that ended meanwhile is skipped; one whose earlier attempt
 * reached the kernel is failed (its code may already have had effects, so it is not run a second time behind
 * the user's back); one whose earlier attempt stopped before that runs again.
 */
async function retake(
  deps: RunExecutionDeps,
  id: string,
  turn: MessageTurn,
  log: Logger,
): Promise<{ exec: ExecutionRow; startedAt: Date } | { outcome: Terminal | "skipped" }> {
  const exec = await getExecutionForWorker(deps.db, id);
  if (!exec) throw new ExecutionNotFoundError(`execution ${id} does not exist`);
  if (isTerminal(exec.status)) return { outcome: "skipped" };
  if (exec.status === "running") {
    log.warn("previous attempt died while running; failing the execution");
    if (exec.kernelId) {
      await deps.broker
        .evict(turn, exec.kernelId)
        .catch((err: unknown) => log.warn({ err: normalizeError(err) }, "could not evict the lost execution's kernel"));
    }
    return {
      outcome: await finish(deps, exec.id, "failed", {
        failure: { code: "worker_lost", message: "the worker running this execution stopped; submit it again" },
      }),
    };
  }
  const startedAt = exec.startedAt ?? new Date();
  const moved = await retakeExecution(deps.db, exec.id, { startedAt, workerId: deps.env.WORKER_ID });
  return moved ? { exec, startedAt } : { outcome: "skipped" };
}

function holdHere(deps: RunExecutionDeps, cell: Cell, turn: MessageTurn): Promise<void> {
  const workspaceDir = workspaceDirOfId(deps.env.DATA_DIR, turn.messageKey);
  return cell.hold(turn, workspaceDir, (kernelId) => deps.broker.evict(turn, kernelId));
}

/** The ceiling's note, once, when the message's previous kernel was evicted for others (found at any lease step). */
function noteStateReset(ctx: ExecutionContext, lease: KernelLease): void {
  if (lease.stateReset && !ctx.notes.includes(STATE_RESET_NOTE)) ctx.notes.push(STATE_RESET_NOTE);
}

/** The kernel identity of a (user, message): its turn and mapping key, workspace, and sandbox uid. */
export function kernelRequestFor(
  env: Pick<WorkerEnv, "DATA_DIR">,
  layout: WorkspaceLayout,
  userId: string,
  messageId: string,
): LeaseRequest {
  const workspaceDir = workspaceDirFor(env.DATA_DIR, userId, messageId);
  return {
    messageKey: workspaceId(userId, messageId),
    workspaceDir,
    kernelPath: layout.kernelPath(workspaceDir),
    uid: layout.uidFor(userId, messageId),
  };
}
