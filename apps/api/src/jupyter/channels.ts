import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { randomUUID } from "node:crypto";
import { WebSocketServer } from "ws";
import type { RawData, WebSocket } from "ws";
import { normalizeError } from "@codeinterp/logger";
import type { ApiDeps } from "../deps";
import { identify } from "./auth";
import type { ChannelContext } from "./execute";
import { serveExecute } from "./execute";
import type { FacadeKernel } from "./kernels";
import type { JupyterServices } from "./services";
import { parseFrame, reply, serialize, V1_PROTOCOL, MalformedFrameError } from "./protocol";
import type { ClientMessage, Header } from "./protocol";
import { kernelInfo, unservedReply } from "./replies";

const MAX_QUEUED_EXECUTIONS = 32;

/** A connection's execute_requests in order: how many came, and up to which one a failure aborts them. */
interface ShellQueue {
  enqueued: number;
  abortThrough: number;
}
const CHANNELS_PATH = /^\/jupyter\/api\/kernels\/([^/]+)\/channels\/?$/;

/**
 * The kernel websocket (`/jupyter/api/kernels/:id/channels`) on the API's HTTP server: authenticated and
 * checked against the kernel's owner before the upgrade (another user's kernel answers 404), then Jupyter
 * messages in both wire formats.
 */
export function attachJupyterChannels(server: Server, deps: ApiDeps, services: JupyterServices): () => void {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: deps.env.JUPYTER_MAX_MESSAGE_BYTES,
    // @jupyterlab/services offers the v1 binary protocol; Open WebUI (websockets) offers none: plain JSON.
    handleProtocols: (protocols) => (protocols.has(V1_PROTOCOL) ? V1_PROTOCOL : false),
  });
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = pathOf(req.url);
    if (!path?.startsWith("/jupyter/")) {
      // Nobody else serves websockets on this server.
      if (server.listenerCount("upgrade") === 1) refuse(socket, 404, "Not Found");
      return;
    }
    socket.on("error", () => undefined);
    const match = CHANNELS_PATH.exec(path);
    if (!match) return refuse(socket, 404, "Not Found");
    void authorize(req, match[1]!)
      .then((outcome) => {
        if (typeof outcome === "number")
          return refuse(
            socket,
            outcome,
            outcome === 401 ? "Unauthorized" : outcome === 403 ? "Forbidden" : "Not Found",
          );
        wss.handleUpgrade(req, socket, head, (ws) => serveConnection(ws, req, outcome));
      })
      .catch((err: unknown) => {
        deps.log.warn({ err: normalizeError(err) }, "jupyter websocket upgrade failed");
        refuse(socket, 503, "Service Unavailable");
      });
  };

  async function authorize(req: IncomingMessage, kernelId: string) {
    const caller = await identify(req, deps.db, services.sessions);
    if (!caller) return 401;
    // A browser page on another site must not ride a login cookie (Jupyter Server checks Origin too).
    const origin = req.headers.origin;
    if (caller.via === "cookie" && origin && safeHost(origin) !== req.headers.host) return 403;
    const kernel = await services.kernels.get(caller.userId, kernelId);
    return kernel ?? 404;
  }

  function serveConnection(ws: WebSocket, req: IncomingMessage, kernel: FacadeKernel) {
    const protocol = ws.protocol;
    const log = deps.log.child({ kernelId: kernel.id, messageId: kernel.messageId });
    const linkBase = (
      deps.env.JUPYTER_FILE_LINK_BASE_URL ??
      deps.env.PUBLIC_URL ??
      `http://${req.headers.host ?? "localhost"}`
    ).replace(/\/+$/, "");
    const closed = new AbortController();
    const ctx: ChannelContext & { queue: ShellQueue } = {
      queue: { enqueued: 0, abortThrough: 0 },
      deps,
      closed: closed.signal,
      store: services.kernels,
      kernel,
      session: randomUUID(),
      linkBase,
      send(channel, msgType, parent, content) {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(serialize(reply(ctx.session, channel, msgType, parent, content), protocol));
      },
    };
    services.track(kernel.id, ws);
    log.debug({ protocol: protocol || "json" }, "jupyter websocket opened");
    // Executions run one after another, as a kernel runs them; a client may queue only so many.
    let shellQueue: Promise<void> = Promise.resolve();
    let queued = 0;
    ws.on("error", (err) => log.info({ err: err.message }, "jupyter websocket error"));
    ws.on("close", () => {
      closed.abort();
      services.untrack(kernel.id, ws);
    });
    ws.on("message", (data: RawData, isBinary: boolean) => {
      let msg: ClientMessage;
      try {
        msg = parseFrame(toBuffer(data), isBinary, protocol);
      } catch (err) {
        const reason = err instanceof MalformedFrameError ? err.message : "malformed frame";
        log.info({ reason }, "closing a jupyter websocket after a malformed frame");
        ws.close(1007, reason.slice(0, 120));
        return;
      }
      const work = dispatch(ctx, msg, services);
      // A request is answered even when serving it failed (Redis or Postgres away): an error reply.
      const failed = (err: unknown) => {
        log.warn({ err: normalizeError(err), msgType: msg.header.msg_type }, "jupyter request failed");
        const type = msg.header.msg_type;
        if (!type.endsWith("_request")) return;
        const error = {
          status: "error",
          ename: "RuntimeError",
          evalue: "codeinterp could not serve this request; try again",
          traceback: [],
        };
        withStatus(ctx, msg.header, () =>
          ctx.send(msg.channel, type.replace(/_request$/, "_reply"), msg.header, error),
        );
      };
      if (msg.header.msg_type === "execute_request") {
        if (queued >= MAX_QUEUED_EXECUTIONS) {
          const error = {
            ename: "RuntimeError",
            evalue: `more than ${MAX_QUEUED_EXECUTIONS} executions are waiting on this connection`,
            traceback: [],
          };
          withStatus(ctx, msg.header, () =>
            ctx.send("shell", "execute_reply", msg.header, { status: "error", execution_count: 0, ...error }),
          );
          return;
        }
        queued++;
        shellQueue = shellQueue
          .then(work)
          .catch(failed)
          .finally(() => queued--);
      } else {
        void work().catch(failed);
      }
    });
  }

  server.on("upgrade", onUpgrade);
  return () => {
    server.off("upgrade", onUpgrade);
    for (const ws of wss.clients) ws.terminate();
    wss.close();
  };
}

