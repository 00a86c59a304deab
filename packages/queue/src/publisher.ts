import type { Redis } from "ioredis";
import { executionChannel, executionLogKey } from "./keys";
import type { ExecutionEventBody } from "./events";

export interface EventPublisher {
  publish(event: ExecutionEventBody): Promise<void>;
  /** The final status and `done`, sent together (one round trip) and in that order on the stream. */
  end(status: Extract<ExecutionEventBody, { type: "done" }>["status"]): Promise<void>;
}

// Append to the execution's stream and publish with the stream id in one round trip, atomically, so live
// subscribers and replays agree on order and identity.
const APPEND_AND_PUBLISH = `
local id = redis.call("XADD", KEYS[1], "MAXLEN", "~", ARGV[3], "*", "e", ARGV[1])
redis.call("PEXPIRE", KEYS[1], ARGV[2])
redis.call("PUBLISH", KEYS[2], id .. " " .. ARGV[1])
return id`;

export interface PublisherOptions {
  /** How long the replay log outlives its last event. */
  logTtlMs?: number;
  /** Approximate cap of the replay log. */
  maxLogEvents?: number;
}

/** Best effort: the database holds the truth; a lost event never loses a result. */
export function createEventPublisher(
  redis: Redis,
  prefix: string,
  executionId: string,
  opts: PublisherOptions = {},
): EventPublisher {
  const keys = [executionLogKey(prefix, executionId), executionChannel(prefix, executionId)];
  const ttl = String(opts.logTtlMs ?? 3600_000);
  const cap = String(opts.maxLogEvents ?? 5000);
  const publish = async (event: ExecutionEventBody) => {
    // Events are a live view: the database row is the record, and readers fall back to it.
    await redis.eval(APPEND_AND_PUBLISH, 2, ...keys, JSON.stringify(event), ttl, cap).catch(() => undefined);
  };
  return {
    publish,
    // Commands on one connection run in order, so issuing both at once keeps status before done.
    end: async (status) => {
      await Promise.all([publish({ type: "status", status }), publish({ type: "done", status })]);
    },
  };
}
