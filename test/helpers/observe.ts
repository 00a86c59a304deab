import { createRedis, queueNames } from "@codeinterp/queue";
import type { TestStack } from "./stack";

/**
 * Read-only looks at a test stack's worker state in Redis, for tests that must wait for a condition no API
 * answer shows (instead of sleeping). Key layouts: pool owners in apps/worker/src/kernels/pool-owners.ts;
 * Close it before the stack.
 */
export function observeStack(stack: Pick<TestStack, "env" | "queuePrefix">) {
  const redis = createRedis(stack.env.REDIS_URL!, { name: "test-observer" });
  return {
    /** Pre-started kernels ready in the workers' pools (each pool records its ready kernels as they change). */
    poolKernels: () => redis.hlen(`${stack.queuePrefix}:kernel:pool-owners`),
    /** Execution jobs a worker holds now (BullMQ's active list): 0 once every picked job's handler returned. */
    activeJobs: () => redis.llen(`${stack.queuePrefix}:${queueNames.executions}:active`),
    redis,
    close: () => redis.disconnect(),
  };
}
