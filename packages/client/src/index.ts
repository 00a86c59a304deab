export { createClient, filenameFromContentDisposition } from "./client";
export type {
  ClientOptions,
  CodeinterpClient,
  Download,
  LinkOptions,
  RequestOptions,
  StreamOptions,
  UploadData,
  UploadOptions,
  WaitOptions,
} from "./client";
export { CodeinterpApiError, CodeinterpTimeoutError } from "./errors";
export { readEventStream, toExecutionEvent } from "./sse";
export { isTerminalStatus, TERMINAL_STATUSES } from "./types";
export type * from "./types";
