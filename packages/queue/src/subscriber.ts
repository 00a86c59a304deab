import type { Redis } from "ioredis";
import { compareStreamIds, parseEventBody } from "./events";
import { executionChannel, executionLogKey } from "./keys";
import type { ExecutionEvent } from "./events";

export interface EventSubscriber {
  /** Calls `listener` for each live event of that execution until the returned function is called. */
  subscribe(executionId: string, listener: (e: ExecutionEvent) => void): Promise<() => Promise<void>>;
  /** Events already logged for that execution after `afterId` (all when absent), oldest first. */
  replay(executionId: string, afterId?: string): Promise<ExecutionEvent[]>;
  close(): Promise<void>;
}

/**
 * One Redis connection in subscriber mode shared by every waiting request of a process, with a listener
 * set per channel, so 1,000 SSE clients cost one connection, not 1,000. Replays use the normal connection.
 */
export function createEventSubscriber(subscriberRedis: Redis, commandRedis: Redis, prefix: string): EventSubscriber {
  const listeners = new Map<string, Set<(e: ExecutionEvent) => void>>();
  // A second subscriber to a channel waits for the first one's SUBSCRIBE too: "subscribed" must mean it.
  const pending = new Map<string, Promise<unknown>>();
  subscriberRedis.on("message", (channel: string, message: string) => {
    const set = listeners.get(channel);
    if (!set) return;
    const space = message.indexOf(" ");
    const body = parseEventBody(message.slice(space + 1));
    if (space <= 0 || !body) return;
    const event = { ...body, id: message.slice(0, space) };
    for (const l of set) l(event);
  });
  return {
    async subscribe(executionId, listener) {
      const channel = executionChannel(prefix, executionId);
      let set = listeners.get(channel);
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
        const subscribing = subscriberRedis.subscribe(channel);
        pending.set(channel, subscribing);
        try {
          await subscribing;
        } finally {
          pending.delete(channel);
        }
      } else {
        await pending.get(channel);
      }
      set.add(listener);
      return async () => {
        const current = listeners.get(channel);
        if (!current) return;
        current.delete(listener);
        if (current.size === 0) {
          listeners.delete(channel);
          // No listener is left for the channel; a failed UNSUBSCRIBE only costs ignored messages.
          await subscriberRedis.unsubscribe(channel).catch(() => undefined);
        }
      };
    },
    async replay(executionId, afterId) {
      const start = afterId ? `(${afterId}` : "-";
      const rows = await commandRedis.xrange(executionLogKey(prefix, executionId), start, "+");
      const events: ExecutionEvent[] = [];
      for (const [id, fields] of rows) {
        const body = parseEventBody(fields[1] ?? "");
        if (body && (!afterId || compareStreamIds(id, afterId) > 0)) events.push({ ...body, id });
      }
      return events;
    },
    async close() {
      listeners.clear();
      subscriberRedis.disconnect();
    },
  };
}
