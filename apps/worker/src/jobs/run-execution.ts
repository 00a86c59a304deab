import { realpath } from "node:fs/promises";
import type { Db, ExecutionRow } from "@codeinterp/db";
import { claimQueuedExecution, finishExecution, markExecutionRunning, getExecutionForWorker, isTerminal, listMessageAttachments, transitionExecution } from "@codeinterp/db";
import type { ExecutionOutcome, KernelEvent } from "@codeinterp/kernel";
import { KernelDiedError } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { EventPublisher, Redis } from "@codeinterp/queue";
import { cancelKey, createEventPublisher } from "@codeinterp/queue";
import type { BlobStore } from "@codeinterp/workspace";
import {
  diffSnapshots,
  fromKernelText,
  prepareWorkspace,
  snapshotWorkspace,
  toKernelCode,
  workspaceDirFor,
  workspaceId,
} from "@codeinterp/workspace";
import { captureFiles } from "../capture";
import type { CancelRegistry } from "../cancellations";
import type { WorkerEnv } from "../env";
import { splitGlobs } from "../env";
import type { AcquireRequest, KernelBroker, KernelLease } from "../kernels/broker";
import type { HeldLock } from "../kernels/lock";
import { storeRichOutputs } from "../rich-outputs";
import type { WorkspaceLayout } from "../workspace-layout";
import { diedFailure, kernelResetNote } from "./kernel-outcome";

export interface RunExecutionDeps {
  env: WorkerEnv;
  db: Db;
  redis: Redis;
  blobs: BlobStore;
  broker: KernelBroker;
  layout: WorkspaceLayout;
  cancels: CancelRegistry;
  log: Logger;
}

export class KernelSetupError extends Error {
  override name = "KernelSetupError";
}

export class ExecutionNotFoundError extends Error {
  override name = "ExecutionNotFoundError";
  readonly retryable = false;
}

type Terminal = "completed" | "failed" | "timed_out" | "cancelled";

const STATUS_BY_OUTCOME: Record<ExecutionOutcome["status"], Terminal> = {
  ok: "completed",
  error: "completed",
  timeout: "timed_out",
  cancelled: "cancelled",
  died: "failed",
};

/** The message's lock, taken by the job before it started; `take` hands it over to the kernel broker. */
export interface PreTakenLock {
  messageKey: string;
  take(): HeldLock | undefined;
  /** The lock, still owned (and released) by the job. */
  peek(): HeldLock | undefined;
}

/**
 * One execution, start to finish: prepare the message's workspace, run the code in a kernel, capture what
 * it wrote, record the result. Safe to run again for the same execution (a retried job): terminal states
 * are final and file registration is unique per (execution, path).
 */
