import { describe, expect, it } from "vitest";
import { CodeinterpApiError, CodeinterpTimeoutError, createClient } from "../src/index";
import type { ExecutionEvent } from "../src/index";

const execution = (status: string) => ({
  id: "e1",
  chatId: "c",
  messageId: "m",
  status,
  createdAt: "",
  startedAt: null,
  finishedAt: null,
  result: null,
  files: [],
});

/** A body that delivers the given chunks, then either ends or fails. */
function body(chunks: Array<string | Uint8Array>, fail = false): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < chunks.length) {
        const c = chunks[i++]!;
        controller.enqueue(typeof c === "string" ? enc.encode(c) : c);
      } else if (fail) controller.error(new TypeError("network error"));
      else controller.close();
    },
  });
}

function fakeFetch(handler: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  const fetch = async (url: string, init: RequestInit = {}) => {
    calls.push({ url, init });
    return handler(url, init);
  };
  return { fetch, calls };
}

const header = (init: RequestInit, name: string) => (init.headers as Record<string, string>)[name];

describe("createClient", () => {
  it("sends the key, joins the base URL and encodes ids", async () => {
    const { fetch, calls } = fakeFetch(() => Response.json({ chatId: "a/b", totalFiles: 0, messages: {} }));
    const c = createClient({ baseUrl: "http://x:1/", apiKey: "k", fetch });
    await c.listChatFiles("a/b");
    expect(calls[0]!.url).toBe("http://x:1/v1/chats/a%2Fb/files");
    expect(header(calls[0]!.init, "authorization")).toBe("Bearer k");
  });

  it("turns error bodies into CodeinterpApiError, and non-JSON ones too", async () => {
    let n = 0;
    const { fetch } = fakeFetch(() =>
      n++ === 0
        ? Response.json({ error: { code: "not_found", message: "file not found" } }, { status: 404 })
        : new Response("Bad Gateway", { status: 502, statusText: "Bad Gateway" }),
    );
    const c = createClient({ baseUrl: "", apiKey: "k", fetch });
    const a = await c.getFile("f").catch((e: unknown) => e);
    expect(a).toBeInstanceOf(CodeinterpApiError);
    expect(a).toMatchObject({ status: 404, code: "not_found", message: "file not found" });
    const b = await c.getFile("f").catch((e: unknown) => e);
    expect(b).toMatchObject({ status: 502, code: "http_502", message: "Bad Gateway" });
  });

  it("parses SSE split at any byte, and resumes with Last-Event-ID when the stream breaks before done", async () => {
    const first =
      'id: 1-0\nevent: status\ndata: {"status":"running"}\n\nid: 1-1\nevent: stdout\ndata: {"text":"h\u00e9llo\\n"}\n\n: keep-alive\n\n';
    const second = `id: 1-2\nevent: output\ndata: {"output":{"type":"image/png","fileId":"f1"}}\n\nevent: done\ndata: ${JSON.stringify(execution("completed"))}\n\n`;
    let n = 0;
    const { fetch, calls } = fakeFetch(() => {
      n++;
      // One byte at a time (the two bytes of é arrive apart), and the first connection fails midway.
      const chunks =
        n === 1
          ? [...new TextEncoder().encode(first)].map((b) => Uint8Array.of(b))
          : [second.slice(0, 7), second.slice(7)];
      return new Response(body(chunks, n === 1), { headers: { "content-type": "text/event-stream" } });
    });
    const c = createClient({ baseUrl: "", apiKey: "k", fetch });
    const events: ExecutionEvent[] = [];
    for await (const e of c.stream("e1")) events.push(e);
    expect(events.map((e) => e.type)).toEqual(["status", "stdout", "output", "done"]);
    expect(events[1]).toEqual({ type: "stdout", id: "1-1", text: "héllo\n" });
    expect(events[2]).toEqual({ type: "output", id: "1-2", output: { type: "image/png", fileId: "f1" } });
    expect(calls).toHaveLength(2);
    expect(header(calls[1]!.init, "last-event-id")).toBe("1-1");
  });

  it("does not retry a stream the server refuses", async () => {
    const { fetch, calls } = fakeFetch(() =>
      Response.json({ error: { code: "not_found", message: "execution not found" } }, { status: 404 }),
    );
    const c = createClient({ baseUrl: "", apiKey: "k", fetch });
    const err = await (async () => {
      for await (const _ of c.stream("nope")) void _;
    })().catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 404 });
    expect(calls).toHaveLength(1);
  });

  it("wait long-polls until a terminal status, and times out with the last state", async () => {
    const statuses = ["queued", "running", "completed"];
    const { fetch, calls } = fakeFetch(() => Response.json(execution(statuses.shift() ?? "completed")));
    const c = createClient({ baseUrl: "", apiKey: "k", fetch });
    expect((await c.wait("e1", { pollMs: 1000 })).status).toBe("completed");
    expect(calls.map((x) => new URL(x.url, "http://h").searchParams.get("waitMs"))).toEqual(["1000", "1000", "1000"]);

    const slow = fakeFetch(() => Response.json(execution("running")));
    const err = await createClient({ baseUrl: "", apiKey: "k", fetch: slow.fetch })
      .wait("e1", { timeoutMs: 300 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodeinterpTimeoutError);
    expect((err as CodeinterpTimeoutError).execution?.status).toBe("running");
  });

  it("uploads bytes as multipart field `file` with the name", async () => {
    const { fetch, calls } = fakeFetch(() =>
      Response.json(
        { id: "f", name: "a.csv", size: 3, sha256: "", mimeType: "text/csv", createdAt: "" },
        { status: 201 },
      ),
    );
    const c = createClient({ baseUrl: "", apiKey: "k", fetch });
    await c.uploadFile(new Uint8Array([97, 44, 98]), "a.csv", { mimeType: "text/csv" });
    const form = calls[0]!.init.body as FormData;
    const file = form.get("file") as File;
    expect(file.name).toBe("a.csv");
    expect(file.type).toBe("text/csv");
    expect(await file.text()).toBe("a,b");
  });
});
