import { setTimeout as sleep } from "node:timers/promises";
import type { KernelMessage } from "@jupyterlab/services";
import { DEFAULT_LIMITS, OutputCollector, toKernelError } from "./collector";
import { GatewayUnavailableError } from "./errors";
import type { KernelSession } from "./session";
import type { ExecuteOptions, ExecutionOutcome, ExecutionStatus, KernelError } from "./types";

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_INTERRUPT_GRACE_MS = 2_000;
const CRASH_SETTLE_MS = 10_000;
/**
 * How long IOPub may stay silent after the reply before we stop waiting for the kernel's `idle`. The kernel
 * sends `idle` right after the reply, but IOPub is a ZMQ publish socket: when a flood of output fills the
 * queue between the kernel and the server, the newest messages are dropped, `idle` among them, and the run
 * would wait for its deadline although the code has ended. Output still draining keeps us waiting.
 */
const IDLE_AFTER_REPLY_MS = 2_000;

type Ending = "done" | "replied" | "rejected" | "deadline" | "abort" | "crashed" | "lost" | "unresponsive";

/** "256 MiB", "2 GiB". */
export function formatBytes(n: number): string {
  return n >= 1024 ** 3 && n % 1024 ** 3 === 0 ? `${n / 1024 ** 3} GiB` : `${Math.round(n / 1024 ** 2)} MiB`;
}

/**
 * Runs one cell. Every way a run can end races here: the reply, our deadline, the caller's abort, the
 * kernel crashing (the server autorestarts it and the future is cancelled), the gateway vanishing, and the
 * gateway going silent (a frozen or wedged server keeps the websocket open and never answers: only the
 * liveness monitor notices).
 */
