import { Readable } from "node:stream";
import FormData from "form-data";
import nodeFetch from "node-fetch";

// What LibreChat's server and its ToolNode do around `@librechat/agents`' code tool, reproduced here
// because that code is in the LibreChat app (needs MongoDB and the whole server), not in a package.

export interface CodeEnvFile {
  id: string;
  name: string;
  storage_session_id?: string;
  session_id?: string;
  resource_id?: string;
  kind?: "user" | "agent" | "skill";
  version?: number | string;
}

/**
 * `uploadCodeEnvFile` (LibreChat `packages/api/src/files/code/form.ts`, `api/server/services/Files/Code/crud.js`):
 * a form-data multipart with the text fields `kind`, `id` (and `version` for skills) before the `file`
 * part, streamed, with `User-Agent: LibreChat/1.0`, `User-Id: <userId>` and the auth headers. Gen-1 sent
 * `entity_id` instead of kind/id and `X-API-Key`.
 */
export async function libreChatUpload(
  baseUrl: string,
  opts: {
    route?: "/upload" | "/upload/batch";
    userId: string;
    auth: Record<string, string>;
    fields?: Record<string, string>;
    files: Array<{ name: string; bytes: Buffer | string }>;
  },
) {
  const form = new FormData();
  for (const [k, v] of Object.entries(opts.fields ?? { kind: "user", id: opts.userId })) form.append(k, v);
  if (opts.route === "/upload/batch") form.append("read_only", "true");
  for (const f of opts.files) form.append("file", Readable.from([Buffer.from(f.bytes)]), { filename: f.name });
  const res = await nodeFetch(`${baseUrl}${opts.route ?? "/upload"}`, {
    method: "POST",
    headers: { ...form.getHeaders(), "User-Agent": "LibreChat/1.0", "User-Id": opts.userId, ...opts.auth },
    body: form,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: res.status, body: (await res.json()) as any };
}

/**
 * The file refs LibreChat's ToolNode injects into the next `execute_code` call from the previous call's
 * artifact (`@librechat/agents` src/tools/ToolNode.ts, `toInjectedFileRef`; dist/cjs/tools/ToolNode.cjs
 * lines 177-195): storage_session_id falls back to the exec's session_id, resource_id to id, kind to user.
 */
export function toInjectedFileRef(file: CodeEnvFile, execSessionId: string): CodeEnvFile {
  return {
    id: file.id,
    resource_id: file.resource_id ?? file.id,
    name: file.name,
    storage_session_id: file.storage_session_id ?? execSessionId,
    kind: file.kind ?? "user",
  };
}

let callNo = 0;

/**
 * `tool.invoke(...)` as ToolNode calls it (dist/cjs/tools/ToolNode.cjs lines 735-750 build the params,
 * line 620 invokes): the model's tool call, plus `session_id` and `_injected_files` from the code session
 * the previous call left.
 */
export function toolCall(args: Record<string, unknown>, prev?: { session_id: string; files?: CodeEnvFile[] }) {
  return {
    id: `call_${++callNo}`,
    name: "execute_code",
    type: "tool_call" as const,
    args,
    ...(prev ? { session_id: prev.session_id } : {}),
    ...(prev?.files?.length ? { _injected_files: prev.files.map((f) => toInjectedFileRef(f, prev.session_id)) } : {}),
  };
}

/** `processCodeOutput` downloads each output (api/server/services/Files/Code/process.js): arraybuffer, kind/id query. */
export async function libreChatDownload(
  baseUrl: string,
  sessionId: string,
  fileId: string,
  query: string,
  auth: Record<string, string>,
) {
  const res = await nodeFetch(`${baseUrl}/download/${sessionId}/${fileId}${query}`, {
    headers: { "User-Agent": "LibreChat/1.0", ...auth },
  });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), type: res.headers.get("content-type") };
}
