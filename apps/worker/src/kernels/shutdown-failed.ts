import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";

/**
 * The `.catch` of a kernel shutdown the caller goes on past. A kernel already gone is no error (a 404 ends
 * the shutdown quietly), so a failure here means the kernel may still be running on the gateway, holding
 * memory: the operator is told which one. Only the id and the error's message are logged, never code.
 */
export function warnShutdownFailed(log: Logger, kernelId: string): (err: unknown) => void {
  return (err) =>
    log.warn({ kernelId, err: normalizeError(err).message }, "kernel shutdown failed; it may still be running");
}
