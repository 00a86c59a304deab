import type { ErrorRequestHandler, RequestHandler } from "express";
import { FilesNotFoundError, isOutage, MessageInOtherChatError } from "@codeinterp/db";
import type { Logger } from "@codeinterp/logger";
import { BlobStoreUnavailableError } from "@codeinterp/workspace";
import { normalizeError } from "@codeinterp/logger";
import { EndUserNotAllowedError, InvalidApiKeyError, InvalidEndUserError } from "./auth-errors";
import { InvalidCodeError } from "./executions/service";

/** An error that carries its HTTP answer; services throw their own errors and the edge maps them here. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    public readonly status: number,
    public readonly code: string,
    message: string,
    public readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export const notFound = (what = "resource") => new HttpError(404, "not_found", `${what} not found`);

export const unknownRoute: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, "not_found", `no route for ${req.method} ${req.path}`));
};

export function toHttpError(err: unknown): HttpError | null {
  if (err instanceof HttpError) return err;
  if (err instanceof FilesNotFoundError) {
    return new HttpError(422, "files_not_found", err.message, { fileIds: err.fileIds });
  }
  if (err instanceof MessageInOtherChatError) {
    return new HttpError(409, "message_in_other_chat", err.message, { messageId: err.messageId });
  }
  if (err instanceof InvalidApiKeyError) return new HttpError(401, "unauthorized", err.message);
  if (err instanceof EndUserNotAllowedError) return new HttpError(403, "end_user_not_allowed", err.message);
  if (err instanceof InvalidEndUserError) return new HttpError(400, "invalid_end_user", err.message);
  if (err instanceof InvalidCodeError) return new HttpError(400, "invalid_code", err.message);
  const e = err as { type?: string; status?: number; expose?: boolean; message?: string };
  // body-parser's errors (bad JSON, too large, wrong charset) carry their own status.
  if (e && e.type === "entity.parse.failed")
    return new HttpError(400, "invalid_json", "request body is not valid JSON");
  if (e && e.type === "entity.too.large") return new HttpError(413, "payload_too_large", "request body is too large");
  // A path that is not valid percent-encoding (`/v1/files/%`) and other client errors from Express.
  if (err instanceof URIError) return new HttpError(400, "bad_request", "malformed URL encoding");
  if (e && typeof e.status === "number" && e.status >= 400 && e.status < 500) {
    return new HttpError(e.status, "bad_request", e.expose && e.message ? e.message : "bad request");
  }
  if (err instanceof BlobStoreUnavailableError)
    return new HttpError(503, "blob_store_unavailable", "object storage is unavailable; retry shortly");
  // Postgres or Redis went away: the caller should retry, not see a 500.
  if (isOutage(err))
    return new HttpError(503, "dependency_unavailable", "a backing service is unavailable; retry shortly");
  return null;
}

export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const http = toHttpError(err);
    if (!http) {
      // eslint-disable-next-line @typescript-eslint/no-unsafe-member-access -- Express types req.route as any
      log.error({ err: normalizeError(err), method: req.method, path: req.route?.path ?? req.path }, "unhandled error");
    }
    const status = http?.status ?? 500;
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(status).json({
      error: {
        code: http?.code ?? "internal_error",
        message: http?.message ?? "internal server error",
        ...(http?.details ?? {}),
      },
    });
  };
}
