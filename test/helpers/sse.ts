import { createParser } from "eventsource-parser";

export interface SseEvent {
  event: string;
  id?: string;
  data: unknown;
  at: number;
}

/** Reads a Server-Sent Events response until it ends (or `until` says stop), recording when each arrived. */
export async function readSse(
  url: string,
  key: string,
  opts: { headers?: Record<string, string>; until?: (e: SseEvent) => boolean } = {},
): Promise<SseEvent[]> {
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${key}`, accept: "text/event-stream", ...opts.headers },
  });
  if (res.status !== 200 || !res.body) throw new Error(`SSE answered ${res.status}`);
  const events: SseEvent[] = [];
  let stop = false;
  const parser = createParser({
    onEvent(message) {
      if (stop || !message.event) return;
      const ev: SseEvent = {
        event: message.event,
        data: JSON.parse(message.data),
        at: Date.now(),
        ...(message.id ? { id: message.id } : {}),
      };
      events.push(ev);
      if (opts.until?.(ev)) stop = true;
    },
  });
  const decoder = new TextDecoder();
  const reader = res.body.getReader();
  while (!stop) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  if (stop) await reader.cancel();
  return events;
}
