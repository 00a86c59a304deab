import { Redis } from "ioredis";

export type { Redis };

/**
 * BullMQ needs `maxRetriesPerRequest: null` on blocking connections; for the rest, commands fail fast
 * while Redis is away so that HTTP requests answer 503 instead of hanging.
 */
export function createRedis(url: string, opts: { blocking?: boolean; name?: string } = {}): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: opts.blocking ? null : 2,
    connectionName: opts.name,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    lazyConnect: false,
  });
}
