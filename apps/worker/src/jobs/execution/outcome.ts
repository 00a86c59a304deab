import pRetry from "p-retry";
import type { Db } from "@codeinterp/db";
import { isOutage } from "@codeinterp/db";
import { GatewayUnavailableError, JupyterStartError, KernelDiedError } from "@codeinterp/kernel";
import type { ExecutionOutcome } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import { finishAndAnnounce } from "@codeinterp/queue";
import type { FinishData, Redis, TerminalStatus } from "@codeinterp/queue";
import { BlobStoreUnavailableError } from "@codeinterp/workspace";
import type { WorkerEnv } from "../../env";
import { LockTimeoutError } from "../../kernels/lock";
import { KernelSetupError } from "./acquire-kernel";
import { diedFailure } from "./kernel-outcome";
import { MemoryRequestTooSmallError } from "./memory-limit";

export type Terminal = TerminalStatus;

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
  if (err instanceof GatewayUnavailableError) return "gateway_unavailable";
  if (err instanceof KernelDiedError || err instanceof KernelSetupError) return "kernel_died";
  if (err instanceof JupyterStartError) return "kernel_start_failed";
  if (err instanceof MemoryRequestTooSmallError) return "memory_limit";
  if (err instanceof BlobStoreUnavailableError) return "blob_store_unavailable";
  return "internal_error";
}

/** Worth another attempt: a gateway, Redis, Postgres or object storage that is away for a while. */
export function isTransient(err: unknown): boolean {
  if (err instanceof GatewayUnavailableError || err instanceof LockTimeoutError) return true;
  if (err instanceof BlobStoreUnavailableError) return true;
  return isOutage(err);
}

export async function retryTransient<T>(fn: () => Promise<T>, log: Logger): Promise<T> {
  // Six attempts 0.5, 1, 2, 4 and 8 s apart: about 15 s for a Postgres or Redis restart to finish.
  return pRetry(fn, {
    retries: 5,
    factor: 2,
    minTimeout: 500,
    maxTimeout: 8000,
    randomize: false,
    shouldRetry: ({ error }) => isTransient(error),
    onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft > 0 && isTransient(error)) {
        log.warn(
          { err: normalizeError(error).message, attempt: attemptNumber },
          "recording the outcome failed; retrying",
        );
      }
    },
  });
}

export function emptyResult(notes: string[]) {
  return { stdout: "", stderr: "", outputs: [], error: null, notes };
}

/** Ends the execution and announces it; "skipped" when it had already ended (a cancel, say). */
export async function finish(
  deps: { db: Db; redis: Redis; env: Pick<WorkerEnv, "QUEUE_PREFIX"> },
  id: string,
  status: Terminal,
  data: FinishData,
): Promise<Terminal | "skipped"> {
  const moved = await finishAndAnnounce(
    { db: deps.db, redis: deps.redis, prefix: deps.env.QUEUE_PREFIX },
    id,
    status,
    data,
  );
  return moved ? status : "skipped";
}
