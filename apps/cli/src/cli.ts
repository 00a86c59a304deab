import { randomBytes } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { CodeinterpApiError, createClient } from "@codeinterp/client";
import type { CodeinterpClient, Execution, ExecutionEvent, FileInfo } from "@codeinterp/client";
import { uploadPath } from "@codeinterp/client/node";
import { CliConfigError, loadCliEnv } from "./env";
import { createProgress } from "./progress";
import type { Out } from "./progress";
import { downloadTo, resolveInside, UnsafePathError } from "./save";

export const USAGE = `Usage: codeinterp run <script.py> [options]

Runs a Python script on a codeinterp server: uploads the files, streams the output,
and saves the files the code wrote to /mnt/data.

Options:
  -f, --file <path>    attach a file (repeatable); the code finds it as /mnt/data/<name>
  -o, --out <dir>      save generated files here, keeping their paths under /mnt/data
      --chat <id>      chat id (default: a new one; with --message, "cli")
      --message <id>   message id (default: a new one); reuse it to share /mnt/data and variables
      --timeout <ms>   execution timeout in milliseconds (server default otherwise)
  -h, --help           show this help

Environment:
  CODEINTERP_URL       the API (default http://localhost:8080)
  CODEINTERP_API_KEY   your API key (required)
  CODEINTERP_END_USER  with a tenant key: the end user to act for (X-End-User)

Exit status: 0 when the code ran to its end, 1 when it raised or the execution did not
complete (failed, timed_out, cancelled), 2 for usage or configuration errors.`;

export interface CliIo {
  /** Defaults to the process environment. */
  env?: Record<string, string | undefined>;
  stdout: Out;
  stderr: Out;
  /** Draw the progress line (stderr is a terminal). */
  tty: boolean;
  cwd: string;
  /** Aborts on Ctrl-C: the CLI cancels the execution. */
  signal?: AbortSignal;
}

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

const humanSize = (n: number) =>
  n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} kB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
const newId = (prefix: string) => `${prefix}-${randomBytes(6).toString("hex")}`;

interface RunArgs {
  script: string;
  files: string[];
  out?: string;
  chatId: string;
  messageId: string;
  timeoutMs?: number;
}

function parseRunArgs(args: string[]): RunArgs | { help: true } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      file: { type: "string", short: "f", multiple: true },
      out: { type: "string", short: "o" },
      chat: { type: "string" },
      message: { type: "string" },
      timeout: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return { help: true };
  if (positionals.length !== 1)
    throw new UsageError(
      positionals.length === 0 ? "missing <script.py>" : `unexpected arguments: ${positionals.slice(1).join(" ")}`,
    );
  let timeoutMs: number | undefined;
  if (values.timeout !== undefined) {
    timeoutMs = Number(values.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
      throw new UsageError(`--timeout must be a positive number of milliseconds, got ${values.timeout}`);
  }
  return {
    script: positionals[0]!,
    files: values.file ?? [],
    out: values.out,
    // A message id belongs to one chat: reusing --message without --chat stays in the same one.
    chatId: values.chat ?? (values.message ? "cli" : newId("cli-chat")),
    messageId: values.message ?? newId("cli-msg"),
    timeoutMs,
  };
}

class UsageError extends Error {
  override name = "UsageError";
  constructor(
    message: string,
    readonly showUsage = true,
  ) {
    super(message);
  }
}

/** Runs the CLI; returns the exit status. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "-h" || command === "--help" || command === "help") {
    io.stdout.write(`${USAGE}\n`);
    return command === undefined ? EXIT_USAGE : EXIT_OK;
  }
  try {
    if (command !== "run") throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    const parsed = parseRunArgs(rest);
    if ("help" in parsed) {
      io.stdout.write(`${USAGE}\n`);
      return EXIT_OK;
    }
    const env = loadCliEnv(io.env);
    const client = createClient({
      baseUrl: env.CODEINTERP_URL,
      apiKey: env.CODEINTERP_API_KEY,
      ...(env.CODEINTERP_END_USER ? { endUser: env.CODEINTERP_END_USER } : {}),
    });
    return await run(client, parsed, io);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      const usage = err instanceof UsageError && !err.showUsage ? "" : `\n${USAGE}\n`;
      io.stderr.write(`codeinterp: ${(err as Error).message}\n${usage}`);
      return EXIT_USAGE;
    }
    if (err instanceof CliConfigError) {
      io.stderr.write(`codeinterp: ${err.message}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof CodeinterpApiError) {
      io.stderr.write(`codeinterp: the server answered ${err.status} ${err.code}: ${err.message}\n`);
      return EXIT_FAILED;
    }
    io.stderr.write(`codeinterp: ${(err as Error).message ?? String(err)}\n`);
    return EXIT_FAILED;
  }
}

async function run(client: CodeinterpClient, args: RunArgs, io: CliIo): Promise<number> {
  const scriptPath = path.resolve(io.cwd, args.script);
  const code = await readFile(scriptPath, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read ${args.script}: ${err.code === "ENOENT" ? "no such file" : err.message}`, false);
  });
  for (const f of args.files) {
    const s = await stat(path.resolve(io.cwd, f)).catch(() => null);
    if (!s?.isFile()) throw new UsageError(`--file ${f}: no such file`, false);
  }

  const uploaded: FileInfo[] = [];
  for (const f of args.files) {
    const info = await uploadPath(client, path.resolve(io.cwd, f), { signal: io.signal });
    uploaded.push(info);
    io.stderr.write(`[codeinterp] uploaded ${f} as /mnt/data/${info.name} (${humanSize(info.size)})\n`);
  }

  const created = await client.execute(
    {
      chatId: args.chatId,
      messageId: args.messageId,
      code,
      ...(uploaded.length ? { fileIds: uploaded.map((u) => u.id) } : {}),
      ...(args.timeoutMs !== undefined ? { timeoutMs: args.timeoutMs } : {}),
    },
    { signal: io.signal },
  );
  io.stderr.write(`[codeinterp] execution ${created.id} (chat ${args.chatId}, message ${args.messageId})\n`);

  const progress = createProgress(io.stderr, { tty: io.tty });
  progress.setStatus(created.status);
  let execution: Execution;
  const onAbort = () => {
    progress.stop();
    io.stderr.write(`[codeinterp] cancelling ${created.id}\n`);
    // The process is exiting on a signal: a cancel that fails is reported by the server's deadline.
    void client.cancel(created.id).catch(() => undefined);
  };
  io.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    execution = await follow(client, created.id, (e) => {
      if (e.type === "status") progress.setStatus(e.status);
      else if (e.type === "stdout") progress.print(io.stdout, e.text);
      else if (e.type === "stderr") progress.print(io.stderr, e.text);
    });
  } finally {
    progress.stop();
    io.signal?.removeEventListener("abort", onAbort);
  }
  return report(client, execution, args, io);
}

/**
 * Follows the execution over SSE; if the stream cannot be read at all, falls back to long-polling (the
 * output then comes from the final result).
 */
