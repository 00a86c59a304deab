import { findExecutionWithFiles, isTerminal } from "@codeinterp/db";
import type { ExecutionWithFiles } from "@codeinterp/db";
import type { ApiDeps } from "./deps";

/**
 * Holds until the execution is terminal or `waitMs` passes, woken by the worker's pub/sub `done` event
 * rather than by polling the database. Subscribes before the one read, so a finish in between is not
 * missed: a wait costs two reads (now and at the end), whatever the code prints in between.
 */
export async function waitForExecution(
  deps: Pick<ApiDeps, "db" | "events">,
  userId: string,
  id: string,
  waitMs: number,
  signal?: AbortSignal,
): Promise<ExecutionWithFiles | null> {
  if (waitMs <= 0) return findExecutionWithFiles(deps.db, userId, id);
  let wake: () => void = () => undefined;
  const woken = new Promise<void>((resolve) => (wake = resolve));
  const unsubscribe = await deps.events.subscribe(id, (e) => {
    if (e.type === "done") wake();
  });
  const timer = setTimeout(wake, waitMs);
  signal?.addEventListener("abort", wake, { once: true });
  try {
    const first = await findExecutionWithFiles(deps.db, userId, id);
    if (!first || isTerminal(first.status)) return first;
    await woken;
    return await findExecutionWithFiles(deps.db, userId, id);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", wake);
    await unsubscribe();
  }
}
