import type { Db } from "@codeinterp/db";
import { getExecutionForWorker } from "@codeinterp/db";
import type { GatewayMonitor } from "@codeinterp/kernel";
import { GatewayUnavailableError, watchGateway } from "@codeinterp/kernel";
import type { Logger } from "@codeinterp/logger";
import type { GatewaySeen } from "@codeinterp/queue";
import type { WorkerEnv } from "./env";

/** The gateway as this worker sees it: the liveness monitor, and what a gateway failure costs an execution. */
export interface GatewayWatch {
  monitor: Pick<GatewayMonitor, "health" | "whenAnswered" | "signal">;
  sandboxed: boolean;
  /** Sandboxed kernels reach listed destinations through the gateway's egress proxy. */
  egress?: boolean;
  /** Each workspace's disk budget in MB, or null when workspaces have none (DATA_DIR not on btrfs with quotas). */
  diskBudgetMb?: number | null;
  /** GATEWAY_RETRY_BUDGET_MS: how long an execution that has not reached a kernel keeps being retried. */
  retryBudgetMs: number;
}

/** Longest a failed attempt waits in place for the gateway to answer again. */
const WAIT_FOR_GATEWAY_MS = 15_000;

export function startGatewayWatch(
  env: Pick<
    WorkerEnv,
    | "JUPYTER_URL"
    | "JUPYTER_TOKEN"
    | "GATEWAY_PROBE_INTERVAL_MS"
    | "GATEWAY_UNRESPONSIVE_MS"
    | "GATEWAY_RETRY_BUDGET_MS"
  >,
  log: Logger,
  opts: { onChange?: () => void } = {},
): GatewayMonitor & { retryBudgetMs: number } {
  const monitor = watchGateway({
    baseUrl: env.JUPYTER_URL!,
    token: env.JUPYTER_TOKEN,
    log,
    intervalMs: env.GATEWAY_PROBE_INTERVAL_MS,
    unresponsiveMs: env.GATEWAY_UNRESPONSIVE_MS,
    ...(opts.onChange ? { onChange: opts.onChange } : {}),
  });
  return Object.assign(monitor, { retryBudgetMs: env.GATEWAY_RETRY_BUDGET_MS });
}

/** What a heartbeat carries about the gateway. */
export function gatewaySeen(watch: GatewayWatch): GatewaySeen {
  return {
    ...watch.monitor.health(),
    sandboxed: watch.sandboxed,
    ...(watch.egress ? { egress: true } : {}),
    ...(watch.diskBudgetMb !== undefined ? { diskBudgetMb: watch.diskBudgetMb } : {}),
  };
}

export type GatewayVerdict =
  { retry: true } | { retry: false; failure: { code: "gateway_unavailable" | "gateway_restarted"; message: string } };

/**
 * An attempt failed because the gateway did not answer. Code that reached a kernel (the row says
 * `running`) is never run twice: the execution fails, with `gateway_restarted` when the gateway came
 * back as a new server (the kernel and its variables are gone) and `gateway_unavailable` otherwise. Code
 * that did not reach one is retried, after waiting (bounded) for the gateway to answer, until
 * GATEWAY_RETRY_BUDGET_MS has passed since its first attempt.
 */
export async function judgeGatewayFailure(
  watch: GatewayWatch,
  db: Db,
  executionId: string,
  at: { startedAt: Date; finalAttempt: boolean; restartsBefore: number },
): Promise<GatewayVerdict> {
  const left = () => watch.retryBudgetMs - (Date.now() - at.startedAt.getTime());
  const row = await getExecutionForWorker(db, executionId);
  if (row?.status === "running") {
    // A restarted server answers within seconds (and its new start time shows it was restarted); a remote
    // gateway that is away gets the same short wait.
    await watch.monitor.whenAnswered(Math.max(0, Math.min(WAIT_FOR_GATEWAY_MS, left())));
    const health = watch.monitor.health();
    if (health.restarts > at.restartsBefore) {
      return {
        retry: false,
        failure: {
          code: "gateway_restarted",
          message:
            "the kernel gateway stopped answering while this code ran and was restarted: the kernel and its variables are gone; submit it again",
        },
      };
    }
    return {
      retry: false,
      failure: {
        code: "gateway_unavailable",
        message:
          "the kernel gateway stopped answering while this code ran; the kernel's state is unknown; submit it again",
      },
    };
  }
  if (!at.finalAttempt && left() > 0) {
    const back = await watch.monitor.whenAnswered(Math.min(WAIT_FOR_GATEWAY_MS, left()));
    if (back || left() > 0) return { retry: true };
  }
  const triedS = Math.round((Date.now() - at.startedAt.getTime()) / 1000);
  return {
    retry: false,
    failure: {
      code: "gateway_unavailable",
      message: `the kernel gateway did not answer (retried for ${triedS} s); the code did not run`,
    },
  };
}

export const isGatewayFailure = (err: unknown): err is GatewayUnavailableError =>
  err instanceof GatewayUnavailableError;
