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