export async function runExecution(
  session: KernelSession,
  code: string,
  opts: ExecuteOptions,
  calledAt: number,
): Promise<ExecutionOutcome> {
  const conn = session.connection;
  const collector = new OutputCollector(
    {
      maxStreamBytes: opts.maxStreamBytes ?? DEFAULT_LIMITS.maxStreamBytes,
      maxOutputs: opts.maxOutputs ?? DEFAULT_LIMITS.maxOutputs,
      maxOutputBytes: opts.maxOutputBytes ?? DEFAULT_LIMITS.maxOutputBytes,
    },
    opts.onEvent,
  );
  const generationBefore = session.generation;
  const finish = (
    status: ExecutionStatus,
    error: KernelError | null,
    executionCount?: number | null,
    outOfMemory: ExecutionOutcome["outOfMemory"] = null,
  ): ExecutionOutcome => ({
    status,
    ...collector.result(),
    error,
    executionCount: executionCount ?? collector.executionCount,
    kernelRestarted: session.generation !== generationBefore,
    outputEndLost: false,
    outOfMemory,
    durationMs: Date.now() - calledAt,
  });
  if (opts.signal?.aborted) return finish("cancelled", null);
  if (session.gatewayDown().aborted)
    throw new GatewayUnavailableError("the kernel gateway is unresponsive; the code was not sent");

  // stop_on_error: false. With true, ipykernel aborts every request that reaches it shortly after a cell
  // fails, and an interrupted (timed out) cell counts as failed: the message's next execution, sent right
  // away, would come back "aborted" without running. We send one cell per request, so nothing else queues.
  const future = conn.requestExecute(
    { code, silent: false, store_history: true, allow_stdin: false, stop_on_error: false },
    true,
  );
  let reply: KernelMessage.IExecuteReplyMsg["content"] | null = null;
  let onIOPubAfterReply: (() => void) | null = null;
  let onReplied = (): void => {};
  future.onIOPub = (msg) => {
    onIOPubAfterReply?.();
    collector.handle(msg);
  };
  future.onReply = (msg) => {
    reply = msg.content;
    onReplied();
  };
  const settled = future.done.then(
    () => "done" as const,
    () => "rejected" as const,
  );

  const cleanups: Array<() => void> = [];
  const ending = await new Promise<Ending>((resolve) => {
    void settled.then(resolve);
    const remaining = (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS) - (Date.now() - calledAt);
    const timer = setTimeout(() => resolve("deadline"), Math.max(remaining, 0));
    cleanups.push(() => clearTimeout(timer));
    if (opts.signal) {
      const onAbort = () => resolve("abort");
      opts.signal.addEventListener("abort", onAbort, { once: true });
      cleanups.push(() => opts.signal?.removeEventListener("abort", onAbort));
    }
    const onStatus = (_: unknown, status: string) => {
      if (status === "autorestarting" || status === "dead") resolve("crashed");
    };
    conn.statusChanged.connect(onStatus);
    cleanups.push(() => conn.statusChanged.disconnect(onStatus));
    const onConnection = (_: unknown, status: string) => {
      if (status === "disconnected") resolve("lost");
    };
    conn.connectionStatusChanged.connect(onConnection);
    cleanups.push(() => conn.connectionStatusChanged.disconnect(onConnection));
    const down = session.gatewayDown();
    const onDown = () => resolve("unresponsive");
    if (down.aborted) onDown();
    else down.addEventListener("abort", onDown, { once: true });
    cleanups.push(() => down.removeEventListener("abort", onDown));
    onReplied = () => {
      const quiet = setTimeout(() => resolve("replied"), IDLE_AFTER_REPLY_MS);
      onIOPubAfterReply = () => quiet.refresh();
      cleanups.push(() => clearTimeout(quiet));
    };
  });
  cleanups.forEach((c) => c());
  // A reply that comes after the run ended (the interrupt of a deadline makes one) starts no quiet timer.
  onReplied = () => {};
  onIOPubAfterReply = null;

  const fromReply = (): ExecutionOutcome => {
    const r = reply;
    if (r?.status === "ok") return finish("ok", null, r.execution_count);
    const error =
      collector.error ??
      (r?.status === "error"
        ? toKernelError(r as unknown as Record<string, unknown>)
        : { ename: "ExecutionAborted", evalue: "the kernel did not run this cell", traceback: [] });
    return finish("error", error, r?.execution_count ?? null);
  };
  switch (ending) {
    case "done":
      return fromReply();
    case "replied":
      // The code ended (the reply says how) but its `idle` never came: output may have been lost with it.
      future.dispose();
      return { ...fromReply(), outputEndLost: true };
    case "deadline":
    case "abort": {
      collector.emit({ type: "status", state: "interrupting" });
      await stopRun(session, settled, opts.interruptGraceMs ?? DEFAULT_INTERRUPT_GRACE_MS, collector);
      // The KeyboardInterrupt we caused is not the code's error.
      return finish(ending === "deadline" ? "timeout" : "cancelled", null);
    }
    case "rejected":
    case "crashed": {
      if (conn.isDisposed && !session.isDead) throw new Error(`kernel session ${session.id} was disposed during a run`);
      collector.emit({ type: "status", state: "dead" });
      // Read now: the restart under way relaunches the kernel in the same cgroup with the default limit, which
      // would then be reported instead of the limit the kill happened under (a raised one, say).
      const memoryKill = session.newMemoryKill();
      memoryKill.catch(() => undefined); // awaited below, after the settle
      // The server is restarting the kernel; let the reconnect finish so the session is usable (or visibly dead).
      await session.settle(CRASH_SETTLE_MS);
      const oom = await memoryKill;
      if (oom) {
        const limit = oom.limitBytes === null ? "" : ` of ${formatBytes(oom.limitBytes)}`;
        return finish(
          "died",
          {
            ename: "MemoryLimitExceeded",
            evalue: `The code went over the kernel's memory limit${limit} and the kernel was stopped; its state is lost.`,
            traceback: [],
          },
          null,
          oom,
        );
      }
      return finish("died", {
        ename: "KernelDied",
        evalue: "The kernel process died while running this code; its state is lost.",
        traceback: [],
      });
    }
    case "lost":
      future.dispose();
      session.markDead("lost the connection to the gateway during a run");
      throw new GatewayUnavailableError(`lost the connection to kernel ${session.id} during a run`);
    case "unresponsive":
      future.dispose();
      session.markDead("the gateway stopped answering during a run");
      throw new GatewayUnavailableError(`the kernel gateway stopped answering while kernel ${session.id} ran the code`);
  }
}

/** Interrupts; a kernel still busy after the grace period (e.g. it ignores SIGINT) is restarted. */
async function stopRun(
  session: KernelSession,
  settled: Promise<unknown>,
  graceMs: number,
  collector: OutputCollector,
): Promise<void> {
  try {
    await session.interrupt();
  } catch {
    // An unreachable gateway shows up again in the restart below, which marks the session dead.
  }
  const stopped = await Promise.race([settled.then(() => true), sleep(graceMs).then(() => false)]);
  if (stopped) return;
  collector.emit({ type: "status", state: "restarting" });
  try {
    await session.restart();
  } catch {
    // restart() already marked the session dead; the caller sees it through isDead.
  }
}
