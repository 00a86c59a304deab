import type { ChainableCommander } from "ioredis";
import { kernelResetKey, kernelRetireKey } from "./keys";
import type { Redis } from "./redis";

// The two marks the API leaves for whichever worker next holds a message's turn (the Jupyter surface's restart
// and delete). This module is their one owner: the API sets them, the message broker consumes them.

/** A restart asked for and not yet consumed lapses after this (the message is long gone by then). */
const RESET_MARK_TTL_MS = 7 * 24 * 3600_000;

/** "Start this message's next execution on a fresh kernel", added to the caller's transaction. */
export function markKernelReset(tx: ChainableCommander, prefix: string, messageKey: string): ChainableCommander {
  return tx.set(kernelResetKey(prefix, messageKey), "1", "PX", RESET_MARK_TTL_MS);
}

/** Consumed under the message's turn, once its old kernel is forgotten. */
export async function clearKernelReset(redis: Redis, prefix: string, messageKey: string): Promise<void> {
  await redis.del(kernelResetKey(prefix, messageKey));
}

/** "This message's kernel is no longer wanted": the next idle sweep shuts it down. */
export function markKernelRetired(tx: ChainableCommander, prefix: string, messageKey: string): ChainableCommander {
  return tx.sadd(kernelRetireKey(prefix), messageKey);
}

/** Up to `count` retired messages, taken off the set; one that cannot be handled now goes back with retireAgain. */
export async function takeRetiredKernels(redis: Redis, prefix: string, count: number): Promise<string[]> {
  return redis.spop(kernelRetireKey(prefix), count);
}

export async function retireAgain(redis: Redis, prefix: string, messageKey: string): Promise<void> {
  await redis.sadd(kernelRetireKey(prefix), messageKey);
}
