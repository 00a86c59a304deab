import { z } from "zod";
import { EXECUTION_STATUSES } from "@codeinterp/db";
import { doneExecutionSchema } from "./done-execution";

/** Members of the live-kernel leases (keys.ts liveKernelsKey) that hold a place for a kernel being started: `start:<worker>:<uuid>`. */
export const LIVE_KERNEL_START_PREFIX = "start:";

/** What a worker publishes about an execution while it runs it. */
export const executionEventBodySchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("status"), status: z.enum(EXECUTION_STATUSES) }),
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
  z.object({
    type: z.literal("done"),
    status: z.enum(EXECUTION_STATUSES),
    /**
     * The ended execution with its files as the row was written (small ones only; done-execution.ts), so a
     * waiter need not read it. One that does not parse is dropped: the `done` still counts.
     */
    execution: doneExecutionSchema.optional().catch(undefined),
  }),
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
