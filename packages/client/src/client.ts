import { apiErrorFrom, CodeinterpApiError, CodeinterpTimeoutError } from "./errors";
import { readEventStream } from "./sse";
import type {
  ChatFiles,
  ExecuteRequest,
  Execution,
  ExecutionEvent,
  FileInfo,
  FileMetadata,
  MessageContext,
  MessageFiles,
  RewrittenText,
  SignedLink,
} from "./types";
import { isTerminalStatus } from "./types";

type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** Where the API is, e.g. `http://localhost:8080`; `""` means the current origin (browsers). */
  baseUrl: string;
  apiKey: string;
  /**
   * With a tenant key: the end user every request acts for (sent as `X-End-User`); each end user is a
   * codeinterp user of its own under the tenant. A user key must leave it unset (403 otherwise).
   */
  endUser?: string;
  /** Defaults to the global fetch (Node 20+, browsers). */
  fetch?: FetchLike;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
}

/** What can be uploaded: a Blob/File, or raw bytes (a Node Buffer is a Uint8Array). */
export type UploadData = Blob | ArrayBuffer | ArrayBufferView;

export interface UploadOptions {
  /** Sent as the part's Content-Type; the server also guesses from the name. */
  mimeType?: string;
  signal?: AbortSignal;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface WaitOptions extends RequestOptions {
  /** Give up (CodeinterpTimeoutError) after this long; default: no limit. */
  timeoutMs?: number;
  /** Longest single long-poll request; default 25 s (the server caps it at its MAX_WAIT_MS). */
  pollMs?: number;
}

export interface StreamOptions extends RequestOptions {
  /** Resume after this event id (`Last-Event-ID`). */
  lastEventId?: string;
  /** How often to reconnect when the stream breaks before `done`; default 5. */
  maxReconnects?: number;
}

export interface Download {
  /** The original file name (from Content-Disposition). */
  name: string | null;
  mimeType: string | null;
  size: number | null;
  body: ReadableStream<Uint8Array>;
}

export interface CodeinterpClient {
  readonly baseUrl: string;
  uploadFile(data: UploadData, name: string, opts?: UploadOptions): Promise<FileInfo>;
  getFile(id: string, opts?: RequestOptions): Promise<FileMetadata>;
  /** The caller's uploads with this content (sha256 hex), and this name if given, newest first. */
  findFiles(query: { sha256: string; name?: string }, opts?: RequestOptions): Promise<FileInfo[]>;
  /** The whole content of a file. */
  downloadFile(id: string, opts?: RequestOptions): Promise<ArrayBuffer>;
  /** The content as a stream, with the name and type the server gave. */
  downloadFileStream(id: string, opts?: RequestOptions): Promise<Download>;
  /** Absolute URL of a file's content (needs the Authorization header: not for <img src>). */
  fileContentUrl(id: string): string;
  deleteFile(id: string, opts?: RequestOptions): Promise<void>;
  execute(req: ExecuteRequest, opts?: RequestOptions): Promise<Execution>;
  getExecution(id: string, opts?: RequestOptions & { waitMs?: number }): Promise<Execution>;
  /** Long-polls until the execution ends (or `timeoutMs` passes: CodeinterpTimeoutError). */
  wait(id: string, opts?: WaitOptions): Promise<Execution>;
  /** `execute` then `wait`. */
  run(req: ExecuteRequest, opts?: WaitOptions): Promise<Execution>;
  /** Server-Sent Events of an execution, reconnecting with Last-Event-ID, ending after `done`. */
  stream(id: string, opts?: StreamOptions): AsyncIterable<ExecutionEvent>;
  cancel(id: string, opts?: RequestOptions): Promise<Execution>;
  listMessageFiles(messageId: string, opts?: RequestOptions): Promise<MessageFiles>;
  listChatFiles(chatId: string, opts?: RequestOptions): Promise<ChatFiles>;
  messageContext(messageId: string, opts?: RequestOptions): Promise<MessageContext>;
  /** A signed link to a file: opens in a browser, an <img> or another program without the API key. */
  createLink(fileId: string, opts?: LinkOptions): Promise<SignedLink>;
  /** Model text with `sandbox:/mnt/data/...` and `/mnt/data/...` links turned into the message's signed links. */
  rewriteLinks(messageId: string, text: string, opts?: LinkOptions): Promise<RewrittenText>;
}

export interface LinkOptions extends RequestOptions {
  /** Lifetime in seconds (the server caps it); default the server's SIGNED_LINK_TTL_S. */
  expiresIn?: number;
}

const enc = encodeURIComponent;
// Not node:timers/promises: this client also runs in browsers (the playground bundles it).
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });

