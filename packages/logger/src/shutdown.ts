import type { Logger } from "./logger";
import { normalizeError } from "./normalize-error";

/**
 * On SIGTERM or SIGINT: run `close` (drain, then close connections) and exit 0; exit 1 when it fails or
 * has not finished `hardDeadlineMs` after the signal. A second signal does not start a second close.
 */
export function exitOnSignals(
  log: Logger,
  close: () => Promise<void>,
  opts: { hardDeadlineMs: number; message?: string },
): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, opts.message ?? "shutting down");
    const hard = setTimeout(() => {
      log.error("shutdown deadline passed; exiting");
      process.exit(1);
    }, opts.hardDeadlineMs);
    hard.unref();
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: normalizeError(err) }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}
