import { createParser } from "eventsource-parser";
import type { EventSourceMessage } from "eventsource-parser";
import type { Execution, ExecutionEvent, ExecutionOutput, ExecutionStatus, GeneratedFile } from "./types";

/** Maps one SSE message of the events route to a typed event; unknown event names are skipped (null). */
export function toExecutionEvent(m: EventSourceMessage): ExecutionEvent | null {
  let data: unknown;
  try {
    data = JSON.parse(m.data);
  } catch {
    return null;
  }
  const d = (data ?? {}) as Record<string, unknown>;
  const id = m.id || undefined;
  const withId = <T extends object>(e: T) => (id ? { ...e, id } : e);
  switch (m.event) {
    case "status":
      return withId({ type: "status" as const, status: d.status as ExecutionStatus });
    case "stdout":
    case "stderr":
      return withId({ type: m.event, text: String(d.text ?? "") });
    case "output":
      return withId({ type: "output" as const, output: d.output as ExecutionOutput });
    case "file":
      return withId({ type: "file" as const, file: d.file as Omit<GeneratedFile, "url"> });
    case "done":
      return withId({ type: "done" as const, execution: data as Execution });
    default:
      return null;
  }
}

/**
 * Reads one SSE response body and yields its events in order. Stops (and releases the body) when the
 * consumer stops iterating.
 */
export async function* readEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<ExecutionEvent> {
  const pending: ExecutionEvent[] = [];
  const parser = createParser({
    onEvent(m) {
      const e = toExecutionEvent(m);
      if (e) pending.push(e);
    },
  });
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
      while (pending.length > 0) yield pending.shift()!;
    }
    parser.feed(decoder.decode());
    while (pending.length > 0) yield pending.shift()!;
  } finally {
    // The stream is over either way; cancelling only frees the connection sooner.
    await reader.cancel().catch(() => undefined);
  }
}
