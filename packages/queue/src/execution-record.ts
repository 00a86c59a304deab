import { z } from "zod";

/**
 * The JSON an execution's record holds once it ends: `result` (what the code did), `failure` (why the system
 * could not run it) and `metrics` (where the time went). The worker writes them through finishAndAnnounce,
 * which parses them with these schemas; every reader in the API parses them with the same ones. Objects are
 * loose: a field added by a newer worker reaches /v1 readers unchanged.
 */

export const storedOutputSchema = z.object({
  type: z.string(),
  data: z.string().optional(),
  /** An image stored as a file of the execution (by id) instead of inline base64. */
  fileId: z.string().optional(),
});
export type StoredOutput = z.infer<typeof storedOutputSchema>;

export const kernelErrorSchema = z.object({ ename: z.string(), evalue: z.string(), traceback: z.array(z.string()) });
export type StoredKernelError = z.infer<typeof kernelErrorSchema>;

export const executionResultSchema = z.looseObject({
  stdout: z.string(),
  stderr: z.string(),
  outputs: z.array(storedOutputSchema),
  error: kernelErrorSchema.nullable(),
  truncated: z
    .object({ stdoutBytesDropped: z.number(), stderrBytesDropped: z.number(), outputsDropped: z.number() })
    .optional(),
  skippedFiles: z.array(z.object({ path: z.string(), reason: z.string() })).optional(),
  notes: z.array(z.string()).optional(),
});
export type ExecutionResult = z.infer<typeof executionResultSchema>;

export const executionFailureSchema = z.looseObject({ code: z.string(), message: z.string() });
export type ExecutionFailure = z.infer<typeof executionFailureSchema>;

export const executionMetricsSchema = z.looseObject({
  queueWaitMs: z.number().optional(),
  prepareMs: z.number().optional(),
  kernelAcquireMs: z.number().optional(),
  pooledKernel: z.boolean().optional(),
  reusedKernel: z.boolean().optional(),
  runMs: z.number().optional(),
  captureMs: z.number().optional(),
  filesCaptured: z.number().optional(),
});
export type ExecutionMetrics = z.infer<typeof executionMetricsSchema>;

/** A stored record that does not match its schema: a bug in a writer, never the caller's fault. */
export class StoredRecordError extends Error {
  override name = "StoredRecordError";
  constructor(
    readonly field: "result" | "failure" | "metrics",
    readonly issues: string,
  ) {
    super(`stored execution ${field} does not match its schema: ${issues}`);
  }
}

export interface ExecutionRecord {
  result: ExecutionResult | null;
  failure: ExecutionFailure | null;
  metrics: ExecutionMetrics | null;
}

function parseField<T>(schema: z.ZodType<T>, field: StoredRecordError["field"], json: unknown): T | null {
  if (json === null || json === undefined) return null;
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new StoredRecordError(field, z.prettifyError(parsed.error));
  return parsed.data;
}

/** The stored JSON of an execution row, parsed. */
export function parseExecutionRecord(row: { result: unknown; failure: unknown; metrics: unknown }): ExecutionRecord {
  return {
    result: parseField(executionResultSchema, "result", row.result),
    failure: parseField(executionFailureSchema, "failure", row.failure),
    metrics: parseField(executionMetricsSchema, "metrics", row.metrics),
  };
}
