import { z } from "zod";

export const executionChannel = (prefix: string, executionId: string) => `${prefix}:execution:${executionId}`;
/** A capped Redis stream of the same events, so a late subscriber can replay what it missed. */
export const executionLogKey = (prefix: string, executionId: string) => `${prefix}:execution-log:${executionId}`;
/** API processes listen here for executions whose cached response changed (one of its files was deleted). */
export const executionChangedChannel = (prefix: string) => `${prefix}:execution-changed`;
/** Workers listen here for cancel requests of executions they may be running. */
export const cancelChannel = (prefix: string) => `${prefix}:cancel`;
/**
 * A lasting cancel request: pub/sub reaches only a worker already running the execution, so one that picks
 * it up later (a retried job, a cancel sent between two steps) checks this key.
 */
export const cancelKey = (prefix: string, executionId: string) => `${prefix}:cancel-requested:${executionId}`;

/**
 * "Replace this message's kernel": set by the API (a Jupyter-surface restart), consumed by the worker that
 * next acquires the message's kernel, which shuts the old one down and starts the execution on a fresh one.
 */
export const kernelResetKey = (prefix: string, messageKey: string) => `${prefix}:kernel:reset:${messageKey}`;
/** Message keys whose kernel is no longer wanted (a Jupyter-surface kernel deleted): the next idle sweep shuts it down. */
export const kernelRetireKey = (prefix: string) => `${prefix}:kernel:retire`;
/**
 * The live-kernel leases under the ceiling (apps/worker/src/kernels/live-kernels.ts): a sorted set of kernel
 * ids (and `start:<worker>:<uuid>` places of kernels being started) scored by when each lease lapses.
 */
export const liveKernelsKey = (prefix: string) => `${prefix}:kernel:live`;
export const LIVE_KERNEL_START_PREFIX = "start:";

const statusValues = ["queued", "preparing", "running", "completed", "failed", "timed_out", "cancelled"] as const;

/** What a worker publishes about an execution while it runs it. */
export const executionEventBodySchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("status"), status: z.enum(statusValues) }),
  z.object({ type: z.literal("stdout"), text: z.string() }),
  z.object({ type: z.literal("stderr"), text: z.string() }),
  z.object({
    type: z.literal("output"),
    output: z.object({ type: z.string(), data: z.string().optional(), fileId: z.string().optional() }),
  }),
  z.object({
    type: z.literal("file"),
    file: z.object({ id: z.string(), name: z.string(), path: z.string(), size: z.number(), mimeType: z.string() }),
  }),
  z.object({ type: z.literal("done"), status: z.enum(statusValues) }),
]);
export type ExecutionEventBody = z.infer<typeof executionEventBodySchema>;

/** An event with its Redis stream id ("<ms>-<n>"), which orders events across retries and dedupes replays. */
export type ExecutionEvent = ExecutionEventBody & { id: string };

/** Compares two Redis stream ids. */
export function compareStreamIds(a: string, b: string): number {
  const [am = 0, an = 0] = a.split("-").map(Number);
  const [bm = 0, bn = 0] = b.split("-").map(Number);
  return am - bm || an - bn;
}

export function parseEventBody(json: string): ExecutionEventBody | null {
  try {
    const parsed = executionEventBodySchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
