import { hostname } from "node:os";
import { cellKeyPrefix, cellQueueName, createRedis, poolOwnersKey, queueNames } from "@codeinterp/queue";
import type { TestStack } from "./stack";

/**
 * Read-only looks at a test stack's worker state in Redis, for tests that must wait for a condition no API
 * answer shows (instead of sleeping). Key layouts: pool owners in apps/worker/src/kernels/pool-owners.ts, under
 * the cell's prefix (the stack's workers are one cell, named by this machine's hostname: CELL_ID's default);
 * an execution's job is in the shared queue or the cell's (packages/queue/src/cells.ts). Close it before the stack.
 */
export function observeStack(stack: Pick<TestStack, "env" | "queuePrefix">) {
  const redis = createRedis(stack.env.REDIS_URL!, { name: "test-observer" });
  const cellId = hostname();
  const queues = [queueNames.executions, cellQueueName(cellId)].map((q) => `${stack.queuePrefix}:${q}`);
  return {
    /** Pre-started kernels ready in the workers' pools (each pool records its ready kernels as they change). */
    poolKernels: () => redis.hlen(poolOwnersKey(cellKeyPrefix(stack.queuePrefix, cellId))),
    /** Execution jobs a worker holds now (BullMQ's active lists): 0 once every picked job's handler returned. */
    activeJobs: async () =>
      (await Promise.all(queues.map((q) => redis.llen(`${q}:active`)))).reduce((a, b) => a + b, 0),
    redis,
    close: () => redis.disconnect(),
  };
}
