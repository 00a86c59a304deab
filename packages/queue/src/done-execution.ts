import { z } from "zod";
import { EXECUTION_STATUSES, FILE_SOURCES } from "@codeinterp/db";
import type { ExecutionWithFiles, Json } from "@codeinterp/db";
import type { ExecutionResult } from "./execution-record";

/**
 * The ended execution a worker's `done` event carries: the row as its finishing statement returned it, with
 * its files (what findExecutionWithFiles reads), so whoever waited for the end answers without reading it
 * again. Only small ones ride along: the replay log keeps the event for its hour too. A `done` without one,
 * or with one that does not parse (events.ts drops it then), means "read it".
 */

/** Largest record (code, result and failure included) sent with `done`, in JSON characters. */
const DONE_EXECUTION_MAX_CHARS = 16_384;
/** Most files listed by a record sent with `done` (each is ~500 characters of JSON). */
const DONE_EXECUTION_MAX_FILES = 16;

const date = z.iso.datetime().transform((s) => new Date(s));
/** JSON as the row types name it (packages/db's Json), checked as JSON. */
const anyJson = z.json();
const json = z.custom<Json>((v) => anyJson.safeParse(v).success);

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

export const doneExecutionSchema = z.object({
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
  result: json.nullable(),
  failure: json.nullable(),
  metrics: json.nullable(),
  files: z.array(fileSchema),
});

/** What `done` carries for this execution (sent as JSON), or undefined when it is too big to ride along. */
export function doneExecution(execution: ExecutionWithFiles): ExecutionWithFiles | undefined {
  return JSON.stringify(execution).length <= DONE_EXECUTION_MAX_CHARS ? execution : undefined;
}

/**
 * Whether an end is worth asking the finishing statement for the record (the JSON is measured exactly only
 * once it is back): its text and inline outputs, and how many files it lists, are small.
 */
export function smallEnough(result: ExecutionResult | null | undefined, filesCaptured: number | undefined): boolean {
  const text = (result?.stdout.length ?? 0) + (result?.stderr.length ?? 0);
  const outputs = (result?.outputs ?? []).reduce((n, o) => n + (o.data?.length ?? 0), 0);
  return text + outputs <= DONE_EXECUTION_MAX_CHARS && (filesCaptured ?? 0) <= DONE_EXECUTION_MAX_FILES;
}
