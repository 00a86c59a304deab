import type { WorkerEventMap, WorkerEvents } from "../../src/events";

/**
 * Everything a worker emits under one event name from now on, for tests that wait on what the worker did
 * (with expect.poll) instead of reading its Redis keys or BullMQ's. `stop` unsubscribes.
 */
export function recordEvents<K extends keyof WorkerEventMap>(events: WorkerEvents, name: K) {
  const seen: WorkerEventMap[K][0][] = [];
  const listener = (e: WorkerEventMap[K][0]) => void seen.push(e);
  // The map's tuples are one argument each: the cast only spells that out for EventEmitter's generic overload.
  events.on(name, listener as never);
  return { seen, stop: () => void events.off(name, listener as never) };
}
