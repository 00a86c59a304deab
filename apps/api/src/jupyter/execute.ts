import { readFile } from "node:fs/promises";
import { withLocalBlob } from "@codeinterp/workspace";
import { findFile } from "@codeinterp/db";
import type { ExecutionWithFiles } from "@codeinterp/db";
import { normalizeError } from "@codeinterp/logger";
import type { ExecutionRecord, StoredKernelError } from "@codeinterp/queue";
import type { ApiDeps } from "../deps";
import { InvalidCodeError, readExecution, submitAndWait } from "../executions/service";
import { defaultLinkTtlS, signedUrl } from "../links/urls";
import type { FacadeKernel, KernelStore } from "./kernels";
import { JUPYTER_CHAT_ID } from "./kernels";
import { bundlesOf, endsWithExpression } from "./outputs";
import type { Header, ServerMessage } from "./protocol";

/** What one websocket connection shares with the requests it serves. */
export interface ChannelContext {
  deps: ApiDeps;
  store: KernelStore;
  kernel: FacadeKernel;
  /** The "kernel session" id stamped on every message this connection sends. */
  session: string;
  /** Prefix of file download links (scheme and host). */
  linkBase: string;
  /** Aborted when the websocket closes: nobody is left to tell the outcome to. */
  closed: AbortSignal;
  send(channel: ServerMessage["channel"], msgType: string, parent: Header, content: Record<string, unknown>): void;
}

/** Status checks while waiting, in case a `done` event was lost with a Redis blip. */
const TERMINAL_POLL_MS = 2000;

type Content = Record<string, unknown>;
type ErrorContent = StoredKernelError;
type Finished = ExecutionWithFiles & { record: ExecutionRecord };

/**
 * One execute_request as an execution of the kernel's message, through the same pipeline as /v1: busy,
 * execute_input, the streams as the worker publishes them, then (from the stored result) the rich
 * outputs, the error, the files the code wrote, the execute_reply and idle.
 */
export async function serveExecute(ctx: ChannelContext, parent: Header, content: Content): Promise<"ok" | "error"> {
  const { deps, kernel } = ctx;
  const code = typeof content.code === "string" ? content.code : null;
  const silent = content.silent === true;
  let count = 0;
  ctx.send("iopub", "status", parent, { execution_state: "busy" });
  try {
    count = await ctx.store.touch(kernel.id, { execute: !silent });
    if (code === null)
      return replyError(ctx, parent, count, {
        ename: "ValueError",
        evalue: "execute_request needs content.code (a string)",
        traceback: [],
      });
    if (!silent) ctx.send("iopub", "execute_input", parent, { code, execution_count: count });
    if (Buffer.byteLength(code) > deps.env.MAX_CODE_BYTES) {
      return replyError(ctx, parent, count, {
        ename: "ValueError",
        evalue: `code is larger than ${deps.env.MAX_CODE_BYTES} bytes`,
        traceback: [],
      });
    }
    if (!code.trim()) {
      ctx.send("shell", "execute_reply", parent, okReply(count));
      return "ok";
    }
    const final = await runThroughPipeline(ctx, code, (name, text) => {
      if (!silent) ctx.send("iopub", "stream", parent, { name, text });
    });
    if (ctx.closed.aborted) return "error";
    if (!final)
      return replyError(ctx, parent, count, {
        ename: "RuntimeError",
        evalue: "the execution record is gone",
        traceback: [],
      });
    if (!silent) {
      await sendOutputs(ctx, parent, code, count, final);
      sendFileLinks(ctx, parent, final);
    }
    const error = errorOf(final);
    if (error) return replyError(ctx, parent, count, error);
    ctx.send("shell", "execute_reply", parent, okReply(count));
    return "ok";
  } catch (err) {
    // What Python itself answers for such source.
    if (err instanceof InvalidCodeError) return replyError(ctx, parent, count, syntaxError(err.message));
    deps.log.warn(
      { err: normalizeError(err), kernelId: kernel.id, messageId: kernel.messageId },
      "jupyter execute_request failed",
    );
    return replyError(ctx, parent, count, {
      ename: "RuntimeError",
      evalue: "codeinterp could not run this request; try again",
      traceback: [],
    });
  } finally {
    ctx.send("iopub", "status", parent, { execution_state: "idle" });
  }
}

function syntaxError(evalue: string): ErrorContent {
  return { ename: "SyntaxError", evalue, traceback: [`SyntaxError: ${evalue}`] };
}

function okReply(count: number): Content {
  return { status: "ok", execution_count: count, user_expressions: {}, payload: [] };
}

function replyError(ctx: ChannelContext, parent: Header, count: number, error: ErrorContent): "error" {
  ctx.send("iopub", "error", parent, { ...error });
  ctx.send("shell", "execute_reply", parent, { status: "error", execution_count: count, ...error });
  return "error";
}

