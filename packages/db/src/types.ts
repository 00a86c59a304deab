/**
 * The rows packages/db hands out: plain data (numbers, strings, Dates, JSON), never Prisma's types. Apps
 * import these; rows.ts turns Prisma's rows and the prepared statements' rows into them, and checks at
 * compile time that they name the same columns as the schema.
 */

export const EXECUTION_STATUSES = [
  "queued",
  "preparing",
  "running",
  "completed",
  "failed",
  "timed_out",
  "cancelled",
] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

export const FILE_SOURCES = ["upload", "generated", "output"] as const;
export type FileSource = (typeof FILE_SOURCES)[number];

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json | undefined };

export interface ExecutionRow {
  id: string;
  userId: string;
  chatId: string;
  messageId: string;
  code: string;
  codeSha256: string;
  status: ExecutionStatus;
  timeoutMs: number;
  /** Memory the execution asked for its kernel (MB); null: the deployment default. */
  memoryMb: number | null;
  idempotencyKey: string | null;
  attempts: number;
  workerId: string | null;
  kernelId: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  result: Json | null;
  failure: Json | null;
  metrics: Json | null;
}

export interface FileRow {
  id: string;
  userId: string;
  name: string;
  /** Bytes; a number (int8 in the table), exact up to 8 PiB. */
  size: number;
  sha256: string;
  mimeType: string;
  storageKey: string;
  source: FileSource;
  chatId: string | null;
  messageId: string | null;
  executionId: string | null;
  path: string | null;
  derivedFromId: string | null;
  createdAt: Date;
  deletedAt: Date | null;
}

export type ExecutionWithFiles = ExecutionRow & { files: FileRow[] };

export interface LibreChatSessionRow {
  id: string;
  tenant: string;
  userId: string;
  librechatUser: string;
  executionId: string | null;
  createdAt: Date;
}
