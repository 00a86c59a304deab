import type { Redis } from "ioredis";
import type { ExecutionWithFiles } from "@codeinterp/db";
import { executionChannel, executionLogKey } from "./keys";
import type { ExecutionEventBody } from "./events";

export interface EventPublisher {
  /**
   * Sends events, in order, within the publisher's batch window (`batchMs`): everything published in that
   * window (and anything held) goes out in one round trip, and an `end` sends at once what is waiting. The
   * promise settles once they are sent.
   */
  publish(...events: ExecutionEventBody[]): Promise<void>;
  /**
   * The final status and `done` (carrying `execution`, the ended execution, when given), sent at once with
   * whatever is waiting (one round trip), in that order.
   */
  end(status: Extract<ExecutionEventBody, { type: "done" }>["status"], execution?: ExecutionWithFiles): Promise<void>;
  /**
   * Holds `event` for up to `ms`: it goes ahead of the next events, in the same round trip, or alone once `ms`
   * passed. A status that is over sooner than anyone could see it (`preparing` on an adopted pool kernel) costs no
   * round trip of its own, and subscribers and replays still get it, in order.
   */
  hold(event: ExecutionEventBody, ms: number): void;
  /** Forgets events not sent yet (the execution was ended elsewhere: nothing may follow its `done`). */
  drop(): void;
}

// Append each event to the execution's stream and publish it with its stream id, in one round trip and
// atomically, so live subscribers and replays agree on order and identity. Nothing follows a \`done\`: an
// event held back (see \`hold\`) whose timer fires after another process ended the execution is dropped here,
// where the order is decided, not by the publisher's guess. ARGV: ttl, cap, event...
const APPEND_AND_PUBLISH = `
local last = redis.call("XREVRANGE", KEYS[1], "+", "-", "COUNT", 1)[1]
if last and string.find(last[2][2], '"type":"done"', 1, true) then return false end
local id
for i = 3, #ARGV do
  id = redis.call("XADD", KEYS[1], "MAXLEN", "~", ARGV[2], "*", "e", ARGV[i])
  redis.call("PUBLISH", KEYS[2], id .. " " .. ARGV[i])
end
redis.call("PEXPIRE", KEYS[1], ARGV[1])
return id`;

const COMMAND = "codeinterpAppendAndPublish";
type WithCommand = Redis & { [COMMAND]: (...args: string[]) => Promise<unknown> };

/**
 * The script as a command of this connection: ioredis sends it by its SHA (EVALSHA), and the body only once
 * per connection (on NOSCRIPT), instead of the whole script with every event.
 */
function withCommand(redis: Redis): WithCommand {
  if (!(COMMAND in redis)) redis.defineCommand(COMMAND, { numberOfKeys: 2, lua: APPEND_AND_PUBLISH });
  return redis as WithCommand;
}

export interface PublisherOptions {
  /** How long the replay log outlives its last event. */
  logTtlMs?: number;
  /** Approximate cap of the replay log. */
  maxLogEvents?: number;
  /**
   * Longest an event waits for others to share its round trip (default 20 ms: below what a person watching
   * output can tell, and long enough that a short run's status, output and end go out together).
   */
  batchMs?: number;
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
  const batchMs = opts.batchMs ?? 20;
  let waiting: ExecutionEventBody[] = [];
  let sent: Array<() => void> = [];
  let timer: NodeJS.Timeout | null = null;
  let due = Number.POSITIVE_INFINITY;
  const take = (): { events: ExecutionEventBody[]; settle: Array<() => void> } => {
    if (timer) clearTimeout(timer);
    timer = null;
    due = Number.POSITIVE_INFINITY;
    const taken = { events: waiting, settle: sent };
    waiting = [];
    sent = [];
    return taken;
  };
  const send = async (events: ExecutionEventBody[]) => {
    if (events.length === 0) return;
    // Events are a live view: the database row is the record, and readers fall back to it.
    const script = withCommand(redis)[COMMAND];
    await script.call(redis, ...keys, ttl, cap, ...events.map((e) => JSON.stringify(e))).catch(() => undefined);
  };
  const flush = async () => {
    const { events, settle } = take();
    await send(events);
    for (const done of settle) done();
  };
  /** Queues events to go out within `ms` (sooner if something queued earlier is due sooner). */
  const queue = (events: ExecutionEventBody[], ms: number) => {
    waiting.push(...events);
    const at = Date.now() + ms;
    if (at >= due) return;
    due = at;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void flush(), ms);
    // A waiting event never keeps a closing process alive.
    timer.unref();
  };
  return {
    publish: (...events) =>
      new Promise<void>((resolve) => {
        sent.push(resolve);
        queue(events, batchMs);
      }),
    async end(status, execution) {
      queue(
        [
          { type: "status", status },
          { type: "done", status, ...(execution !== undefined ? { execution } : {}) },
        ],
        0,
      );
      await flush();
    },
    hold(event, ms) {
      queue([event], ms);
    },
    drop() {
      const { settle } = take();
      for (const done of settle) done();
    },
  };
}
