import type { Execution } from "./types";

/** The API answered with an error status; `code` is the body's `error.code` (snake_case). */
export class CodeinterpApiError extends Error {
  override name = "CodeinterpApiError";
  readonly status: number;
  readonly code: string;
  /** The whole parsed error body (or the raw text when it was not JSON). */
  readonly body: unknown;

  constructor(status: number, code: string, message: string, body?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** `wait()` ran out of time before the execution ended; `execution` is the last state seen. */
export class CodeinterpTimeoutError extends Error {
  override name = "CodeinterpTimeoutError";
  readonly execution: Execution | null;

  constructor(message: string, execution: Execution | null) {
    super(message);
    this.execution = execution;
  }
}

/** Builds the error for a non-2xx response from its body text. */
export function apiErrorFrom(status: number, statusText: string, text: string): CodeinterpApiError {
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (err && typeof err.code === "string") {
    return new CodeinterpApiError(status, err.code, typeof err.message === "string" ? err.message : err.code, body);
  }
  const message = typeof body === "string" && body ? body.slice(0, 500) : `HTTP ${status} ${statusText}`.trim();
  return new CodeinterpApiError(status, `http_${status}`, message, body);
}
