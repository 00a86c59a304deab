import { findExecution, findExecutionWithFiles, isTerminal } from "@codeinterp/db";
import type { ExecutionWithFiles } from "@codeinterp/db";
import type { ApiDeps } from "./deps";

/**
 * Holds until the execution is terminal or `waitMs` passes, woken by the worker's pub/sub `done` event
 * rather than by polling the database. Subscribes before reading so a finish in between is not missed.
 */
export async function waitForExecution(
  deps: Pick<ApiDeps, "db" | "events">,
  userId: string,
  id: string,
  waitMs: number,
  signal?: AbortSignal,
): Promise<ExecutionWithFiles | null> {
  const first = await findExecutionWithFiles(deps.db, userId, id);
  if (!first || isTerminal(first.status) || waitMs <= 0) return first;
  let wake: () => void = () => undefined;
  const woken = new Promise<void>((resolve) => (wake = resolve));
  const unsubscribe = await deps.events.subscribe(id, (e) => {
    if (e.type === "done") wake();
  });
  const timer = setTimeout(wake, waitMs);
  signal?.addEventListener("abort", wake, { once: true });
  try {
    const current = await findExecution(deps.db, userId, id);
    if (!current || isTerminal(current.status)) return await findExecutionWithFiles(deps.db, userId, id);
    await woken;
    return await findExecutionWithFiles(deps.db, userId, id);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", wake);
    await unsubscribe();
  }
}
