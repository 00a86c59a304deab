import { Redis } from "ioredis";

export type { Redis };

/**
 * BullMQ needs `maxRetriesPerRequest: null` on blocking connections; for the rest, commands fail fast
 * while Redis is away so that HTTP requests answer 503 instead of hanging.
 */
export function createRedis(
  url: string,
  opts: { blocking?: boolean; name?: string; onError?: (err: Error) => void } = {},
): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: opts.blocking ? null : 2,
    connectionName: opts.name,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  });
  // ioredis reconnects by itself; without a listener each failed attempt is printed as "Unhandled error event".
  redis.on("error", opts.onError ?? (() => undefined));
  return redis;
}