export async function runExecution(
  deps: RunExecutionDeps,
  executionId: string,
  ctx: { jobId: string | undefined; finalAttempt: boolean; messageLock?: PreTakenLock },
): Promise<Terminal | "skipped"> {
  // The common case is one UPDATE ... RETURNING; anything but a queued execution takes the slow path.
  const claimed = await claimQueuedExecution(deps.db, executionId, deps.env.WORKER_ID);
  const exec = claimed ?? (await getExecutionForWorker(deps.db, executionId));
  if (!exec) throw new ExecutionNotFoundError(`execution ${executionId} does not exist`);
  const log = deps.log.child({ executionId, messageId: exec.messageId, chatId: exec.chatId, jobId: ctx.jobId });
  const pub = createEventPublisher(deps.redis, deps.env.QUEUE_PREFIX, executionId);
  if (isTerminal(exec.status)) return "skipped";

  if (!claimed && exec.status === "running") {
    // An earlier attempt reached the kernel and its worker vanished: the code may already have had effects,
    // so it is not run a second time behind the user's back.
    log.warn("previous attempt died while running; failing the execution");
    if (exec.kernelId) {
      const req = kernelRequest(deps, exec);
      // The job may hold the message's lock already (taken before it started): evict under it, not wait for it.
      const heldLock = ctx.messageLock?.messageKey === req.messageKey ? ctx.messageLock.peek() : undefined;
      await deps.broker
        .evict({ ...req, heldLock }, exec.kernelId)
        .catch((err: unknown) => log.warn({ err: normalizeError(err) }, "could not evict the lost execution's kernel"));
    }
    return finish(deps, pub, exec.id, "failed", {
      failure: { code: "worker_lost", message: "the worker running this execution stopped; submit it again" },
    });
  }

  const startedAt = claimed?.startedAt ?? exec.startedAt ?? new Date();
  if (!claimed) {
    // A retried job of an execution that never reached the kernel: it runs again.
    const moved = await transitionExecution(deps.db, exec.id, ["queued", "preparing"], "preparing", {
      attempts: { increment: 1 },
      startedAt,
      workerId: deps.env.WORKER_ID,
    });
    if (!moved) return "skipped";
  }
  const abort = deps.cancels.register(exec.id);
  // A cancel sent before this worker was listening for it (between retries, or just now) left a mark. It is
  // looked up while the kernel is acquired and honoured before any code is sent.
  const markChecked = deps.redis.exists(cancelKey(deps.env.QUEUE_PREFIX, exec.id)).then(
    (n) => {
      if (n) abort.abort();
    },
    () => undefined,
  );
  void pub.publish({ type: "status", status: "preparing" });
  try {
    return await prepareAndRun(deps, exec, pub, log, abort.signal, startedAt, markChecked, ctx.messageLock);
  } catch (err) {
    const e = normalizeError(err);
    if (!ctx.finalAttempt && isTransient(err)) {
      log.warn({ err: e }, "transient failure; the job will be retried");
      throw err;
    }
    log.error({ err: e }, "execution failed");
    return finish(deps, pub, exec.id, "failed", { failure: { code: failureCode(err), message: e.message } });
  } finally {
    deps.cancels.unregister(exec.id);
  }
}