/** The handler of one client message, to run now or after the executions before it. */
function dispatch(
  ctx: ChannelContext & { queue: ShellQueue },
  msg: ClientMessage,
  services: JupyterServices,
): () => Promise<void> {
  const { header, content, channel } = msg;
  const type = header.msg_type;
  // Its place among this connection's execute_requests (0 for other messages).
  const seq = type === "execute_request" ? ++ctx.queue.enqueued : 0;
  return async () => {
    if (channel === "iopub" || channel === "stdin") return; // input_reply and the like: nothing waits for us
    if (ctx.closed.aborted) return; // queued behind an execution, and the client has gone
    if (type === "execute_request") {
      if (seq <= ctx.queue.abortThrough) {
        return withStatus(ctx, header, () =>
          ctx.send("shell", "execute_reply", header, { status: "aborted", execution_count: null }),
        );
      }
      // A kernel deleted meanwhile (through any API instance) runs nothing more.
      const current = await services.kernels.get(ctx.kernel.userId, ctx.kernel.id);
      if (!current) {
        withStatus(ctx, header, () =>
          ctx.send("shell", "execute_reply", header, {
            status: "error",
            ename: "DeadKernelError",
            evalue: "the kernel was shut down",
            traceback: [],
            execution_count: 0,
          }),
        );
        return;
      }
      const outcome = await serveExecute(ctx, header, content);
      // stop_on_error (the default): what the client queued behind a failed execution is aborted, as a kernel does.
      if (outcome === "error" && content.stop_on_error !== false) ctx.queue.abortThrough = ctx.queue.enqueued;
      return;
    }
    if (type === "interrupt_request") {
      await services.interrupt(ctx.kernel);
      return withStatus(ctx, header, () => ctx.send(channel, "interrupt_reply", header, { status: "ok" }));
    }
    if (type === "shutdown_request") {
      const restart = content.restart === true;
      if (restart) await services.restart(ctx.kernel);
      withStatus(ctx, header, () => ctx.send(channel, "shutdown_reply", header, { status: "ok", restart }));
      // After the reply: a shutdown closes this very socket.
      if (!restart) await services.shutdown(ctx.kernel);
      return;
    }
    if (type === "comm_open") {
      // No comm targets here: the kernel's answer to an unknown target is to close the comm.
      return withStatus(ctx, header, () =>
        ctx.send("iopub", "comm_close", header, { comm_id: String(content.comm_id ?? ""), data: {} }),
      );
    }
    if (type === "kernel_info_request")
      return withStatus(ctx, header, () => ctx.send(channel, "kernel_info_reply", header, kernelInfo()));
    if (!type.endsWith("_request")) return; // comm_msg, comm_close: nothing waits for an answer
    const answer = unservedReply(type, content);
    withStatus(ctx, header, () => ctx.send(channel, answer.type, header, answer.content));
  };
}

/** Every request is bracketed by busy and idle on iopub: clients wait for the idle before a request is done. */
function withStatus(ctx: ChannelContext, parent: Header, fn: () => void): void {
  ctx.send("iopub", "status", parent, { execution_state: "busy" });
  fn();
  ctx.send("iopub", "status", parent, { execution_state: "idle" });
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** A request target that is not a URL path (`GET http://[::1`...) must not throw in an event handler. */
function pathOf(url: string | undefined): string | null {
  try {
    return new URL(url ?? "/", "http://x").pathname;
  } catch {
    return null;
  }
}

function safeHost(origin: string): string | null {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
}

function refuse(socket: Duplex, status: number, text: string): void {
  const body = JSON.stringify({ message: text, reason: null });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