async function follow(client: CodeinterpClient, id: string, onEvent: (e: ExecutionEvent) => void): Promise<Execution> {
  let streamed = false;
  try {
    for await (const e of client.stream(id)) {
      if (e.type === "done") return e.execution;
      streamed ||= e.type === "stdout" || e.type === "stderr";
      onEvent(e);
    }
  } catch (err) {
    // The server said no (401, 404): final. A broken connection or a 5xx: try long-polling instead.
    if (err instanceof CodeinterpApiError && err.status < 500) throw err;
  }
  const done = await client.wait(id);
  if (!streamed && done.result) {
    if (done.result.stdout) onEvent({ type: "stdout", text: done.result.stdout });
    if (done.result.stderr) onEvent({ type: "stderr", text: done.result.stderr });
  }
  return done;
}

async function report(client: CodeinterpClient, execution: Execution, args: RunArgs, io: CliIo): Promise<number> {
  const result = execution.result;
  let figure = 0;
  for (const o of result?.outputs ?? []) {
    if (o.type === "text/plain" && o.data !== undefined) io.stdout.write(`${o.data}\n`);
    else if (o.type.startsWith("image/")) {
      figure++;
      if (args.out && (o.data !== undefined || o.fileId)) {
        const ext = o.type.split("/")[1]?.replace(/\+xml$/, "") ?? "bin";
        const name = `outputs/figure-${figure}.${ext}`;
        const target = resolveInside(args.out, name);
        if (o.fileId) await downloadTo(client, o.fileId, target);
        else {
          await mkdir(path.dirname(target), { recursive: true });
          await writeFile(target, o.type === "image/svg+xml" ? o.data! : Buffer.from(o.data!, "base64"));
        }
        io.stderr.write(`[codeinterp] ${o.type} output saved as ${path.relative(io.cwd, target)}\n`);
      } else {
        io.stderr.write(`[codeinterp] ${o.type} output (use --out to save it)\n`);
      }
    }
  }
  if (result?.error) {
    io.stderr.write(
      `${result.error.traceback.length ? result.error.traceback.join("\n") : `${result.error.ename}: ${result.error.evalue}`}\n`,
    );
  }

  let saveFailed = false;
  if (execution.files.length) {
    if (args.out) {
      const outDir = path.resolve(io.cwd, args.out);
      for (const f of execution.files) {
        try {
          const target = resolveInside(outDir, f.path);
          const bytes = await downloadTo(client, f.id, target);
          io.stderr.write(`[codeinterp] saved ${path.relative(io.cwd, target) || target} (${humanSize(bytes)})\n`);
        } catch (err) {
          saveFailed = true;
          io.stderr.write(
            `[codeinterp] ${err instanceof UnsafePathError ? err.message : `could not save ${f.path}: ${(err as Error).message}`}\n`,
          );
        }
      }
    } else {
      io.stderr.write(`[codeinterp] generated files (use --out <dir> to save them):\n`);
      for (const f of execution.files)
        io.stderr.write(`  /mnt/data/${f.path}  ${humanSize(f.size)}  ${client.baseUrl}${f.url}\n`);
    }
  }

  const raised = result?.error != null;
  const detail = execution.failure
    ? ` (${execution.failure.code}: ${execution.failure.message})`
    : raised
      ? ` (${result.error!.ename})`
      : "";
  io.stderr.write(`[codeinterp] ${execution.status}${detail}\n`);
  return execution.status === "completed" && !raised && !saveFailed ? EXIT_OK : EXIT_FAILED;
}
