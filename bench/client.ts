// HTTP helpers the bench uses against the API: submit + long-poll, and Server-Sent Events over node:http
// (an agent without a socket limit, so 1,000 subscribers really are 1,000 connections).
import http from "node:http";
import { now } from "./stats";

export interface Execution {
  id: string;
  status: string;
  messageId: string;
  result: { stdout: string; stderr: string; error: unknown; notes?: string[] } | null;
  files: unknown[];
}

export function apiClient(baseUrl: string, key: string) {
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  return {
    async submit(body: Record<string, unknown>): Promise<Execution> {
      const res = await fetch(`${baseUrl}/v1/executions`, {
        method: "POST",
        headers,
        body: JSON.stringify({ chatId: "bench", ...body }),
      });
      if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as Execution;
    },
    async get(id: string, waitMs = 0): Promise<Execution> {
      const res = await fetch(`${baseUrl}/v1/executions/${id}${waitMs ? `?waitMs=${waitMs}` : ""}`, { headers });
      if (res.status !== 200) throw new Error(`GET execution answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as Execution;
    },
    /** Uploads a file as this key's user; returns its id. */
    async upload(name: string, body: string, type: string): Promise<string> {
      const form = new FormData();
      form.append("file", new Blob([body], { type }), name);
      const res = await fetch(`${baseUrl}/v1/files`, {
        method: "POST",
        headers: { authorization: headers.authorization },
        body: form,
        signal: AbortSignal.timeout(30_000),
      });
      if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
      return ((await res.json()) as { id: string }).id;
    },
    /** Submit, then long-poll until terminal. Returns the execution and submit→terminal ms. */
    async run(
      body: Record<string, unknown>,
      waitMs = 120_000,
    ): Promise<{ exec: Execution; ms: number; wall: { submit: number; posted: number; end: number } }> {
      const t0 = now();
      const submit = Date.now();
      const created = await this.submit(body);
      const posted = Date.now();
      const exec = await this.untilEnded(created, waitMs);
      return { exec, ms: now() - t0, wall: { submit, posted, end: Date.now() } };
    },
    /**
     * Submit and wait in one request (`POST ?waitMs`); an API that answers 202 first (still running, or one
     * that does not wait on submit) is long-polled as `run` does. Same result shape as `run`.
     */
    async runWaiting(
      body: Record<string, unknown>,
      waitMs = 120_000,
    ): Promise<{ exec: Execution; ms: number; wall: { submit: number; posted: number; end: number } }> {
      const t0 = now();
      const submit = Date.now();
      const res = await fetch(`${baseUrl}/v1/executions?waitMs=${waitMs}`, {
        method: "POST",
        headers,
        body: JSON.stringify({ chatId: "bench", ...body }),
      });
      if (res.status !== 200 && res.status !== 202)
        throw new Error(`submit answered ${res.status}: ${await res.text()}`);
      const answered = (await res.json()) as Execution;
      const posted = Date.now();
      const exec = await this.untilEnded(answered, waitMs);
      return { exec, ms: now() - t0, wall: { submit, posted, end: Date.now() } };
    },
    /** Long-polls an execution not ended yet until it is; ten long-polls without an end is an error, not a longer wait. */
    async untilEnded(exec: Execution, waitMs: number): Promise<Execution> {
      for (let polls = 0; !isTerminal(exec.status); polls++) {
        if (polls >= 10) throw new Error(`execution ${exec.id} still ${exec.status} after ${polls} long-polls`);
        exec = await this.get(exec.id, waitMs);
      }
      return exec;
    },
    /**
     * Submit, then long-poll until terminal or the deadline (Date.now() ms); one past its deadline is
     * cancelled and returned as it stood (timedOut). Never loops past the deadline.
     */
    async runBounded(
      body: Record<string, unknown>,
      deadline: number,
    ): Promise<{ exec: Execution; ms: number; timedOut: boolean }> {
      const t0 = now();
      const created = await this.submit(body);
      let exec = created;
      while (!isTerminal(exec.status)) {
        const left = deadline - Date.now();
        if (left <= 0) {
          await fetch(`${baseUrl}/v1/executions/${created.id}/cancel`, { method: "POST", headers }).catch(
            () => undefined,
          );
          return { exec, ms: now() - t0, timedOut: true };
        }
        exec = await this.get(created.id, Math.max(1, Math.min(left, 30_000)));
      }
      return { exec, ms: now() - t0, timedOut: false };
    },
    /** Submit, then follow /events until `done`. Returns submit→done ms. */
    async runSse(body: Record<string, unknown>): Promise<{ id: string; ms: number; done: boolean }> {
      const t0 = now();
      const created = await this.submit(body);
      const r = await sse(baseUrl, key, created.id, agent);
      return { id: created.id, ms: now() - t0, done: r.done };
    },
  };
}

export const isTerminal = (s: string) => ["completed", "failed", "timed_out", "cancelled"].includes(s);

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

export interface SseOutcome {
  /** Got the response headers and a first event. */
  connected: boolean;
  done: boolean;
  doneStatus?: string;
  error?: string;
  connectedAt?: number;
  doneAt?: number;
}

/**
 * Follows one execution's event stream until `done` or the stream ends. `onConnected` fires on the first
 * event. Resolves, never rejects.
 */
export function sse(
  baseUrl: string,
  key: string,
  id: string,
  httpAgent: http.Agent,
  onConnected?: () => void,
  timeoutMs = 180_000,
): Promise<SseOutcome> {
  return new Promise((resolve) => {
    const out: SseOutcome = { connected: false, done: false };
    let finished = false;
    const end = (error?: string) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (error && !out.done) out.error = error;
      req.destroy();
      resolve(out);
    };
    const timer = setTimeout(() => end("timeout"), timeoutMs);
    const url = new URL(`${baseUrl}/v1/executions/${id}/events`);
    const req = http.get(
      url,
      { agent: httpAgent, headers: { authorization: `Bearer ${key}`, accept: "text/event-stream" } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return end(`HTTP ${res.statusCode}`);
        }
        res.setEncoding("utf8");
        let buf = "";
        res.on("data", (chunk: string) => {
          buf += chunk;
          let sep: number;
          while ((sep = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, sep);
            buf = buf.slice(sep + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            if (!event) continue;
            if (!out.connected) {
              out.connected = true;
              out.connectedAt = now();
              onConnected?.();
            }
            if (event === "done") {
              out.done = true;
              out.doneAt = now();
              try {
                out.doneStatus = (JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "{}") as { status?: string }).status;
              } catch {
                // keep done without status
              }
              return end();
            }
          }
        });
        res.on("end", () => end("stream ended before done"));
        res.on("error", (err) => end(err.message));
      },
    );
    req.on("error", (err) => end(err.message));
  });
}