async function prepareAndRun(
  deps: RunExecutionDeps,
  exec: ExecutionRow,
  pub: EventPublisher,
  log: Logger,
  signal: AbortSignal,
  startedAt: Date,
  cancelMarkChecked: Promise<void>,
  messageLock: PreTakenLock | undefined,
): Promise<Terminal | "skipped"> {
  const { env, layout } = deps;
  const req = kernelRequest(deps, exec);

  const { workspaceDir } = req;
  if (signal.aborted) return finish(deps, pub, exec.id, "cancelled", { result: emptyResult([]) });
  // The kernel comes first: a sandboxed pool kernel's directory becomes the workspace, and the message's
  // lock (held until release) also serialises preparing its workspace.
  // Read while the kernel is acquired: the attachments were committed before this execution was queued.
  const attachmentsRead = listMessageAttachments(deps.db, exec.userId, exec.messageId);
  attachmentsRead.catch(() => undefined);
  let lease: KernelLease | null;
  try {
    // The job's hint named this message (checked here against the row): its lock is ours already. Handed
    // over only here, so every other way out leaves it to the job to release.
    const heldLock = messageLock?.messageKey === req.messageKey ? messageLock.take() : undefined;
    lease = await acquireReadyKernel(deps, { ...req, signal, heldLock }, layout.kernelDir(workspaceDir), log);
    log.debug({ kernelId: lease.session.id, pooled: lease.pooled, reused: lease.reused, acquireMs: lease.acquireMs }, "kernel acquired");
  } catch (err) {
    // Cancelled while waiting for the message's previous execution: nothing ran.
    if (signal.aborted) return finish(deps, pub, exec.id, "cancelled", { result: emptyResult([]) });
    throw err;
  }
  let discard = false;
  try {
    const t0 = Date.now();
    const attachments = await attachmentsRead;
    const prepared = await prepareWorkspace({
      dir: workspaceDir,
      mode: env.ATTACHMENT_LINK_MODE,
      attachments: attachments.map((f) => ({
        fileId: f.id,
        name: f.name,
        sha256: f.sha256,
        blobPath: deps.blobs.pathOf(f.storageKey),
        removed: f.deletedAt !== null,
      })),
    });
    // (prepareWorkspace also marked the workspace as used now, for the retention job.)
    await layout.giveToOwner(workspaceDir, prepared.placed.filter((p) => !p.existing).map((p) => p.path));
    const notes: string[] = [];
    for (const m of prepared.missing) {
      log.warn({ fileId: m.fileId }, "attachment's stored content is missing");
      notes.push(`attachment ${m.name} (${m.fileId}) is missing from storage and was not placed in /mnt/data`);
    }
    for (const c of prepared.conflicts) notes.push(`attachment ${c.name} was not placed: that name is taken by a ${c.reason}`);
    const snapshotOpts = { include: splitGlobs(env.CAPTURE_INCLUDE), exclude: splitGlobs(env.CAPTURE_EXCLUDE) };
    // Attachments copied just now hash as their blob: the "before" snapshot need not read them again.
    const before = await snapshotWorkspace(workspaceDir, { ...snapshotOpts, known: prepared.knownHashes });
    const prepareMs = Date.now() - t0;
    log.debug({ prepareMs, placed: prepared.placed.length }, "workspace prepared");
    if (lease.stillThere && !(await lease.stillThere)) {
      // Deleted on the gateway a moment ago (its websocket had not noticed): no code was sent, take another.
      log.info("the message's kernel is gone from the gateway; taking another");
      const gone = lease;
      lease = null;
      await deps.broker.release(req, gone, { discard: true }).catch(() => undefined);
      lease = await acquireReadyKernel(deps, { ...req, signal }, layout.kernelDir(workspaceDir), log);
    }
    const held: KernelLease = lease;

    const realDir = realpath(workspaceDir);
    realDir.catch(() => undefined);
    await cancelMarkChecked;
    if (signal.aborted) return await finish(deps, pub, exec.id, "cancelled", { result: emptyResult(notes) });
    if (!(await markExecutionRunning(deps.db, exec.id, held.session.id))) return "skipped";
    const resetNote = held.reused ? null : kernelResetNote(deps.db, exec, held.session.id).catch(() => null);
    void pub.publish({ type: "status", status: "running" });
    const realDirs = [...new Set([workspaceDir, await realDir])];
    const back = (s: string) => fromKernelText(s, realDirs);
    const onEvent = (e: KernelEvent) => {
      if (e.type === "stdout" || e.type === "stderr") void pub.publish({ type: e.type, text: back(e.text) });
      else if (e.type === "output" && !e.mimeType.startsWith("image/")) {
        void pub.publish({ type: "output", output: { type: e.mimeType, data: back(e.data) } });
      }
    };
    const tRun = Date.now();
    // Sandboxed kernels see the workspace at the real /mnt/data; a shared server needs the paths translated.
    const code = layout.sandboxed ? exec.code : toKernelCode(exec.code, workspaceDir);
    const watchdog = watchKernel(deps.broker, held);
    const outcome = await held.session
      .execute(code, {
        timeoutMs: exec.timeoutMs,
        signal: AbortSignal.any([signal, watchdog.signal]),
        onEvent,
        maxStreamBytes: env.MAX_STREAM_BYTES,
        maxOutputs: env.MAX_RICH_OUTPUTS,
        interruptGraceMs: env.KERNEL_INTERRUPT_GRACE_MS,
      })
      .finally(() => watchdog.stop());
    if (watchdog.signal.aborted) {
      log.warn("the kernel vanished from the gateway during the run");
      outcome.status = "died";
    }
    const runMs = Date.now() - tRun;
    // A KeyboardInterrupt we did not send: the kernel was shut down under the code (deleted on the server).
    if (outcome.status === "error" && outcome.error?.ename === "KeyboardInterrupt" && !(await deps.broker.kernelExists(held.session.id).catch(() => true))) {
      outcome.status = "died";
    }
    discard = outcome.status === "died" || outcome.kernelRestarted;
    if (layout.sandboxed && !discard && (outcome.status === "timeout" || outcome.status === "cancelled")) {
      // Processes the code started (a fork bomb, a background job) outlive the interrupt: kill(-1) in the
      // kernel's own pid namespace reaches exactly them.
      await held.session
        .execute("import os as _ci_os, signal as _ci_sig\ntry:\n    _ci_os.kill(-1, _ci_sig.SIGKILL)\nexcept ProcessLookupError:\n    pass\ndel _ci_os, _ci_sig", { timeoutMs: 5000 })
        .catch(() => undefined);
    }
    log.info({ outcome: outcome.status, runMs, pooled: held.pooled, reused: held.reused }, "code ran");

    // The code has run: from here a Postgres or Redis blip is waited out in place, because a retried job
    // would find the execution running and could only fail it. Capture and registration are idempotent.
    const reset = await resetNote;
    if (reset) notes.push(reset);
    const record = async () => {
      const tCapture = Date.now();
      const after = await snapshotWorkspace(workspaceDir, { ...snapshotOpts, previous: before });
      const diff = diffSnapshots(before, after, {
        maxFiles: env.MAX_GENERATED_FILES,
        maxFileBytes: env.MAX_GENERATED_FILE_BYTES,
        maxTotalBytes: env.MAX_GENERATED_TOTAL_BYTES,
      });
      const fileCtx = { db: deps.db, blobs: deps.blobs, userId: exec.userId, chatId: exec.chatId, messageId: exec.messageId, executionId: exec.id };
      const captured = await captureFiles(
        {
          ...fileCtx,
          workspaceDir,
          maxFileBytes: env.MAX_GENERATED_FILE_BYTES,
          attachmentByPath: new Map(prepared.placed.map((p) => [p.name, p.fileId])),
        },
        diff,
        async (f) => {
          await pub.publish({ type: "file", file: { id: f.id, name: f.name, path: f.path ?? f.name, size: Number(f.size), mimeType: f.mimeType } });
        },
      );
      const outputs = await storeRichOutputs({ ...fileCtx, workspaceDirs: realDirs }, outcome.outputs);
      for (const o of outputs) if (o.fileId) await pub.publish({ type: "output", output: o });
      const captureMs = Date.now() - tCapture;
      const result = {
        stdout: back(outcome.stdout),
        stderr: back(outcome.stderr),
        outputs,
        error: outcome.error
          ? { ename: outcome.error.ename, evalue: back(outcome.error.evalue), traceback: outcome.error.traceback.map(back) }
          : null,
        truncated: outcome.truncated,
        // Hidden files, caches and configured excludes are policy, not news: only report what a user would
        // have expected back (limits, symlinks, special files).
        skippedFiles: captured.skipped.filter((x) => x.reason !== "excluded"),
        notes,
      };
      const status = STATUS_BY_OUTCOME[outcome.status];
      const failure = outcome.status === "died" ? diedFailure(outcome) : null;
      const metrics = {
        queueWaitMs: startedAt.getTime() - exec.createdAt.getTime(),
        prepareMs,
        kernelAcquireMs: held.acquireMs,
        pooledKernel: held.pooled,
        reusedKernel: held.reused,
        runMs,
        captureMs,
        filesCaptured: captured.files.length,
      };
      return finish(deps, pub, exec.id, status, { result, failure, metrics });
    };
    return await retryTransient(record, log);
  } catch (err) {
    // The kernel's state is unknown after a failure half-way: the next execution gets a fresh one.
    discard = true;
    throw err;
  } finally {
    if (lease) await deps.broker.release(req, lease, { discard }).catch((err: unknown) => log.warn({ err: normalizeError(err) }, "kernel release failed"));
  }
}

