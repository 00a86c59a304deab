import { hostname } from "node:os";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import {
  createKernelGateway,
  KERNEL_CPU_WEIGHTS,
  kernelCpuCgroup,
  readKernelCpuWeight,
  SANDBOX_KERNEL_NAME,
} from "@codeinterp/kernel";
import type { KernelCgroupParent, KernelGateway } from "@codeinterp/kernel";
import { createDb } from "@codeinterp/db";
import type { Db } from "@codeinterp/db";
import { createLogger } from "@codeinterp/logger";
import { cellKeyPrefix, createRedis, poolOwnersKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Refills do not slow running executions: a sandboxed pool kernel starts (and preloads) at the background CPU
// weight of its cgroup, and runs a message's code at the normal weight once handed to it.
let stack: TestStack;
let api: ReturnType<typeof client>;
let db: Db;
let redis: Redis;
let gateway: KernelGateway;

beforeAll(async () => {
  stack = await startTestStack({ env: { KERNEL_POOL_SIZE: "1" } });
  api = client(stack.url, (await stack.newUser("cpu")).key);
  db = createDb({ url: stack.databaseUrl });
  redis = createRedis(stack.env.REDIS_URL!, { name: "cpu-weight-test" });
  gateway = createKernelGateway({
    baseUrl: inject("jupyterUrl"),
    token: inject("jupyterToken"),
    log: createLogger({ name: "t", level: "silent" }),
    kernelName: SANDBOX_KERNEL_NAME,
  });
});
afterAll(async () => {
  redis?.disconnect();
  await db?.$disconnect();
  await stack?.close();
});

// Read from the kernel's cgroup, where the sandbox kernelspec says its server puts them.
async function weightOf(kernelId: string): Promise<number | null> {
  const meta = (await gateway.kernelSpecs())[SANDBOX_KERNEL_NAME]?.metadata as
    { codeinterp?: { cgroup?: KernelCgroupParent | null } } | undefined;
  const parent = meta?.codeinterp?.cgroup;
  return parent ? readKernelCpuWeight(kernelCpuCgroup(parent, kernelId)) : null;
}

describe("pool kernels' CPU weight", () => {
  it("a waiting pool kernel has the background weight; the message that gets it runs at the normal weight", async () => {
    const poolIds = async () => redis.hkeys(poolOwnersKey(cellKeyPrefix(stack.queuePrefix, hostname())));
    await expect.poll(async () => (await poolIds()).length, { timeout: 60_000, interval: 200 }).toBe(1);
    const [waiting] = await poolIds();
    const bg = await weightOf(waiting!);
    // No cgroups on this machine means no weights to check: say so rather than pass silently.
    expect(bg, "kernel cgroups are not readable here").not.toBeNull();
    const { v1, v2 } = KERNEL_CPU_WEIGHTS.background;
    expect([v1, v2]).toContain(bg);

    const done = await api.run({ messageId: "cpu-1", code: "print(1)" });
    const exec = await db.execution.findUniqueOrThrow({ where: { id: done.id } });
    expect((exec.metrics as { pooledKernel?: boolean }).pooledKernel).toBe(true);
    expect(exec.kernelId).toBe(waiting);
    expect([KERNEL_CPU_WEIGHTS.normal.v1, KERNEL_CPU_WEIGHTS.normal.v2]).toContain(await weightOf(waiting!));
  });
});
