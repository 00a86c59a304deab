import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createExecution, findExecution, findExecutionWithFiles, isTerminal } from "@codeinterp/db";
import type { ExecutionRow, ExecutionWithFiles } from "@codeinterp/db";
import { normalizeError } from "@codeinterp/logger";
import { finishAndAnnounce, parseExecutionRecord, requestCancel } from "@codeinterp/queue";
import type { ExecutionEvent, ExecutionRecord } from "@codeinterp/queue";
import type { ApiDeps } from "../deps";

/**
 * The one way every surface (/v1, LibreChat, Jupyter, MCP) runs code: submit an execution, wait for its end,
 * read its stored result, cancel it. The surfaces only translate their protocol to and from these.
 */

export type ServiceDeps = Pick<ApiDeps, "db" | "events" | "log" | "executions" | "redis" | "queuePrefix">;

export type SubmitInput = Parameters<typeof createExecution>[1];

export interface SubmitOptions {
  /** Log fields of the surface (a session, a kernel id) next to the execution's own. */
  logFields?: Record<string, unknown>;
  /** Logged when the execution is accepted. */
  logMessage?: string;
  /** Runs after the record exists and before its job does: subscribe here to miss no event. */
  beforeEnqueue?: (execution: ExecutionRow) => Promise<void>;
}

/** Code no execution can hold: Python refuses source with NUL characters, and Postgres text cannot store them. */
export class InvalidCodeError extends Error {
  override name = "InvalidCodeError";
}

/**
 * Records the execution and queues its run; a replayed idempotent request queues nothing. Throws
 * InvalidCodeError for code with a NUL character, before anything is recorded.
 */
export async function submitExecution(deps: ServiceDeps, input: SubmitInput, opts: SubmitOptions = {}) {
  if (input.code.includes("\0"))
    throw new InvalidCodeError("code must not contain NUL characters (Python source cannot hold them)");
  // Where its job goes is asked while the record is written (both are a round trip); awaited at the enqueue.
  const placed = deps.executions.place(input.userId, input.messageId);
  placed.catch(() => undefined);
  const { execution, created } = await createExecution(deps.db, input);
  if (!created) return { execution, created };
  const log = deps.log.child({
    executionId: execution.id,
    messageId: execution.messageId,
    chatId: execution.chatId,
    ...opts.logFields,
  });
  await opts.beforeEnqueue?.(execution);
  try {
    await deps.executions.enqueue(execution, placed);
  } catch (err) {
    // The execution is durable in Postgres; the worker's reconciler enqueues queued executions that
    // have no job, so an accepted execution is never lost while Redis is away.
    log.warn({ err: normalizeError(err) }, "enqueue failed; left for the reconciler");
  }
  log.info(opts.logMessage ?? "execution accepted");
  return { execution, created };
}

export interface WaitOptions {
  /** Longest the wait holds; then the execution is returned as it is. */
  ms: number;
  /** Aborting ends the wait early (the client went away). */
  signal?: AbortSignal | undefined;
  /**
   * Re-reads the status this often, in case a `done` event was lost with a Redis blip. Unset: the wait
   * costs two reads (now and at the end), whatever the code prints in between.
   */
  recheckMs?: number | undefined;
  /**
   * The watch was opened before the execution's job was queued (see submitAndWait), so every event reaches
   * it: the wait needs no first read, only the one at its end.
   */
  subscribedBeforeQueued?: boolean | undefined;
}

/** A live subscription to one execution's events, opened before its job exists or before the first read. */
export interface ExecutionWatch {
  /** Holds until the execution is terminal, `ms` passes or `signal` aborts; then reads it. */
  end(opts: WaitOptions): Promise<ExecutionWithFiles | null>;
  close(): Promise<void>;
}

