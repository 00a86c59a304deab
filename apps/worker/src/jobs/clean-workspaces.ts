import { Queue, Worker } from "bullmq";
import { STALE_TEMP_MS } from "@codeinterp/files";
import type { Logger } from "@codeinterp/logger";
import { jobCatalog, messageLockKey, parseJobPayload, queueNames } from "@codeinterp/queue";
import type { JobPayload, Redis } from "@codeinterp/queue";
import { removeIdleWorkspaces, startStaleBudgetSweep } from "@codeinterp/workspace";
import type { BlobStore } from "@codeinterp/workspace";
import { tryLock } from "../kernels/lock";

export interface RetentionOptions {
  blobs: BlobStore;
  connection: Redis;
  prefix: string;
  /** Where the schedule and its queue live (default `prefix`): a cell's own, as each cell sweeps its own DATA_DIR. */
  schedulePrefix?: string;
  dataDir: string;
  retentionMs: number;
  everyMs: number;
  /** Workspaces are btrfs subvolumes with a qgroup each: the qgroups of removed ones are destroyed here. */
  budgeted?: boolean;
  log: Logger;
}

/**
 * Workspaces idle longer than the retention age are removed by a repeatable BullMQ job (one schedule for
 * the whole deployment, whichever worker picks it up). Stored files stay until deleted through the API; the
 * blob store's temp files left by a process that died mid-write (a day old) go too.
 */
export async function startWorkspaceRetention(opts: RetentionOptions): Promise<{ close(): Promise<void> }> {
  const job = jobCatalog.cleanWorkspaces;
  const schedulePrefix = opts.schedulePrefix ?? opts.prefix;
  const queue = new Queue(queueNames.maintenance, { connection: opts.connection, prefix: schedulePrefix });
  await queue.upsertJobScheduler(
    "workspace-retention",
    { every: opts.everyMs },
    { name: job.name, data: {} satisfies JobPayload<"cleanWorkspaces">, opts: job.options },
  );
  const budgets = opts.budgeted ? startStaleBudgetSweep(opts.dataDir) : null;
  const worker = new Worker(
    queueNames.maintenance,
    async (j) => {
      if (j.name !== job.name) return;
      parseJobPayload("cleanWorkspaces", j.data);
      // A workspace is removed only under its message's kernel lock (its id is the message key), so never
      // under an execution that is preparing or running in it.
      const removed = await removeIdleWorkspaces(opts.dataDir, opts.retentionMs, Date.now(), async (id, remove) => {
        const lock = await tryLock(opts.connection, messageLockKey(opts.prefix, id), 30_000);
        if (!lock) return false;
        try {
          return await remove();
        } finally {
          await lock.release();
        }
      });
      if (removed.length) opts.log.info({ removed: removed.length }, "removed idle workspaces");
      // The kernel drops a deleted subvolume in the background; its qgroup goes on a later pass.
      if (budgets)
        await budgets
          .sweep()
          .catch((err: Error) => opts.log.warn({ err: err.message }, "could not clear stale qgroups"));
      const temp = await opts.blobs.removeStaleTemp(STALE_TEMP_MS);
      if (temp) opts.log.info({ removed: temp }, "removed stale temp files from the blob store");
      return { removed: removed.length, staleTemp: temp };
    },
    { connection: opts.connection, prefix: schedulePrefix, concurrency: 1 },
  );
  worker.on("error", (err) => opts.log.warn({ err: err.message }, "maintenance worker connection error"));
  return {
    async close() {
      await worker.close();
      await queue.close();
    },
  };
}
