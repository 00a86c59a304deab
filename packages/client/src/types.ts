// Response and request shapes of the public API (shared/API.md). Kept by hand next to the server's zod
// schemas; the client integration tests check them against the real server.

export type ExecutionStatus = "queued" | "preparing" | "running" | "completed" | "failed" | "timed_out" | "cancelled";

export const TERMINAL_STATUSES: readonly ExecutionStatus[] = ["completed", "failed", "timed_out", "cancelled"];

export function isTerminalStatus(status: ExecutionStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** An uploaded file (`POST /v1/files`). */
export interface FileInfo {
  id: string;
  name: string;
  size: number;
  sha256: string;
  mimeType: string;
  createdAt: string;
}

/** `GET /v1/files/:id`: generated files also say where they came from. */
export interface FileMetadata extends FileInfo {
  /** Generated files: path relative to /mnt/data. */
  path?: string;
  messageId?: string;
  executionId?: string;
  /** Generated files: the attachment this file is a changed copy of. */
  derivedFromId?: string | null;
}

/** A file that an execution created or changed under /mnt/data. */
export interface GeneratedFile {
  id: string;
  name: string;
  /** Relative to /mnt/data. */
  path: string;
  size: number;
  mimeType: string;
  /** `/v1/files/:id/content` (relative to the API's base URL). */
  url: string;
  derivedFromId?: string | null;
}

/** A rich output: inline `data` (text, base64 for images) or a `fileId` for large ones. */
export interface ExecutionOutput {
  type: string;
  data?: string;
  fileId?: string;
}

export interface ExecutionError {
  ename: string;
  evalue: string;
  traceback: string[];
}

export interface ExecutionResult {
  stdout: string;
  stderr: string;
  outputs: ExecutionOutput[];
  error: ExecutionError | null;
}

export interface Execution {
  id: string;
  chatId: string;
  messageId: string;
  status: ExecutionStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  result: ExecutionResult | null;
  /** Set when the system could not run the code (`status: "failed"`), e.g. `{ code: "kernel_died" }`. */
  failure?: { code: string; message: string } | null;
  files: GeneratedFile[];
}

export interface ExecuteRequest {
  chatId: string;
  messageId: string;
  code: string;
  /** Files the user attached to this message; they join the message's attachments. */
  fileIds?: string[];
  timeoutMs?: number;
  /** The same key from the same user returns the same execution. */
  idempotencyKey?: string;
}

export interface MessageFiles {
  messageId: string;
  files: GeneratedFile[];
}

export interface ChatFiles {
  chatId: string;
  totalFiles: number;
  /** Generated files by messageId. */
  messages: Record<string, GeneratedFile[]>;
}

export type FilePreview =
  | { kind: "columns"; columns: string[] }
  | { kind: "sheets"; sheets: string[] }
  | { kind: "keys"; keys: string[]; array: boolean }
  | { kind: "text"; firstLine: string };

export interface ContextFile {
  id?: string;
  source?: "attachment" | "generated";
  /** Relative to /mnt/data. */
  path: string;
  name: string;
  size: number;
  mimeType: string;
  preview: FilePreview | null;
}

export interface MessageContext {
  messageId: string;
  files: ContextFile[];
  /** A text block for the model's instructions describing /mnt/data. */
  prompt: string;
}

/** A download link that works without an API key until `expiresAt` (`POST /v1/files/:id/links`). */
export interface SignedLink {
  fileId: string;
  name: string;
  /** Absolute URL. */
  url: string;
  expiresAt: string;
}

/** `POST /v1/messages/:messageId/links`: the text with its /mnt/data links signed, and every file's link. */
export interface RewrittenText {
  messageId: string;
  text: string;
  links: Array<SignedLink & { path: string }>;
}

/** One Server-Sent Event of `GET /v1/executions/:id/events`; `id` is the stream id to resume after. */
export type ExecutionEvent =
  | { type: "status"; id?: string; status: ExecutionStatus }
  | { type: "stdout"; id?: string; text: string }
  | { type: "stderr"; id?: string; text: string }
  | { type: "output"; id?: string; output: ExecutionOutput }
  | { type: "file"; id?: string; file: Omit<GeneratedFile, "url"> & { url?: string } }
  | { type: "done"; id?: string; execution: Execution };

export interface ApiErrorBody {
  error: { code: string; message: string; [key: string]: unknown };
}
