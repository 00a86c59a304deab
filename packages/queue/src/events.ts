import { z } from "zod";

export const executionChannel = (prefix: string, executionId: string) => `${prefix}:execution:${executionId}`;
/** Workers listen here for cancel requests of executions they may be running. */
export const cancelChannel = (prefix: string) => `${prefix}:cancel`;

const statusValues = ["queued", "preparing", "running", "completed", "failed", "timed_out", "cancelled"] as const;

/** What a worker publishes on an execution's channel while it runs it; `seq` orders them per execution. */
export const executionEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("status"), seq: z.number(), status: z.enum(statusValues) }),
  z.object({ type: z.literal("stdout"), seq: z.number(), text: z.string() }),
  z.object({ type: z.literal("stderr"), seq: z.number(), text: z.string() }),
  z.object({
    type: z.literal("output"),
    seq: z.number(),
    output: z.object({ type: z.string(), data: z.string().optional(), fileId: z.string().optional() }),
  }),
  z.object({
    type: z.literal("file"),
    seq: z.number(),
    file: z.object({ id: z.string(), name: z.string(), path: z.string(), size: z.number(), mimeType: z.string() }),
  }),
  z.object({ type: z.literal("done"), seq: z.number(), status: z.enum(statusValues) }),
]);
export type ExecutionEvent = z.infer<typeof executionEventSchema>;
