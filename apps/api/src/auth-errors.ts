// What resolving a caller can refuse; mapped to HTTP in errors.ts.

/** No such key, or a revoked one. */
export class InvalidApiKeyError extends Error {
  override name = "InvalidApiKeyError";
}

/** A user key named an end user: only tenant keys may act for someone else. */
export class EndUserNotAllowedError extends Error {
  override name = "EndUserNotAllowedError";
}

/** The end user named is empty, too long or has control characters. */
export class InvalidEndUserError extends Error {
  override name = "InvalidEndUserError";
}
