import { Queue } from "bullmq";
import type { Logger } from "@codeinterp/logger";
import type { Redis } from "@codeinterp/queue";
import {
  cellQueueName,
  cellRecoveryLockKey,
  enqueueJob,
  forgetCell,
  knownCells,
  parseJobPayload,
  queueNames,
  readCellBeats,
} from "@codeinterp/queue";
import { tryLock } from "../kernels/lock";

const LOCK_TTL_MS = 30_000;

export interface HandOnOptions {
  connection: Redis;
  prefix: string;
  log: Logger;
  /** Only this cell (a draining cell hands on its own queue as it closes). */
  only?: string;
}

/**
 * The queues of cells that are gone (no heartbeat) go to the shared queue, job by job (the job id is the
 * execution's, so a job moved twice is one job), and the cell is forgotten once nothing is left. A job its
 * cell was running moves only once its lock lapsed (a frozen or partitioned cell may still be running it);
 * the cell that takes it then finds the execution `running`, and ends it `failed` (`worker_lost`): the code
 * may have had effects and is not run a second time (apps/worker/src/jobs/run-execution.ts). One cell at a
 * time does this; returns how many jobs moved.
 */
export async function handOnGoneCells(opts: HandOnOptions): Promise<number> {
  const { connection, prefix, log } = opts;
  const lock = await tryLock(connection, cellRecoveryLockKey(prefix), LOCK_TTL_MS);
  if (!lock) return 0;
  let moved = 0;
  try {
    const alive = new Set((await readCellBeats(connection, prefix)).map((b) => b.cellId));
    const cells = opts.only ? [opts.only] : await knownCells(connection, prefix);
    for (const cellId of cells.filter((c) => !alive.has(c))) {
      const n = await handOnQueue(connection, prefix, cellId);
      if (n.moved > 0) log.warn({ cellId, jobs: n.moved }, "handed on the queued executions of a cell that is gone");
      moved += n.moved;
    }
  } finally {
    await lock.release();
  }
  return moved;
}

async function handOnQueue(connection: Redis, prefix: string, cellId: string): Promise<{ moved: number }> {
  const queue = new Queue(cellQueueName(cellId), { connection, prefix });
  const shared = new Queue(queueNames.executions, { connection, prefix });
  let moved = 0;
  let left = 0;
  try {
    const jobs = await queue.getJobs(["active", "wait", "prioritized", "delayed", "waiting-children"]);
    for (const job of jobs) {
      if (!job.id) continue;
      if ((await connection.exists(queue.toKey(`${job.id}:lock`))) === 1) {
        left++;
        continue;
      }
      let payload;
      try {
        payload = parseJobPayload("runExecution", job.data);
      } catch {
        // Not a job anyone could run: the reconciler ends its execution (its job is missing).
        await job.remove().catch(() => undefined);
        continue;
      }
      // Added before it is removed: a pass cut short leaves it in both, never in neither.
      await enqueueJob(shared, "runExecution", payload);
      await job.remove().catch(() => left++);
      moved++;
    }
    if (left === 0) {
      // Not obliterated: a cell judged gone that is only slow (its beats late) still serves this queue, and
      // takes up its place again with its next beat. Only finished jobs' history goes.
      await queue.clean(0, 10_000, "completed");
      await queue.clean(0, 10_000, "failed");
      await forgetCell(connection, prefix, cellId);
    }
  } finally {
    await Promise.all([queue.close(), shared.close()]);
  }
  return { moved };
}