type BlobInput = ConstructorParameters<typeof Blob>[0] extends Iterable<infer P> | undefined ? P : never;

function toBytes(data: ArrayBuffer | ArrayBufferView): BlobInput {
  const view =
    data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- needed under the playground's DOM lib
  return view as unknown as BlobInput;
}

/** Parses `attachment; filename="a.csv"; filename*=UTF-8''a%20b.csv` (filename* wins). */
export function filenameFromContentDisposition(header: string | null): string | null {
  if (!header) return null;
  const star = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (star?.[2]) {
    try {
      return decodeURIComponent(star[2].trim());
    } catch {
      // fall through to the plain parameter
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))/i.exec(header);
  if (plain) return (plain[1] !== undefined ? plain[1].replace(/\\(.)/g, "$1") : (plain[2] ?? "").trim()) || null;
  return null;
}

export function createClient(options: ClientOptions): CodeinterpClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const doFetch: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const auth = {
    authorization: `Bearer ${options.apiKey}`,
    ...(options.endUser !== undefined ? { "x-end-user": options.endUser } : {}),
    ...options.headers,
  };

  async function request(
    method: string,
    path: string,
    init: { body?: RequestInit["body"]; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<Response> {
    const res = await doFetch(`${baseUrl}${path}`, {
      method,
      headers: { ...auth, ...init.headers },
      body: init.body,
      signal: init.signal,
    });
    if (!res.ok) throw apiErrorFrom(res.status, res.statusText, await res.text().catch(() => ""));
    return res;
  }

  async function json<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const res = await request(method, path, {
      ...(body !== undefined ? { body: JSON.stringify(body), headers: { "content-type": "application/json" } } : {}),
      signal,
    });
    return (await res.json()) as T;
  }

  const client: CodeinterpClient = {
    baseUrl,

    async uploadFile(data, name, opts = {}) {
      const blob =
        data instanceof Blob ? data : new Blob([toBytes(data)], opts.mimeType ? { type: opts.mimeType } : {});
      const form = new FormData();
      form.append(
        "file",
        opts.mimeType && blob.type !== opts.mimeType ? new Blob([blob], { type: opts.mimeType }) : blob,
        name,
      );
      const res = await request("POST", "/v1/files", { body: form, signal: opts.signal });
      return (await res.json()) as FileInfo;
    },

    getFile: (id, opts = {}) => json<FileMetadata>("GET", `/v1/files/${enc(id)}`, undefined, opts.signal),

    async findFiles(query, opts = {}) {
      const q = new URLSearchParams({
        sha256: query.sha256,
        ...(query.name !== undefined ? { name: query.name } : {}),
      });
      return (await json<{ files: FileInfo[] }>("GET", `/v1/files?${q.toString()}`, undefined, opts.signal)).files;
    },

    async downloadFile(id, opts = {}) {
      const res = await request("GET", `/v1/files/${enc(id)}/content`, { signal: opts.signal });
      return res.arrayBuffer();
    },

    async downloadFileStream(id, opts = {}) {
      const res = await request("GET", `/v1/files/${enc(id)}/content`, { signal: opts.signal });
      if (!res.body) throw new Error("download has no body");
      const length = res.headers.get("content-length");
      return {
        name: filenameFromContentDisposition(res.headers.get("content-disposition")),
        mimeType: res.headers.get("content-type"),
        size: length === null ? null : Number(length),
        body: res.body as ReadableStream<Uint8Array>,
      };
    },

    fileContentUrl: (id) => `${baseUrl}/v1/files/${enc(id)}/content`,

    async deleteFile(id, opts = {}) {
      await request("DELETE", `/v1/files/${enc(id)}`, { signal: opts.signal });
    },

    execute: (req, opts = {}) => json<Execution>("POST", "/v1/executions", req, opts.signal),

    getExecution(id, opts = {}) {
      const q = opts.waitMs !== undefined ? `?waitMs=${Math.max(0, Math.floor(opts.waitMs))}` : "";
      return json<Execution>("GET", `/v1/executions/${enc(id)}${q}`, undefined, opts.signal);
    },

    async wait(id, opts = {}) {
      const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
      const pollMs = opts.pollMs ?? 25_000;
      let last: Execution | null = null;
      for (;;) {
        const remaining = deadline - Date.now();
        if (remaining <= 0)
          throw new CodeinterpTimeoutError(`execution ${id} did not end within ${opts.timeoutMs} ms`, last);
        const before = Date.now();
        last = await client.getExecution(id, { waitMs: Math.min(pollMs, remaining), signal: opts.signal });
        if (isTerminalStatus(last.status)) return last;
        // A server that answers early (small MAX_WAIT_MS) must not turn this into a busy loop.
        if (Date.now() - before < 200) await sleep(Math.min(250, Math.max(0, deadline - Date.now())), opts.signal);
      }
    },

    async run(req, opts = {}) {
      const created = await client.execute(req, { signal: opts.signal });
      return client.wait(created.id, opts);
    },

    async *stream(id, opts = {}) {
      let lastEventId = opts.lastEventId;
      const maxReconnects = opts.maxReconnects ?? 5;
      let failures = 0;
      for (;;) {
        let res: Response;
        try {
          res = await request("GET", `/v1/executions/${enc(id)}/events`, {
            headers: { accept: "text/event-stream", ...(lastEventId ? { "last-event-id": lastEventId } : {}) },
            signal: opts.signal,
          });
        } catch (err) {
          // API errors (404, 401) are final; a network failure is retried like a broken stream.
          if (err instanceof CodeinterpApiError || opts.signal?.aborted || ++failures > maxReconnects) throw err;
          await sleep(Math.min(5000, 250 * 2 ** failures), opts.signal);
          continue;
        }
        if (!res.body) throw new Error("event stream has no body");
        try {
          for await (const event of readEventStream(res.body as ReadableStream<Uint8Array>)) {
            if (event.id) lastEventId = event.id;
            failures = 0;
            yield event;
            if (event.type === "done") return;
          }
        } catch (err) {
          if (opts.signal?.aborted || ++failures > maxReconnects) throw err;
          await sleep(Math.min(5000, 250 * 2 ** failures), opts.signal);
          continue;
        }
        // The server closed the stream before `done` (a restart, a proxy): resume after the last event.
        if (++failures > maxReconnects) throw new Error(`event stream of execution ${id} ended before done`);
        await sleep(Math.min(5000, 250 * 2 ** failures), opts.signal);
      }
    },

    cancel: (id, opts = {}) => json<Execution>("POST", `/v1/executions/${enc(id)}/cancel`, undefined, opts.signal),

    listMessageFiles: (messageId, opts = {}) =>
      json<MessageFiles>("GET", `/v1/messages/${enc(messageId)}/files`, undefined, opts.signal),

    listChatFiles: (chatId, opts = {}) =>
      json<ChatFiles>("GET", `/v1/chats/${enc(chatId)}/files`, undefined, opts.signal),

    messageContext: (messageId, opts = {}) =>
      json<MessageContext>("GET", `/v1/messages/${enc(messageId)}/context`, undefined, opts.signal),

    createLink: (fileId, opts = {}) =>
      json<SignedLink>(
        "POST",
        `/v1/files/${enc(fileId)}/links`,
        opts.expiresIn !== undefined ? { expiresIn: opts.expiresIn } : {},
        opts.signal,
      ),

    rewriteLinks: (messageId, text, opts = {}) =>
      json<RewrittenText>(
        "POST",
        `/v1/messages/${enc(messageId)}/links`,
        { text, ...(opts.expiresIn !== undefined ? { expiresIn: opts.expiresIn } : {}) },
        opts.signal,
      ),
  };
  return client;
}
