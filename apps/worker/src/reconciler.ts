import type { Db } from "@codeinterp/db";
import { listStaleActiveExecutions } from "@codeinterp/db";
import type { Logger } from "@codeinterp/logger";
import { normalizeError } from "@codeinterp/logger";
import type { ExecutionRouter, Redis } from "@codeinterp/queue";
import { finishAndAnnounce, reconcilerLockKey } from "@codeinterp/queue";
import { tryLock } from "./kernels/lock";

/** One worker reconciles at a time; the lock is renewed while its pass runs and lapses if the worker dies. */
const RECONCILER_LOCK_TTL_MS = 30_000;

export interface ReconcilerOptions {
  db: Db;
  redis: Redis;
  /** Where executions' jobs are, in the shared queue or a cell's (packages/queue/src/cells.ts). */
  executions: Pick<ExecutionRouter, "findJob" | "enqueue">;
  prefix: string;
  log: Logger;
  /** A queued execution this old without a job gets one. */
  orphanAfterMs?: number;
  /** Called for an execution failed as lost, e.g. to shut down the kernel it may still occupy. */
  onLost?: (e: { id: string; userId: string; messageId: string; kernelId: string | null }) => Promise<void>;
}

/**
 * Makes Postgres and Redis agree again after faults: an execution accepted while Redis was away gets its
 * job; one whose job vanished or died for good (a worker killed twice, Redis restarted without
 * persistence) ends as `failed` instead of staying `running` forever. One worker at a time does this.
 */
export async function reconcileOnce(opts: ReconcilerOptions): Promise<{ enqueued: number; failed: number }> {
  // The same tokened lock as a message's turn: a pass that outlives the TTL cannot release another worker's.
  const lock = await tryLock(opts.redis, reconcilerLockKey(opts.prefix), RECONCILER_LOCK_TTL_MS);
  if (!lock) return { enqueued: 0, failed: 0 };
  let enqueued = 0;
  let failed = 0;
  try {
    const cutoff = new Date(Date.now() - (opts.orphanAfterMs ?? 5000));
    const candidates = await listStaleActiveExecutions(opts.db, cutoff, 500);
    for (const e of candidates) {
      const job = await opts.executions.findJob(e.id);
      const state = job ? await job.getState() : "missing";
      if (
        state === "waiting" ||
        state === "active" ||
        state === "delayed" ||
        state === "prioritized" ||
        state === "waiting-children"
      )
        continue;
      if (e.status === "queued" && state === "missing") {
        await opts.executions.enqueue(e);
        enqueued++;
        continue;
      }
      // The job is gone, failed for good, or finished without ending the execution.
      const moved = await finishAndAnnounce(opts, e.id, "failed", {
        failure: {
          code: "worker_lost",
          message: `the job running this execution was lost (${state}); submit it again`,
        },
      });
      if (moved) {
        failed++;
        // Watchers learn the end first; the lost kernel's cleanup may wait for nothing (see onLost).
        // Eviction of a lost execution's kernel is best effort: the idle sweep retires it otherwise.
        await opts.onLost?.(e).catch(() => undefined);
      }
    }
  } finally {
    await lock.release();
  }
  if (enqueued || failed) opts.log.info({ enqueued, failed }, "reconciled executions");
  return { enqueued, failed };
}

export function startReconciler(opts: ReconcilerOptions & { intervalMs: number }): () => void {
  const timer = setInterval(() => {
    reconcileOnce(opts).catch((err: unknown) => opts.log.warn({ err: normalizeError(err) }, "reconcile failed"));
  }, opts.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
