import type { Redis } from "ioredis";
import { executionChannel } from "./events";
import type { ExecutionEvent } from "./events";

type EventBody = ExecutionEvent extends infer E ? (E extends ExecutionEvent ? Omit<E, "seq"> : never) : never;

export interface EventPublisher {
  publish(event: EventBody): Promise<void>;
}

/** Publishes one execution's events in order. Pub/sub is best effort: the database holds the truth. */
export function createEventPublisher(redis: Redis, prefix: string, executionId: string): EventPublisher {
  let seq = 0;
  const channel = executionChannel(prefix, executionId);
  return {
    async publish(event) {
      const message = JSON.stringify({ ...event, seq: ++seq });
      await redis.publish(channel, message).catch(() => undefined);
    },
  };
}
