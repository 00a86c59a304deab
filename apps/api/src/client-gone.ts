import type { Response } from "express";

/**
 * Aborts when the client goes away before its answer was sent in full, so a held request (a long poll, a submit
 * that waits) stops waiting for nobody. An answered request aborts nothing: aborting would build an AbortError
 * (a DOMException, with its stack) on every request for no one to read.
 */
export function clientGone(res: Response): AbortSignal {
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  return abort.signal;
}