export async function watchExecution(
  deps: Pick<ServiceDeps, "db" | "events">,
  userId: string,
  id: string,
  onEvent?: (e: ExecutionEvent) => void,
): Promise<ExecutionWatch> {
  let wake: () => void = () => undefined;
  let done = false;
  // The ended execution `done` carried (a small one, this user's): the end needs no read.
  let ended: ExecutionWithFiles | null = null;
  const unsubscribe = await deps.events.subscribe(id, (e) => {
    if (e.type === "done") {
      done = true;
      ended = carriedExecution(e, userId, id);
      wake();
    } else onEvent?.(e);
  });
  return {
    async end({ ms, signal, recheckMs, subscribedBeforeQueued }) {
      if (!subscribedBeforeQueued || ms <= 0) {
        const first = await findExecutionWithFiles(deps.db, userId, id);
        if (!first || isTerminal(first.status) || ms <= 0) return first;
      }
      if (!done && !signal?.aborted) {
        const woken = new Promise<void>((resolve) => (wake = resolve));
        // Infinity: held until the end or the signal (a Jupyter client waits as long as the code runs).
        const timer = Number.isFinite(ms) ? setTimeout(wake, ms) : undefined;
        signal?.addEventListener("abort", wake, { once: true });
        const recheck = recheckMs
          ? setInterval(() => {
              findExecution(deps.db, userId, id)
                .then((row) => {
                  if (!row || isTerminal(row.status)) wake();
                })
                // A failed re-read is retried on the next tick; the timer ends the wait anyway.
                .catch(() => undefined);
            }, recheckMs)
          : undefined;
        try {
          await woken;
        } finally {
          clearTimeout(timer);
          clearInterval(recheck);
          signal?.removeEventListener("abort", wake);
        }
      }
      return ended ?? findExecutionWithFiles(deps.db, userId, id);
    },
    close: unsubscribe,
  };
}

/**
 * The ended execution a `done` event carried, when it is this user's execution and ended: an answer that needs
 * no read. Null otherwise (none carried, or not one to show this user): read it.
 */
function carriedExecution(e: ExecutionEvent, userId: string, id: string): ExecutionWithFiles | null {
  if (e.type !== "done" || !e.execution) return null;
  const x = e.execution;
  return x.id === id && x.userId === userId && isTerminal(x.status) ? x : null;
}

/** Holds until the execution is terminal or `ms` passes, woken by the worker's `done` event. */
export async function waitForExecution(
  deps: Pick<ServiceDeps, "db" | "events">,
  userId: string,
  id: string,
  opts: WaitOptions,
): Promise<ExecutionWithFiles | null> {
  if (opts.ms <= 0) return findExecutionWithFiles(deps.db, userId, id);
  const watch = await watchExecution(deps, userId, id);
  try {
    return await watch.end(opts);
  } finally {
    // Not awaited: the answer need not wait for the UNSUBSCRIBE round trip (a failed one only costs ignored
    // messages, and a later SUBSCRIBE to the channel is sent after it on the same connection).
    void watch.close();
  }
}

export interface SubmitAndWaitOptions extends SubmitOptions {
  /** Each event but `done`, as it comes (stdout for a live relay, say). */
  onEvent?: (e: ExecutionEvent) => void;
  /** Runs before the wait: throwing refuses the request without waiting (a reused idempotency key, say). */
  beforeWait?: (execution: ExecutionRow, created: boolean) => void;
}

/**
 * Submits an execution and holds until it ends, `wait.ms` passes or `wait.signal` aborts; `final` is the
 * execution as it is then. The watch is opened before the job exists, so no event is missed and the wait
 * costs one read, at its end. A replayed idempotent request waits for the execution it names.
 */
