import type { Log } from "./log";

/** What one look at the gateway found. */
export type ProbeResult = { ok: true; started: string | null } | { ok: false; error: string };

/**
 * One bounded GET of the gateway's status. jupyter_server answers `/api/status` with the time it started
 * (a new value means the server was restarted); gateways without that route answer `/api`.
 */
export async function probeGateway(baseUrl: string, token: string, timeoutMs: number): Promise<ProbeResult> {
  const base = baseUrl.replace(/\/+$/, "");
  const get = (path: string) =>
    fetch(`${base}/${path}`, {
      headers: token ? { authorization: `token ${token}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
    });
  try {
    let res = await get("api/status");
    if (res.status === 404) {
      await res.body?.cancel();
      res = await get("api");
    }
    if (!res.ok) {
      await res.body?.cancel();
      return { ok: false, error: `HTTP ${res.status}` };
    }
    const body = (await res.json().catch(() => null)) as { started?: unknown } | null;
    return { ok: true, started: typeof body?.started === "string" ? body.started : null };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message);
    return { ok: false, error: why };
  }
}

export type LivenessOptions = {
  baseUrl: string;
  token: string;
  log: Log;
  /** How often to look. Default 1 s. */
  intervalMs?: number;
  /** Deadline of one look. Default 2 s. */
  probeTimeoutMs?: number;
  /** Without one good answer for this long, the gateway counts as unresponsive. Default 10 s. */
  unresponsiveMs?: number;
  /** Called when the gateway becomes unresponsive, answers again, or was restarted. */
  onChange?: (health: GatewayHealth) => void;
};

export type GatewayHealth = {
  reachable: boolean;
  /** When the current state (reachable or not) began, ms since the epoch. */
  since: number;
  /** The last failed look's reason while unreachable. */
  lastError: string | null;
  /** Server restarts seen (its start time changed between two good answers). */
  restarts: number;
  lastRestartAt: number | null;
};

export type GatewayMonitor = {
  health(): GatewayHealth;
  /**
   * Aborted when the gateway is declared unresponsive (and already aborted while it is): gateway waits race
   * it, so they end within seconds of a wedge instead of at their own long deadlines.
   */
  readonly signal: AbortSignal;
  /**
   * Resolves true at the first good answer to a look that began after this call (so a restart that
   * answer reveals is already counted in health()), false after `ms`.
   */
  whenAnswered(ms: number): Promise<boolean>;
  stop(): void;
};

export const defaultLiveness = { intervalMs: 1_000, probeTimeoutMs: 2_000, unresponsiveMs: 10_000 } as const;

/**
 * Polls the gateway and keeps what it last saw: reachable or not, since when, and how often it restarted.
 * One failed look is not an outage (a server busy starting many kernels may miss a deadline): only
 * `unresponsiveMs` without a good answer is.
 */
export function watchGateway(opts: LivenessOptions): GatewayMonitor {
  const intervalMs = opts.intervalMs ?? defaultLiveness.intervalMs;
  const probeTimeoutMs = opts.probeTimeoutMs ?? defaultLiveness.probeTimeoutMs;
  const unresponsiveMs = opts.unresponsiveMs ?? defaultLiveness.unresponsiveMs;
  const state: GatewayHealth = {
    reachable: true,
    since: Date.now(),
    lastError: null,
    restarts: 0,
    lastRestartAt: null,
  };
  let lastOk = Date.now();
  let started: string | null = null;
  let ctl = new AbortController();
  let waiters: Array<{ after: number; done: (up: boolean) => void }> = [];
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const look = async () => {
    const began = Date.now();
    const r = await probeGateway(opts.baseUrl, opts.token, probeTimeoutMs);
    if (stopped) return;
    const now = Date.now();
    let changed = false;
    if (r.ok) {
      lastOk = now;
      if (started !== null && r.started !== null && r.started !== started) {
        state.restarts++;
        state.lastRestartAt = now;
        opts.log.warn(
          { gateway: opts.baseUrl, restarts: state.restarts },
          "kernel gateway was restarted: its kernels are gone",
        );
        changed = true;
      }
      if (r.started !== null) started = r.started;
      if (!state.reachable) {
        opts.log.info({ gateway: opts.baseUrl, downMs: now - state.since }, "kernel gateway answers again");
        Object.assign(state, { reachable: true, since: now, lastError: null });
        ctl = new AbortController();
        changed = true;
      }
      const answered = waiters.filter((w) => w.after <= began);
      waiters = waiters.filter((w) => w.after > began);
      for (const w of answered) w.done(true);
      if (changed) opts.onChange?.({ ...state });
      return;
    }
    if (state.reachable) state.lastError = r.error;
    if (state.reachable && now - lastOk >= unresponsiveMs) {
      Object.assign(state, { reachable: false, since: lastOk, lastError: r.error });
      opts.log.error({ gateway: opts.baseUrl, silentMs: now - lastOk, err: r.error }, "kernel gateway is unresponsive");
      ctl.abort(new Error(`kernel gateway unresponsive for ${now - lastOk} ms (${r.error})`));
      opts.onChange?.({ ...state });
    } else if (!state.reachable) {
      state.lastError = r.error;
    }
  };
  const loop = async () => {
    if (stopped) return;
    // A failed look is itself the probe's answer (look records it); the loop goes on.
    await look().catch(() => undefined);
    if (!stopped) timer = setTimeout(() => void loop(), intervalMs);
    timer?.unref();
  };
  void loop();

  return {
    health: () => ({ ...state }),
    get signal() {
      return ctl.signal;
    },
    whenAnswered(ms) {
      return new Promise((resolve) => {
        const waiter = {
          after: Date.now(),
          done: (up: boolean) => {
            clearTimeout(t);
            resolve(up);
          },
        };
        const t = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          resolve(false);
        }, ms);
        waiters.push(waiter);
      });
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      for (const w of waiters) w.done(false);
      waiters = [];
    },
  };
}