function kernelRequest(deps: Pick<RunExecutionDeps, "env" | "layout">, exec: ExecutionRow) {
  return kernelRequestFor(deps.env, deps.layout, exec.userId, exec.messageId);
}

/** The kernel identity of a (user, message): its lock and mapping key, workspace, and sandbox uid. */
export function kernelRequestFor(env: Pick<WorkerEnv, "DATA_DIR">, layout: WorkspaceLayout, userId: string, messageId: string): AcquireRequest {
  const workspaceDir = workspaceDirFor(env.DATA_DIR, userId, messageId);
  return {
    messageKey: workspaceId(userId, messageId),
    workspaceDir,
    kernelPath: layout.kernelPath(workspaceDir),
    uid: layout.uidFor(userId, messageId),
  };
}

/**
 * A kernel that can run the message's code: its own (variables kept), or a new one set to start every cell
 * in the workspace. A kernel that turns out dead before any user code ran (deleted, server restarted) is
 * replaced once, so the execution does not fail for it.
 */
async function acquireReadyKernel(deps: RunExecutionDeps, req: AcquireRequest, kernelDir: string, log: Logger): Promise<KernelLease> {
  for (let attempt = 1; ; attempt++) {
    let lease: KernelLease;
    try {
      // A lock taken before the job started serves the first try only: a failed try releases it.
      lease = await deps.broker.acquire(attempt === 1 ? req : { ...req, heldLock: undefined });
    } catch (err) {
      // A new kernel that died while starting (e.g. a port taken by another process) gets one more try.
      if (attempt >= 2 || !(err instanceof KernelDiedError) || req.signal?.aborted) throw err;
      log.warn({ err: normalizeError(err).message }, "kernel died while starting; taking another");
      continue;
    }
    try {
      if (lease.reused) {
        if (!lease.session.isDead) return lease;
        throw new KernelSetupError("the message's kernel is dead");
      }
      // Once per kernel and message: a pre_run_cell hook, so the warm path pays no extra round trip.
      const cd = await lease.session.execute(enterWorkspaceCode(kernelDir), { timeoutMs: 15_000 });
      if (cd.status !== "ok") throw new KernelSetupError(`could not enter the workspace (${cd.status})`);
      await deps.broker.bind(req, lease);
      return lease;
    } catch (err) {
      await deps.broker.release(req, lease, { discard: true }).catch(() => undefined);
      if (attempt >= 2) throw err;
      log.warn({ err: normalizeError(err).message }, "kernel unusable before the code ran; taking another");
    }
  }
}

