import { z } from "zod";
import { EXECUTION_STATUSES, FILE_SOURCES } from "@codeinterp/db";
import type { ExecutionWithFiles } from "@codeinterp/db";

/**
 * The ended execution a worker's `done` event carries: the row as its finishing statement returned it, with
 * its files (what findExecutionWithFiles reads), so whoever waited for the end answers without reading it
 * again. Only small ones ride along (the event is also kept in the replay log); a `done` without one, or with
 * one that does not parse, means "read it".
 */

/** Largest record (code, result and failure included) sent with `done`, in JSON characters. */
export const DONE_EXECUTION_MAX_CHARS = 16_384;

const date = z.iso.datetime().transform((s) => new Date(s));

const fileSchema = z.object({
  id: z.string(),
  userId: z.string(),
  name: z.string(),
  size: z.number(),
  sha256: z.string(),
  mimeType: z.string(),
  storageKey: z.string(),
  source: z.enum(FILE_SOURCES),
  chatId: z.string().nullable(),
  messageId: z.string().nullable(),
  executionId: z.string().nullable(),
  path: z.string().nullable(),
  derivedFromId: z.string().nullable(),
  createdAt: date,
  deletedAt: date.nullable(),
});

const doneExecutionSchema = z.object({
  id: z.string(),
  userId: z.string(),
  chatId: z.string(),
  messageId: z.string(),
  code: z.string(),
  codeSha256: z.string(),
  status: z.enum(EXECUTION_STATUSES),
  timeoutMs: z.number(),
  memoryMb: z.number().nullable(),
  idempotencyKey: z.string().nullable(),
  attempts: z.number(),
  workerId: z.string().nullable(),
  kernelId: z.string().nullable(),
  createdAt: date,
  startedAt: date.nullable(),
  finishedAt: date.nullable(),
  result: z.json().nullable(),
  failure: z.json().nullable(),
  metrics: z.json().nullable(),
  files: z.array(fileSchema),
});

/** What `done` carries for this execution (sent as JSON), or undefined when it is too big to ride along. */
export function doneExecution(execution: ExecutionWithFiles): ExecutionWithFiles | undefined {
  return JSON.stringify(execution).length <= DONE_EXECUTION_MAX_CHARS ? execution : undefined;
}

/** The execution a `done` carried, if it carried one that parses; null means "read it". */
export function parseDoneExecution(carried: unknown): ExecutionWithFiles | null {
  if (carried === undefined) return null;
  const parsed = doneExecutionSchema.safeParse(carried);
  return parsed.success ? parsed.data : null;
}