/** Submits the execution, relays its live streams, and returns it once it is over. */
async function runThroughPipeline(
  ctx: ChannelContext,
  code: string,
  onStream: (name: "stdout" | "stderr", text: string) => void,
): Promise<Finished | null> {
  const { deps, kernel } = ctx;
  const sent = { stdout: 0, stderr: 0 };
  try {
    const { final } = await submitAndWait(
      deps,
      {
        userId: kernel.userId,
        chatId: JUPYTER_CHAT_ID,
        messageId: kernel.messageId,
        code,
        timeoutMs: deps.env.EXECUTION_TIMEOUT_MS,
      },
      { ms: Number.POSITIVE_INFINITY, signal: ctx.closed, recheckMs: TERMINAL_POLL_MS },
      {
        logFields: { kernelId: kernel.id },
        logMessage: "jupyter execution accepted",
        onEvent: (event) => {
          if (event.type === "stdout" || event.type === "stderr") {
            sent[event.type] += event.text.length;
            onStream(event.type, event.text);
          }
        },
        beforeEnqueue: (e) => ctx.store.setRunning(kernel.id, e.id),
      },
    );
    if (!final) return null;
    const record = readExecution(final);
    // Stream events are best effort: whatever the live relay missed comes from the stored result.
    for (const name of ["stdout", "stderr"] as const) {
      const text = record.result?.[name] ?? "";
      if (text.length > sent[name]) onStream(name, text.slice(sent[name]));
    }
    return { ...final, record };
  } finally {
    // The running mark is advisory and expires with the kernel's facade record.
    await ctx.store.setRunning(kernel.id, null).catch(() => undefined);
  }
}

async function sendOutputs(
  ctx: ChannelContext,
  parent: Header,
  code: string,
  count: number,
  final: Finished,
): Promise<void> {
  const outputs = final.record.result?.outputs ?? [];
  const bundles = bundlesOf(outputs);
  // The last non-image bundle of a cell ending in an expression is its value (see endsWithExpression).
  const resultIndex = endsWithExpression(code) ? bundles.findLastIndex((b) => !b.image) : -1;
  for (const [i, bundle] of bundles.entries()) {
    const data: Record<string, string> = {};
    for (const o of bundle.entries) {
      const value = o.fileId ? await fileData(ctx, o.fileId, o.type) : o.data;
      if (value !== null && value !== undefined) data[o.type] = value;
    }
    if (Object.keys(data).length === 0) continue;
    if (i === resultIndex) ctx.send("iopub", "execute_result", parent, { execution_count: count, data, metadata: {} });
    else ctx.send("iopub", "display_data", parent, { data, metadata: {}, transient: {} });
  }
}

/** An image stored as a file, back as the base64 (or SVG text) a Jupyter client expects. */
async function fileData(ctx: ChannelContext, fileId: string, type: string): Promise<string | null> {
  const file = await findFile(ctx.deps.db, ctx.kernel.userId, fileId);
  if (!file) return null;
  const bytes = await withLocalBlob(ctx.deps.blobs, file.storageKey, (p) => readFile(p));
  return type === "image/svg+xml" ? bytes.toString("utf8") : bytes.toString("base64");
}

function errorOf(final: Finished): ErrorContent | null {
  const raised = final.record.result?.error ?? null;
  switch (final.status) {
    case "completed":
      return raised;
    case "cancelled":
      return (
        raised ?? {
          ename: "KeyboardInterrupt",
          evalue: "",
          traceback: ["KeyboardInterrupt: the execution was interrupted"],
        }
      );
    case "timed_out": {
      const evalue = `the execution ran longer than ${final.timeoutMs} ms and was stopped`;
      return { ename: "TimeoutError", evalue, traceback: [...(raised?.traceback ?? []), `TimeoutError: ${evalue}`] };
    }
    default: {
      const failure = final.record.failure;
      const evalue = failure?.message ?? "the execution failed";
      return {
        ename: failure?.code ?? "ExecutionFailed",
        evalue,
        traceback: [`${failure?.code ?? "ExecutionFailed"}: ${evalue}`],
      };
    }
  }
}

function sendFileLinks(ctx: ChannelContext, parent: Header, final: Finished): void {
  if (!ctx.deps.env.JUPYTER_FILE_LINKS || final.files.length === 0) return;
  // Signed links: the Jupyter client's user (an Open WebUI chat) has no codeinterp key to download with.
  const ttlS = defaultLinkTtlS(ctx.deps.env);
  const lines = final.files.map(
    (f) => `- ${f.path ?? f.name}: ${signedUrl(ctx.deps.links, ctx.linkBase, f, ttlS).url}`,
  );
  const valid = ttlS >= 7200 ? `${Math.round(ttlS / 3600)} hours` : `${Math.max(1, Math.round(ttlS / 60))} minutes`;
  const text = `\nFiles written to /mnt/data (download links valid for ${valid}):\n${lines.join("\n")}\n`;
  ctx.send("iopub", "stream", parent, { name: "stdout", text });
}
