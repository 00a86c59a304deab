import { KernelDiedError } from "./errors";
import type { KernelSession } from "./session";
import type { ExecuteOptions, ExecutionOutcome } from "./types";

export interface PresenceWatch {
  /** Aborts once a lookup says the kernel is gone. */
  readonly signal: AbortSignal;
  stop(): void;
}

/**
 * While a cell runs, its kernel is looked up on the server every `intervalMs`. A kernel deleted, or lost
 * with a server restart, never answers, and its websocket is no guide: jupyter_server may keep it open after
 * the kernel is gone, and after a restart it reconnects to nothing for minutes, so the run would wait out its
 * whole deadline. A lookup that fails (the server away) says nothing and is tried again a tick later; the
 * next starts only when the last has answered.
 */
export function watchPresence(
  exists: () => Promise<boolean>,
  opts: { intervalMs?: number; onLookupError?: (err: unknown) => void } = {},
): PresenceWatch {
  const ctl = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const tick = () => {
    exists().then(
      (present) => {
        // A lookup that answers after stop() changes nothing: the caller has read the signal by then.
        if (stopped) return;
        if (!present) ctl.abort();
        else schedule();
      },
      (err: unknown) => {
        opts.onLookupError?.(err);
        schedule();
      },
    );
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(tick, opts.intervalMs ?? 2000);
    timer.unref();
  };
  schedule();
  return {
    signal: ctl.signal,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

export interface WatchedRunOptions extends ExecuteOptions {
  /** Looks the kernel up on its server. */
  exists: () => Promise<boolean>;
  onLookupError?: (err: unknown) => void;
}

/** A cell's run, and whether a lookup found its kernel gone meanwhile (the run then ended as a cancel does). */
export interface WatchedRun {
  outcome: ExecutionOutcome;
  vanished: boolean;
}

/**
 * Runs a cell while watchPresence looks its kernel up, so a kernel that is gone ends the run in seconds,
 * not at its deadline. A run that throws after the kernel was found gone throws KernelDiedError.
 */
export async function executeWatched(
  session: KernelSession,
  code: string,
  opts: WatchedRunOptions,
): Promise<WatchedRun> {
  const { exists, onLookupError, ...execute } = opts;
  const presence = watchPresence(exists, { onLookupError });
  const signal = execute.signal ? AbortSignal.any([execute.signal, presence.signal]) : presence.signal;
  try {
    const outcome = await session.execute(code, { ...execute, signal });
    return { outcome, vanished: presence.signal.aborted };
  } catch (err) {
    if (presence.signal.aborted) throw new KernelDiedError(`kernel ${session.id} vanished from the server`);
    throw err;
  } finally {
    presence.stop();
  }
}
