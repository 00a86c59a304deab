import { setTimeout as sleep } from "node:timers/promises";
import type { Db } from "@codeinterp/db";
import { finishExecution, isOutage } from "@codeinterp/db";
import { GatewayUnavailableError } from "@codeinterp/kernel";
import type { ExecutionOutcome } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { EventPublisher } from "@codeinterp/queue";
import { LockTimeoutError } from "../../kernels/lock";
import { diedFailure } from "./kernel-outcome";

export type Terminal = "completed" | "failed" | "timed_out" | "cancelled";

export const STATUS_BY_OUTCOME: Record<ExecutionOutcome["status"], Terminal> = {
  ok: "completed",
  error: "completed",
  timeout: "timed_out",
  cancelled: "cancelled",
  died: "failed",
};

/** The failure recorded for code that ran and did not come back normally; null when it did. */
export function outcomeFailure(outcome: ExecutionOutcome): { code: string; message: string } | null {
  return outcome.status === "died" ? diedFailure(outcome) : null;
}

/** The failure code of an execution that could not be run (thrown before or around the kernel). */
export function failureCode(err: unknown): string {
  switch ((err as Error)?.name) {
    case "GatewayUnavailableError":
      return "gateway_unavailable";
    case "KernelDiedError":
    case "KernelSetupError":
      return "kernel_died";
    case "JupyterStartError":
      return "kernel_start_failed";
    case "MemoryRequestTooSmallError":
      return "memory_limit";
    default:
      return "internal_error";
  }
}

/** Worth another attempt: a gateway, Redis or Postgres that is away for a while. */
export function isTransient(err: unknown): boolean {
  if (err instanceof GatewayUnavailableError || err instanceof LockTimeoutError) return true;
  return isOutage(err);
}

export async function retryTransient<T>(fn: () => Promise<T>, log: Logger): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (attempt >= 6 || !isTransient(err)) throw err;
      const delay = Math.min(500 * 2 ** (attempt - 1), 8000);
      log.warn({ err: normalizeError(err).message, attempt, delay }, "recording the outcome failed; retrying");
      await sleep(delay);
    }
  }
}

export function emptyResult(notes: string[]) {
  return { stdout: "", stderr: "", outputs: [], error: null, notes };
}

export async function finish(
  deps: { db: Db },
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
