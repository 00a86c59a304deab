import type { Redis } from "ioredis";
import { executionChannel, executionLogKey } from "./keys";
import type { ExecutionEventBody } from "./events";

export interface EventPublisher {
  publish(event: ExecutionEventBody): Promise<void>;
  /** The final status and `done`, sent together (one round trip) and in that order on the stream. */
  end(status: Extract<ExecutionEventBody, { type: "done" }>["status"]): Promise<void>;
}

// Append each event to the execution's stream and publish it with its stream id, in one round trip and
// atomically, so live subscribers and replays agree on order and identity. ARGV: ttl, cap, event...
const APPEND_AND_PUBLISH = `
local id
for i = 3, #ARGV do
  id = redis.call("XADD", KEYS[1], "MAXLEN", "~", ARGV[2], "*", "e", ARGV[i])
  redis.call("PUBLISH", KEYS[2], id .. " " .. ARGV[i])
end
redis.call("PEXPIRE", KEYS[1], ARGV[1])
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
  const append = async (...events: ExecutionEventBody[]) => {
    // Events are a live view: the database row is the record, and readers fall back to it.
    await redis
      .eval(APPEND_AND_PUBLISH, 2, ...keys, ttl, cap, ...events.map((e) => JSON.stringify(e)))
      .catch(() => undefined);
  };
  return {
    publish: (event) => append(event),
    end: (status) => append({ type: "status", status }, { type: "done", status }),
  };
}
