import { createHash } from "node:crypto";
import {
  createFile,
  createLibreChatSession,
  findLibreChatSession,
  findLibreChatSessionFile,
  isTerminal,
  listLibreChatSessionFiles,
} from "@codeinterp/db";
import type { ExecutionWithFiles, FileRow } from "@codeinterp/db";
import { normalizeError } from "@codeinterp/logger";
import type { ExecutionRecord } from "@codeinterp/queue";
import type { ApiDeps } from "../deps";
import { HttpError } from "../errors";
import { readExecution, submitAndWait } from "../executions/service";
import type { Principal } from "./auth";
import { newSessionId, uuidToLibreChatId, libreChatIdToUuid } from "./ids";
import { kernelCode, resolveLanguage } from "./languages";
import type { FileRefValue } from "./schemas";
import { entityLabel, isSharedEntity } from "./sessions";

/** Beyond the code's own timeout: queue wait, kernel start and file capture. */
const EXEC_SLACK_MS = 120_000;

export interface ExecRequest {
  lang: string;
  code: string;
  files?: FileRefValue[] | undefined;
  runtime_session_hint?: string | undefined;
  timeout?: number | undefined;
}

/** One `/exec`: a fresh workspace (or the hint's kernel), the referenced files in /mnt/data, the code run to the end. */
export async function runExec(deps: ApiDeps, principal: Principal, body: ExecRequest, signal: AbortSignal) {
  const lang = resolveLanguage(body.lang);
  const fileIds = await resolveInputs(deps, principal, body.files ?? []);
  const sessionId = newSessionId();
  // Our message is a kernel and a workspace: a fresh one per call, or the hint's for every call naming it.
  const hint = body.runtime_session_hint;
  const messageId = hint ? `librechat-runtime:${hint}` : `librechat-exec:${sessionId}`;
  const timeoutMs = Math.min(
    Math.max(body.timeout ?? deps.env.EXECUTION_TIMEOUT_MS, 1000),
    deps.env.MAX_EXECUTION_TIMEOUT_MS,
  );
  // Re-read every 30 s: a `done` lost with a Redis blip must not hold LibreChat until the deadline.
  const { final: done } = await submitAndWait(
    deps,
    { userId: principal.userId, chatId: "librechat", messageId, code: kernelCode(lang, body.code), fileIds, timeoutMs },
    { ms: timeoutMs + EXEC_SLACK_MS, signal, recheckMs: 30_000 },
    {
      logFields: { sessionId, lang, files: fileIds.length },
      logMessage: "librechat execution accepted",
      beforeEnqueue: (e) =>
        createLibreChatSession(deps.db, {
          id: sessionId,
          tenant: principal.tenant,
          userId: principal.userId,
          librechatUser: entityLabel(principal),
          executionId: e.id,
        }).then(() => undefined),
    },
  );
  if (!done || !isTerminal(done.status)) {
    if (signal.aborted) return null;
    throw new HttpError(504, "timeout", "Execution failed or timed out");
  }
  const session = await findLibreChatSession(deps.db, principal.tenant, sessionId);
  const files = session ? await listLibreChatSessionFiles(deps.db, session) : [];
  const record = readExecution(done);
  return {
    session_id: sessionId,
    ...streams(done, record),
    files: files.map((f) => outputRef(f, sessionId)),
    ...(hint
      ? {
          runtime_session_id: createHash("sha256")
            .update(`${principal.userId}\0${hint}`)
            .digest("base64url")
            .slice(0, 21),
          runtime_status: record.metrics?.reusedKernel ? ("reused" as const) : ("new" as const),
        }
      : {}),
  };
}

/** stdout and stderr as a process would have written them: a Python error's traceback goes to stderr. */
function streams(e: ExecutionWithFiles, { result: r, failure }: ExecutionRecord): { stdout: string; stderr: string } {
  const err: string[] = [];
  if (r?.stderr) err.push(r.stderr.replace(/\n$/, ""));
  if (r?.error)
    err.push(r.error.traceback.length > 0 ? r.error.traceback.join("\n") : `${r.error.ename}: ${r.error.evalue}`);
  if (e.status === "timed_out") err.push("Time limit exceeded");
  if (e.status === "cancelled") err.push("Execution was cancelled");
  if (e.status === "failed") err.push(failure?.message ?? "Execution failed");
  return { stdout: r?.stdout ?? "", stderr: err.length > 0 ? `${err.join("\n")}\n` : "" };
}

/** A file the code wrote, as LibreChat reads it (`ExecuteResult.files`); `name` keeps sub-folders. */
export function outputRef(f: FileRow, sessionId: string) {
  const id = uuidToLibreChatId(f.id);
  const name = f.source === "generated" && f.path ? f.path : f.name;
  return { id, name, path: `/mnt/data/${name}`, storage_session_id: sessionId, resource_id: id, kind: "user" as const };
}

/**
 * The file ids the code gets in /mnt/data. A reference must name a session of this tenant and a file in it;
 * another LibreChat user's session is refused (403). Files of an agent or skill (LibreChat shares those
 * with the agent's users) are copied into the user's own files: the same stored blob, a row of its own.
 */
async function resolveInputs(deps: ApiDeps, principal: Principal, refs: FileRefValue[]): Promise<string[]> {
  const ids: string[] = [];
  for (const ref of refs) {
    const session = await findLibreChatSession(deps.db, principal.tenant, ref.sessionId);
    const uuid = libreChatIdToUuid(ref.fileId);
    if (!session || !uuid) throw new HttpError(404, "not_found", `File not found: ${ref.name ?? ref.fileId}`);
    const shared = session.userId !== principal.userId && isSharedEntity(session);
    if (session.userId !== principal.userId && !shared)
      throw new HttpError(403, "forbidden", "Access denied to the referenced file");
    const file = await findLibreChatSessionFile(deps.db, session, uuid);
    if (!file) throw new HttpError(404, "not_found", `File not found: ${ref.name ?? ref.fileId}`);
    ids.push(shared ? (await copyFor(deps, principal.userId, file)).id : file.id);
  }
  return ids;
}

/** A row of the user's own for a shared file's blob, under the blob lifecycle: its owner may be deleting it meanwhile. */
async function copyFor(deps: Pick<ApiDeps, "db" | "files" | "log">, userId: string, f: FileRow): Promise<FileRow> {
  const spare = await deps.files.share(f.storageKey);
  const committed = await deps.files.commit(spare ? [spare] : [], () =>
    createFile(deps.db, {
      userId,
      name: f.name,
      size: f.size,
      sha256: f.sha256,
      mimeType: f.mimeType,
      storageKey: f.storageKey,
      source: "upload",
    }),
  );
  if (!committed.kept)
    deps.log.warn(
      { fileId: committed.value.id, err: normalizeError(committed.error) },
      "could not wait for blob removals",
    );
  return committed.value;
}
