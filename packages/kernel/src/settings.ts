import { setTimeout as sleep } from "node:timers/promises";
import { ServerConnection } from "@jupyterlab/services";
import { GatewayUnavailableError } from "./errors";

/**
 * Server settings whose every HTTP request has a deadline: jupyterlab's default fetch can wait forever.
 * `down()` (the liveness monitor's signal) also ends every request at once while the gateway is declared
 * unresponsive, instead of at the per-request deadline.
 */
export function makeServerSettings(
  baseUrl: string,
  token: string,
  requestTimeoutMs: number,
  down?: () => AbortSignal,
): ServerConnection.ISettings {
  const timedFetch = async (input: Request | string | URL, init?: RequestInit): Promise<Response> => {
    const gatewayDown = down?.();
    const deadline = AbortSignal.timeout(requestTimeoutMs);
    try {
      return await fetch(input, { ...init, signal: gatewayDown ? AbortSignal.any([deadline, gatewayDown]) : deadline });
    } catch (err) {
      if (gatewayDown?.aborted) throw new TypeError("fetch failed (gateway unresponsive)", { cause: err });
      // NetworkError keeps only the message, so put the cause's code (ECONNREFUSED, ...) into it.
      const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
      throw new TypeError(`fetch failed (${code})`, { cause: err });
    }
  };
  const base = baseUrl.replace(/\/+$/, "") + "/";
  return ServerConnection.makeSettings({
    baseUrl: base,
    wsUrl: base.replace(/^http/, "ws"),
    token,
    appendToken: true,
    fetch: timedFetch as ServerConnection.ISettings["fetch"],
  });
}

export function isUnavailable(err: unknown): boolean {
  if (err instanceof ServerConnection.NetworkError) return true;
  if (err instanceof ServerConnection.ResponseError) return [502, 503, 504].includes(err.response.status);
  return err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
}

/** Only a refused connection proves the server never saw the request, so a non-idempotent call may be retried. */
export function isRefused(err: unknown): boolean {
  return err instanceof ServerConnection.NetworkError && err.message.includes("ECONNREFUSED");
}

export async function withGatewayRetry<T>(
  what: string,
  fn: () => Promise<T>,
  opts: { attempts: number; retryable: (err: unknown) => boolean },
): Promise<T> {
  let delay = 200;
  // Hand-written, not p-retry: p-retry never retries a TypeError it does not know as a fetch network error,
  // and @jupyterlab/services' NetworkError (gateway refusing or gone) is a TypeError.
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isUnavailable(err)) throw err;
      if (attempt >= opts.attempts || !opts.retryable(err)) {
        throw new GatewayUnavailableError(`kernel gateway unavailable during ${what}: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 2_000);
    }
  }
}
