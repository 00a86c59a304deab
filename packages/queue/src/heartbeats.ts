import { z } from "zod";
import { workerAliveIndex, workerAliveKey } from "./keys";
import { readLiveEntries } from "./live-index";
import type { Redis } from "./redis";

/**
 * Worker heartbeats: each worker says it is alive, and what it last saw of its kernel gateway, every few
 * seconds. Workers read them to find the pool kernels of workers that are gone; the API reads them for
 * /readyz (it holds no gateway URL or token of its own). Keys: workerAliveKey and workerAliveIndex (./keys).
 */

export const gatewaySeenSchema = z.object({
  reachable: z.boolean(),
  /** When the gateway became reachable or unreachable (ms since the epoch). */
  since: z.number(),
  lastError: z.string().nullable(),
  /** Gateway restarts the worker saw (the server's start time changed). */
  restarts: z.number().int().min(0),
  lastRestartAt: z.number().nullable(),
  /** Kernels run in the bubblewrap sandbox. */
  sandboxed: z.boolean(),
  /** Sandboxed kernels reach the destinations the operator listed, through the egress proxy. */
  egress: z.boolean().optional(),
  /** Each workspace's disk budget in MB; null: workspaces have none (DATA_DIR is not on btrfs with quotas). */
  diskBudgetMb: z.number().int().nullable().optional(),
});

export const workerBeatSchema = z.object({
  workerId: z.string(),
  at: z.number(),
  gateway: gatewaySeenSchema.nullable(),
});

export type GatewaySeen = z.infer<typeof gatewaySeenSchema>;
export type WorkerBeat = z.infer<typeof workerBeatSchema>;

export async function writeHeartbeat(redis: Redis, prefix: string, beat: WorkerBeat, ttlMs: number): Promise<void> {
  await redis
    .multi()
    .set(workerAliveKey(prefix, beat.workerId), JSON.stringify(beat), "PX", ttlMs)
    .zadd(workerAliveIndex(prefix), beat.at + ttlMs, beat.workerId)
    .exec();
}

export async function removeHeartbeat(redis: Redis, prefix: string, workerId: string): Promise<void> {
  await redis.multi().del(workerAliveKey(prefix, workerId)).zrem(workerAliveIndex(prefix), workerId).exec();
}

/** The latest beat of every live worker; entries of workers gone without cleaning up are dropped. */
export async function readHeartbeats(redis: Redis, prefix: string): Promise<WorkerBeat[]> {
  const out: WorkerBeat[] = [];
  for (const raw of await readLiveEntries(redis, workerAliveIndex(prefix), (id) => workerAliveKey(prefix, id))) {
    try {
      const parsed = workerBeatSchema.safeParse(JSON.parse(raw));
      if (parsed.success) out.push(parsed.data);
    } catch {
      // A half-written or foreign value: skip it.
    }
  }
  return out;
}
