import { McpServer } from "@modelcontextprotocol/server";
import type { ServerContext } from "@modelcontextprotocol/server";
import { z } from "zod";
import { normalizeError } from "@codeinterp/logger";
import type { ApiDeps } from "../deps";
import { executeCode } from "./execute-code";
import type { Progress } from "./execute-code";
import { listFiles, readSessionFile, uploadFile } from "./files";
import type { Caller, ToolResult } from "./results";
import { ToolInputError, errorResult } from "./results";
import { UnknownSessionError } from "./sessions";
import { UrlFetchError, UrlNotAllowedError } from "./url-fetch";

const SERVER_VERSION = "0.1.0";

const INSTRUCTIONS = `codeinterp runs Python in a sandboxed Jupyter kernel with the user's files in /mnt/data.
- execute_code runs Python; omit session_id to start a new session, then pass the session_id it returns to keep variables, imports and files between calls.
- upload_file puts a file into /mnt/data of a session (new when session_id is omitted); read it with execute_code by its path.
- Files the code writes under /mnt/data come back with download links: give those links to the user. Charts: save them (plt.savefig('/mnt/data/chart.png')) to return the image and a link.
- list_files and read_file show what a session holds.`;

const sessionId = z
  .string()
  .describe("A session_id returned by an earlier call: the same kernel (variables) and /mnt/data (files).");

const fileSchema = z.object({
  name: z.string(),
  path: z.string().describe("Absolute path in the session, under /mnt/data"),
  size: z.number().int(),
  mime_type: z.string(),
  url: z.string().describe("Signed, expiring download link; works without credentials"),
});

export const toolSchemas = {
  execute_code: {
    input: z.object({
      code: z.string().min(1).describe("Python source to run, as in one Jupyter cell."),
      session_id: sessionId.optional(),
      timeout_seconds: z
        .number()
        .positive()
        .optional()
        .describe("Stop the code after this many seconds (capped by the server)."),
    }),
    output: z.object({
      session_id: z.string(),
      status: z.enum(["completed", "failed", "timed_out", "cancelled", "queued", "preparing", "running"]),
      stdout: z.string(),
      stderr: z.string(),
      error: z.string().nullable().describe("The Python traceback, or why the run stopped; null when it ran cleanly"),
      files: z.array(fileSchema).describe("Files the code wrote or changed in /mnt/data during this call"),
    }),
  },
  upload_file: {
    input: z.object({
      name: z.string().min(1).max(255).describe("File name in /mnt/data, e.g. sales.csv"),
      content_base64: z.string().optional().describe("The file's bytes, base64-encoded."),
      url: z
        .string()
        .optional()
        .describe("Or an http(s) URL for the server to fetch (only hosts the operator allows)."),
      session_id: sessionId.optional(),
    }),
    output: z.object({ session_id: z.string(), path: z.string(), size: z.number().int(), mime_type: z.string() }),
  },
  list_files: {
    input: z.object({ session_id: sessionId }),
    output: z.object({ session_id: z.string(), files: z.array(fileSchema) }),
  },
  read_file: {
    input: z.object({
      session_id: sessionId,
      path: z.string().min(1).describe("The file's path, absolute (/mnt/data/out.csv) or relative to /mnt/data"),
      max_bytes: z
        .number()
        .int()
        .positive()
        .optional()
        .describe("Read at most this many bytes of a text file (default 65536)."),
    }),
    output: z.object({ session_id: z.string(), file: fileSchema, truncated: z.boolean() }),
  },
} as const;

const DESCRIPTIONS = {
  execute_code: `Run Python code in a sandboxed Jupyter kernel and return its output.
Files are in /mnt/data: read inputs from there and save everything the user should get (CSV, charts, reports) under /mnt/data; each saved file comes back with a download link to give the user. Save charts with plt.savefig('/mnt/data/name.png'): the image is returned too.
Omit session_id for a fresh session; pass the session_id from a previous result to keep variables, imports and files. pandas, numpy and matplotlib are available; there is no internet access.`,
  upload_file: `Put a file into a session's /mnt/data so execute_code can read it. Give name and either content_base64 (the bytes) or url (fetched by the server; only operator-allowed hosts). Omit session_id to start a new session; the result says the session_id and the file's path.`,
  list_files: `List the files in a session's /mnt/data (uploads and files the code wrote), with sizes and download links.`,
  read_file: `Read a file of a session: text is returned (capped by max_bytes), images as images, other binaries as a download link. To analyse data, prefer execute_code.`,
} as const;

/** A tool failure the model can act on becomes an isError result; anything else is logged and answered generically. */
async function guarded(deps: ApiDeps, tool: string, fn: () => Promise<ToolResult>): Promise<ToolResult> {
  try {
    return await fn();
  } catch (err) {
    if (
      err instanceof ToolInputError ||
      err instanceof UnknownSessionError ||
      err instanceof UrlNotAllowedError ||
      err instanceof UrlFetchError
    )
      return errorResult(err.message);
    deps.log.error({ err: normalizeError(err), tool }, "mcp tool failed");
    return errorResult(`${tool} failed inside codeinterp; try again`);
  }
}

function progressOf(ctx: ServerContext): Progress | null {
  const token = ctx.mcpReq._meta?.progressToken;
  if (token === undefined) return null;
  return {
    report: (progress, message) =>
      ctx.mcpReq.notify({ method: "notifications/progress", params: { progressToken: token, progress, message } }),
  };
}

/** One server per request (createMcpHandler's factory): it holds nothing past the request. */
export function createMcpServer(deps: ApiDeps, caller: Caller): McpServer {
  const server = new McpServer({ name: "codeinterp", version: SERVER_VERSION }, { instructions: INSTRUCTIONS });
  const s = toolSchemas;
  server.registerTool(
    "execute_code",
    {
      title: "Run Python",
      description: DESCRIPTIONS.execute_code,
      inputSchema: s.execute_code.input,
      outputSchema: s.execute_code.output,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    (args, ctx) =>
      guarded(deps, "execute_code", () => executeCode(deps, caller, args, ctx.mcpReq.signal, progressOf(ctx))),
  );
  server.registerTool(
    "upload_file",
    {
      title: "Upload a file",
      description: DESCRIPTIONS.upload_file,
      inputSchema: s.upload_file.input,
      outputSchema: s.upload_file.output,
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: true },
    },
    (args) => guarded(deps, "upload_file", () => uploadFile(deps, caller, args)),
  );
  server.registerTool(
    "list_files",
    {
      title: "List session files",
      description: DESCRIPTIONS.list_files,
      inputSchema: s.list_files.input,
      outputSchema: s.list_files.output,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) => guarded(deps, "list_files", () => listFiles(deps, caller, args)),
  );
  server.registerTool(
    "read_file",
    {
      title: "Read a session file",
      description: DESCRIPTIONS.read_file,
      inputSchema: s.read_file.input,
      outputSchema: s.read_file.output,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    (args) => guarded(deps, "read_file", () => readSessionFile(deps, caller, args)),
  );
  return server;
}