/**
 * While code runs, the kernel is looked up on the gateway every 2 s: one deleted, or lost in a server
 * restart, never answers, and the run would otherwise wait for its whole timeout. (The websocket is no
 * guide: jupyter_server may keep it open after the kernel is gone.)
 */
function watchKernel(broker: KernelBroker, lease: KernelLease): { signal: AbortSignal; stop(): void } {
  const ctl = new AbortController();
  const timer = setInterval(() => {
    broker.kernelExists(lease.session.id).then(
      (exists) => {
        if (!exists) ctl.abort();
      },
      () => undefined,
    );
  }, 2000);
  timer.unref();
  return { signal: ctl.signal, stop: () => clearInterval(timer) };
}

function enterWorkspaceCode(dir: string): string {
  const d = JSON.stringify(dir);
  return [
    "def _ci_enter_workspace(*_args, _d=" + d + "):",
    "    import os",
    "    if os.getcwd() != _d:",
    "        os.chdir(_d)",
    "_ci_enter_workspace()",
    "get_ipython().events.register('pre_run_cell', _ci_enter_workspace)",
    "del _ci_enter_workspace",
  ].join("\n");
}

function emptyResult(notes: string[]) {
  return { stdout: "", stderr: "", outputs: [], error: null, notes };
}

async function finish(
  deps: Pick<RunExecutionDeps, "db">,
  pub: EventPublisher,
  id: string,
  status: Terminal,
  data: Parameters<typeof finishExecution>[3],
): Promise<Terminal | "skipped"> {
  const moved = await finishExecution(deps.db, id, status, data);
  // Whoever moved it last (a cancel, say) already announced the end.
  if (!moved) return "skipped";
  await pub.end(status);
  return status;
}

async function retryTransient<T>(fn: () => Promise<T>, log: Logger): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 6 || !isTransient(err)) throw err;
      const delay = Math.min(500 * 2 ** (attempt - 1), 8000);
      log.warn({ err: normalizeError(err).message, attempt, delay }, "recording the outcome failed; retrying");
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Worth another attempt: a gateway, Redis or Postgres that is away for a while. */
function isTransient(err: unknown): boolean {
  const e = err as { name?: string; message?: string; code?: string } | undefined;
  if (e?.name === "GatewayUnavailableError" || e?.name === "LockTimeoutError") return true;
  if (typeof e?.code === "string" && /^(P1001|P1002|P1017|P2024|57P0[123]|08)/.test(e.code)) return true;
  return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection is closed|max retries per request|terminating connection|database system is|Can't reach database|connection terminated/i.test(
    String(e?.message),
  );
}

function failureCode(err: unknown): string {
  switch ((err as Error)?.name) {
    case "GatewayUnavailableError":
      return "gateway_unavailable";
    case "KernelDiedError":
    case "KernelSetupError":
      return "kernel_died";
    case "JupyterStartError":
      return "kernel_start_failed";
    default:
      return "internal_error";
  }
}
