import type { Redis } from "ioredis";
import { executionChannel, executionEventSchema } from "./events";
import type { ExecutionEvent } from "./events";

export interface EventSubscriber {
  /** Calls `listener` for each event of that execution until the returned function is called. */
  subscribe(executionId: string, listener: (e: ExecutionEvent) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/**
 * One Redis connection in subscriber mode shared by every waiting request of a process, with a listener
 * set per channel; so 1,000 SSE clients cost 1 connection, not 1,000.
 */
export function createEventSubscriber(redis: Redis, prefix: string): EventSubscriber {
  const listeners = new Map<string, Set<(e: ExecutionEvent) => void>>();
  redis.on("message", (channel: string, message: string) => {
    const set = listeners.get(channel);
    if (!set) return;
    let parsed: ExecutionEvent;
    try {
      parsed = executionEventSchema.parse(JSON.parse(message));
    } catch {
      return;
    }
    for (const l of set) l(parsed);
  });
  return {
    async subscribe(executionId, listener) {
      const channel = executionChannel(prefix, executionId);
      let set = listeners.get(channel);
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
        await redis.subscribe(channel);
      }
      set.add(listener);
      return async () => {
        const current = listeners.get(channel);
        if (!current) return;
        current.delete(listener);
        if (current.size === 0) {
          listeners.delete(channel);
          await redis.unsubscribe(channel).catch(() => undefined);
        }
      };
    },
    async close() {
      listeners.clear();
      redis.disconnect();
    },
  };
}
