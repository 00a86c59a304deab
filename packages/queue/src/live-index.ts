import type { Redis } from "./redis";

/**
 * The values of an index of expiring entries: a sorted set of ids scored by when each one's key expires,
 * beside one key per id (worker heartbeats, worker metrics snapshots). Ids past their time are dropped from
 * the index here (their writer died without cleaning up); ids whose key is already gone are skipped.
 */
export async function readLiveEntries(redis: Redis, index: string, keyOf: (id: string) => string): Promise<string[]> {
  const now = Date.now();
  await redis.zremrangebyscore(index, "-inf", now);
  const ids = await redis.zrangebyscore(index, now, "+inf");
  if (ids.length === 0) return [];
  const raws = await redis.mget(...ids.map(keyOf));
  return raws.filter((raw): raw is string => raw !== null);
}
