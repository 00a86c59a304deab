import { findFile, isTerminal } from "@codeinterp/db";
import type { ExecutionWithFiles } from "@codeinterp/db";
import type { ExecutionRecord } from "@codeinterp/queue";
import type { ApiDeps } from "../deps";
import { cancelExecution, readExecution, submitAndWait } from "../executions/service";
import type { Caller, Content, ToolResult } from "./results";
import { capText, fileEntry, fileLines, imageContent, linkLifetime } from "./results";
import { resolveSession } from "./sessions";
import type { McpSession } from "./sessions";

/** Beyond the code's own timeout: queue wait, kernel start and file capture. */
const EXEC_SLACK_MS = 120_000;
/** A progress notification at least this often while the code runs, so a client's timeout can be reset. */
const PROGRESS_EVERY_MS = 5_000;
/** Images inline in one result; more are links only (each is up to MCP_MAX_IMAGE_BYTES). */
const MAX_IMAGES = 8;
/** Output so far, in a progress message: its tail. */
const PROGRESS_TAIL_CHARS = 2_000;

export interface Progress {
  /** Sends a progress notification (only when the client gave a progress token). */
  report(progress: number, message: string): Promise<void>;
}

export interface ExecuteArgs {
  code: string;
  session_id?: string | undefined;
  timeout_seconds?: number | undefined;
}

/** One execute_code: the code run to its end in the session's kernel, as text, images and structured content. */
export async function executeCode(
  deps: ApiDeps,
  caller: Caller,
  args: ExecuteArgs,
  signal: AbortSignal,
  progress: Progress | null,
): Promise<ToolResult> {
  const session = await resolveSession(deps.db, caller.userId, args.session_id);
  const timeoutMs = Math.min(
    Math.max(Math.round((args.timeout_seconds ?? deps.env.EXECUTION_TIMEOUT_MS / 1000) * 1000), 1000),
    deps.env.MAX_EXECUTION_TIMEOUT_MS,
  );
  const final = await run(deps, caller, session, args.code, timeoutMs, signal, progress);
  if (!final) throw new Error("the execution record is gone");
  return render(deps, caller, session, final, readExecution(final));
}

async function run(
  deps: ApiDeps,
  caller: Caller,
  session: McpSession,
  code: string,
  timeoutMs: number,
  signal: AbortSignal,
  progress: Progress | null,
): Promise<ExecutionWithFiles | null> {
  let output = "";
  let step = 0;
  let lastSent = 0;
  const tick = () => {
    if (!progress) return;
    lastSent = Date.now();
    step++;
    const tail = output.length > PROGRESS_TAIL_CHARS ? `...${output.slice(-PROGRESS_TAIL_CHARS)}` : output;
    // Progress is advisory: a client that went away is noticed by the wait's signal, not here.
    void progress.report(step, tail ? `running; output so far:\n${tail}` : "running").catch(() => undefined);
  };
  const heartbeat = progress
    ? setInterval(() => Date.now() - lastSent >= PROGRESS_EVERY_MS && tick(), 1000)
    : undefined;
  try {
    const { execution, final } = await submitAndWait(
      deps,
      { userId: caller.userId, chatId: session.chatId, messageId: session.messageId, code, timeoutMs },
      { ms: timeoutMs + EXEC_SLACK_MS, signal, recheckMs: 5_000 },
      {
        logFields: { mcpSession: session.id },
        logMessage: "mcp execution accepted",
        onEvent: (event) => {
          if (event.type !== "stdout" && event.type !== "stderr") return;
          output += event.text;
          if (Date.now() - lastSent >= 1000) tick();
        },
      },
    );
    if (signal.aborted && final && !isTerminal(final.status)) {
      // The client gave up on the call: nobody is left to read the result.
      await cancelExecution(deps, execution);
    }
    return final;
  } finally {
    clearInterval(heartbeat);
  }
}

function errorText(e: ExecutionWithFiles, { result, failure }: ExecutionRecord): string | null {
  const parts: string[] = [];
  if (result?.error)
    parts.push(
      result.error.traceback.length > 0
        ? result.error.traceback.join("\n")
        : `${result.error.ename}: ${result.error.evalue}`,
    );
  if (e.status === "timed_out")
    parts.push(`TimeoutError: the code ran longer than ${e.timeoutMs / 1000} s and was stopped`);
  if (e.status === "cancelled") parts.push("The execution was cancelled");
  if (e.status === "failed") parts.push(`${failure?.code ?? "failed"}: ${failure?.message ?? "the execution failed"}`);
  if (!isTerminal(e.status)) parts.push("The execution is still running; it did not end in time to answer");
  return parts.length > 0 ? parts.join("\n") : null;
}

async function render(
  deps: ApiDeps,
  caller: Caller,
  session: McpSession,
  e: ExecutionWithFiles,
  record: ExecutionRecord,
): Promise<ToolResult> {
  const max = deps.env.MCP_MAX_OUTPUT_CHARS;
  const stdout = capText(record.result?.stdout ?? "", max);
  const stderr = capText(record.result?.stderr ?? "", max);
  const error = errorText(e, record);
  const files = e.files.map((f) => fileEntry(deps, caller, f));
  const lines = [
    `session_id: ${session.id}${session.isNew ? " (new session: pass it to keep variables and files)" : ""}`,
    `status: ${e.status}`,
  ];
  if (stdout) lines.push(`--- stdout ---\n${stdout.replace(/\n$/, "")}`);
  if (stderr) lines.push(`--- stderr ---\n${stderr.replace(/\n$/, "")}`);
  if (error) lines.push(`--- error ---\n${error}`);
  for (const note of record.result?.notes ?? []) lines.push(`note: ${note}`);
  for (const s of record.result?.skippedFiles ?? []) lines.push(`note: ${s.path} was not kept (${s.reason})`);
  if (files.length > 0)
    lines.push(
      `Files written to /mnt/data (download links valid for ${linkLifetime(deps.env)}; give the user these links):\n${fileLines(files)}`,
    );
  if (!stdout && !stderr && !error && files.length === 0) lines.push("(no output)");

  const images: Content[] = [];
  // Displayed images (plt.show(), display()) are stored outputs; saved ones are files in /mnt/data.
  for (const o of record.result?.outputs ?? []) {
    if (!o.fileId) continue;
    const f = await findFile(deps.db, caller.userId, o.fileId);
    const image = f ? await imageContent(deps, f) : null;
    if (image) images.push(image);
  }
  for (const f of e.files) {
    const image = await imageContent(deps, f);
    if (image) images.push(image);
  }
  if (images.length > MAX_IMAGES) {
    lines.push(`note: ${images.length - MAX_IMAGES} more images are not shown inline; their files have links above`);
    images.length = MAX_IMAGES;
  }
  const structured: Record<string, unknown> = {
    session_id: session.id,
    status: e.status,
    stdout,
    stderr,
    error,
    files,
  };
  return {
    content: [{ type: "text", text: lines.join("\n") }, ...images],
    structuredContent: structured,
    ...(e.status === "completed" && !error ? {} : { isError: true }),
  };
}