export async function submitAndWait(
  deps: ServiceDeps,
  input: SubmitInput,
  wait: WaitOptions,
  opts: SubmitAndWaitOptions = {},
): Promise<{ execution: ExecutionRow; created: boolean; final: ExecutionWithFiles | null }> {
  // Subscribed while the execution is recorded (its id is chosen here), and before its job exists.
  const id = input.id ?? randomUUID();
  const watching = watchExecution(deps, input.userId, id, opts.onEvent);
  // Observed where it is used; this only keeps a failure before then (Redis away) handled.
  watching.catch(() => undefined);
  let watch: ExecutionWatch | undefined;
  try {
    const { execution, created } = await submitExecution(
      deps,
      { ...input, id },
      {
        ...opts,
        beforeEnqueue: async (e) => {
          watch = await subscribedSoon(watching);
          await opts.beforeEnqueue?.(e);
        },
      },
    );
    opts.beforeWait?.(execution, created);
    let final: ExecutionWithFiles | null;
    if (watch) final = await watch.end({ ...wait, subscribedBeforeQueued: true });
    // No events to wait by (Redis is away): the execution is recorded and queued by the reconciler once Redis
    // is back; the wait reads the record now and then instead.
    else if (created) final = await pollForEnd(deps, input.userId, execution.id, wait);
    else final = await waitForExecution(deps, input.userId, execution.id, wait);
    return { execution, created, final };
  } finally {
    // Not awaited, as in waitForExecution: the answer need not wait for the UNSUBSCRIBE. A replayed request's
    // execution has another id: its watch was never used.
    void watching.then((w) => w.close()).catch(() => undefined);
  }
}

/** How often a wait without events (Redis away) reads the record. */
const POLL_WITHOUT_EVENTS_MS = 1_000;

/** Reads the execution until it is terminal, `ms` passes or `signal` aborts; returns it as last read. */
async function pollForEnd(
  deps: Pick<ServiceDeps, "db">,
  userId: string,
  id: string,
  { ms, signal }: WaitOptions,
): Promise<ExecutionWithFiles | null> {
  const until = Date.now() + ms;
  for (;;) {
    const row = await findExecutionWithFiles(deps.db, userId, id);
    const left = until - Date.now();
    if (!row || isTerminal(row.status) || left <= 0 || signal?.aborted) return row;
    // An abort ends the pause early; the row is then read once more and returned.
    await sleep(Math.min(POLL_WITHOUT_EVENTS_MS, left), undefined, signal ? { signal } : {}).catch(() => undefined);
  }
}

/** How long a submit waits for its event subscription (Redis away: it is queued until Redis is back). */
const SUBSCRIBE_WAIT_MS = 2_000;

/** The watch once subscribed; undefined when Redis does not confirm it soon (the wait then reads the record). */
async function subscribedSoon(watching: Promise<ExecutionWatch>): Promise<ExecutionWatch | undefined> {
  // A plain timer, cleared once the race is decided (an abortable sleep would build an AbortError per submit).
  let timer: NodeJS.Timeout | undefined;
  const soon = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, SUBSCRIBE_WAIT_MS, undefined)));
  try {
    return await Promise.race([watching, soon]);
  } catch {
    // The subscription failed: no watch.
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** The stored result, failure and metrics of an execution, parsed with the one schema the worker writes. */
export function readExecution(row: Pick<ExecutionRow, "result" | "failure" | "metrics">): ExecutionRecord {
  return parseExecutionRecord(row);
}

/** Ends a queued execution at once, or asks the worker running it to interrupt it. */
export async function cancelExecution(
  deps: Pick<ServiceDeps, "db" | "log" | "executions" | "redis" | "queuePrefix">,
  execution: Pick<ExecutionRow, "id" | "messageId">,
): Promise<void> {
  const { id } = execution;
  const log = deps.log.child({ executionId: id, messageId: execution.messageId });
  const moved = await finishAndAnnounce({ db: deps.db, redis: deps.redis, prefix: deps.queuePrefix }, id, "cancelled", {
    onlyFrom: ["queued"],
  });
  if (moved) {
    // An active (locked) job cannot be removed; the worker then finds the execution already terminal.
    await deps.executions.remove(id);
    log.info("queued execution cancelled");
  } else {
    await requestCancel(deps.redis, deps.queuePrefix, id);
    log.info("cancel sent to the worker");
  }
}
