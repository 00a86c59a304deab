import type { Redis } from "./redis";

/**
 * What a worker's kernels are promised, as it found at start: sandboxed kernels have no network at all;
 * plain kernels (KERNEL_SANDBOX=off, or a gateway without the sandbox) can reach whatever the gateway's
 * machine can. Workers announce it here (expiring with their heartbeat); /readyz says it.
 */
export type KernelIsolation = { sandboxed: true; network: "none"; cgroup: 1 | 2 | null } | { sandboxed: false; network: "unrestricted" };

const key = (prefix: string, workerId: string) => `${prefix}:worker:kernels:${workerId}`;

/** Keeps this worker's entry alive until stop() (or three missed beats after the process died). */
export function announceKernelIsolation(opts: { redis: Redis; prefix: string; workerId: string; heartbeatMs: number; isolation: KernelIsolation }) {
  const { redis } = opts;
  const beat = () =>
    redis.set(key(opts.prefix, opts.workerId), JSON.stringify(opts.isolation), "PX", opts.heartbeatMs * 3).catch(() => undefined);
  void beat();
  const timer = setInterval(() => void beat(), opts.heartbeatMs);
  timer.unref();
  return {
    async stop(): Promise<void> {
      clearInterval(timer);
      await redis.del(key(opts.prefix, opts.workerId)).catch(() => undefined);
    },
  };
}

/** Every live worker's kernel isolation (empty when no worker runs). */
export async function readKernelIsolation(redis: Redis, prefix: string): Promise<KernelIsolation[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", key(prefix, "*"), "COUNT", 200);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  if (keys.length === 0) return [];
  const values = await redis.mget(...keys);
  return values.flatMap((v) => {
    if (!v) return [];
    try {
      return [JSON.parse(v) as KernelIsolation];
    } catch {
      return [];
    }
  });
}
