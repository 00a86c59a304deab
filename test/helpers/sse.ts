export interface SseEvent {
  event: string;
  id?: string;
  data: unknown;
  at: number;
}

/** Reads a Server-Sent Events response until it ends (or `until` says stop), recording when each arrived. */
export async function readSse(url: string, key: string, opts: { headers?: Record<string, string>; until?: (e: SseEvent) => boolean } = {}): Promise<SseEvent[]> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${key}`, accept: "text/event-stream", ...opts.headers } });
  if (res.status !== 200 || !res.body) throw new Error(`SSE answered ${res.status}`);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buf = "";
  const reader = res.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let sep: number;
    while ((sep = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, sep);
      buf = buf.slice(sep + 2);
      const e: Partial<SseEvent> = { at: Date.now() };
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) e.event = line.slice(7);
        else if (line.startsWith("id: ")) e.id = line.slice(4);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (!e.event) continue;
      const ev = { ...e, data: JSON.parse(data.join("\n")) } as SseEvent;
      events.push(ev);
      if (opts.until?.(ev)) {
        await reader.cancel();
        return events;
      }
    }
  }
  return events;
}
