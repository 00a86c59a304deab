import { kernelEvictedKey, kernelIdleIndex, kernelMappingKey } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import type { KernelMapping } from "./broker";

/**
 * The Redis records of message kernels, all under `<prefix>:kernel:`: each message's mapping (`msg:<key>`,
 * expiring `ttlMs` after its last use), the idle index (`idle`, messages scored by last use, which the idle
 * sweep and the ceiling's eviction walk) and the "state was reset" mark of an evicted message (`evicted:<key>`).
 * Read and changed only under the message's turn (or its lock, for the sweep and eviction).
 */
export function createKernelMappings(redis: Redis, prefix: string, ttlMs: number) {
  const mapKey = (k: string) => kernelMappingKey(prefix, k);
  const evictedKey = (k: string) => kernelEvictedKey(prefix, k);
  const idleSet = kernelIdleIndex(prefix);

  return {
    async read(messageKey: string): Promise<KernelMapping | null> {
      return parseMapping(await redis.get(mapKey(messageKey)));
    },
    /**
     * The mapping, and whether `markKey` exists (the Jupyter surface's restart mark), in one round trip: what
     * a turn needs to know of its message before it takes a kernel.
     */
    async readWithMark(
      messageKey: string,
      markKey: string,
    ): Promise<{ mapping: KernelMapping | null; marked: boolean }> {
      const replies = await redis.pipeline().get(mapKey(messageKey)).exists(markKey).exec();
      const [[mapErr, raw] = [], [markErr, marked] = []] = replies ?? [];
      const err = mapErr ?? markErr;
      if (err) throw err;
      return { mapping: parseMapping(raw), marked: marked === 1 };
    },
    /** The message's kernel, used at `lastUsed`. */
    async record(messageKey: string, kernelId: string, lastUsed: number): Promise<void> {
      await redis
        .multi()
        .set(mapKey(messageKey), JSON.stringify({ kernelId, lastUsed } satisfies KernelMapping), "PX", ttlMs)
        .zadd(idleSet, lastUsed, messageKey)
        .exec();
    },
    async remove(messageKey: string): Promise<void> {
      await redis.multi().del(mapKey(messageKey)).zrem(idleSet, messageKey).exec();
    },
    /** Messages by last use, least recent first (busy ones included: their lock tells). */
    leastRecentlyUsed: (limit: number) => redis.zrange(idleSet, "0", String(limit - 1)),
    /** Messages last used before `before`. */
    idleSince: (before: number, limit: number) => redis.zrangebyscore(idleSet, 0, before, "LIMIT", 0, limit),
    /** A message in the index whose mapping expired. */
    async dropIndex(messageKey: string): Promise<void> {
      await redis.zrem(idleSet, messageKey);
    },
    /** Its next kernel is to say that state was reset, for `ms` (while the old one would have lived). */
    async markEvicted(messageKey: string, ms: number): Promise<void> {
      if (ms > 0) await redis.set(evictedKey(messageKey), "1", "PX", ms);
    },
    /** Whether the message was evicted (and its note is still owed); clears the mark. */
    async takeEvictedMark(messageKey: string): Promise<boolean> {
      return (await redis.getdel(evictedKey(messageKey))) !== null;
    },
  };
}

function parseMapping(raw: unknown): KernelMapping | null {
  if (typeof raw !== "string" || !raw) return null;
  try {
    return JSON.parse(raw) as KernelMapping;
  } catch {
    return null;
  }
}

export type KernelMappings = ReturnType<typeof createKernelMappings>;
