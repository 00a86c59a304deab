import express, { Router } from "express";
import type { ErrorRequestHandler, Request, Response } from "express";
import {
  FilesNotFoundError,
  findLibreChatSession,
  findLibreChatSessionFile,
  listLibreChatSessionFiles,
} from "@codeinterp/db";
import type { FileRow, LibreChatSessionRow } from "@codeinterp/db";
import { clientGone } from "../client-gone";
import type { ApiDeps } from "../deps";
import { HttpError, toHttpError } from "../errors";
import { InvalidCodeError } from "../executions/service";
import { deleteUserFile } from "../files/store";
import { sendFileContent } from "../files/send";
import { parseInput } from "../validate";
import { credentialResolver, principalOf } from "./auth";
import type { Credential, Principal } from "./auth";
import { outputRef, runExec } from "./exec";
import { libreChatIdToUuid, uuidToLibreChatId } from "./ids";
import { receiveForm } from "./multipart";
import { createRateLimit, RateLimitedError } from "./rate-limit";
import { EntityQuery, execBody, ListQuery, SessionFileParams, SessionParams } from "./schemas";
import { storeSession } from "./upload";

/** Files per `/upload/batch`, as the official server allows (`service/src/service/router.ts`, MAX_BATCH_FILES). */
const MAX_BATCH_FILES = 200;

const credOf = (res: Response) => res.locals.librechat as Credential;

/**
 * LibreChat's Code Interpreter API (`LIBRECHAT_CODE_BASEURL=http://host/librechat/v1`), both wire
 * generations, as an adapter over the same executions, queue, workers, files and blobs as /v1. The
 * contract is the official server's router (ClickHouse/code-interpreter `service/src/service/router.ts`).
 */
export function librechatRouter(deps: ApiDeps): Router {
  const router = Router();
  const credentialOf = credentialResolver(deps);
  const rateLimit = createRateLimit(deps);
  const limit = async (p: Principal) => rateLimit?.(p.userId);
  const json = express.json({ limit: Math.max(1024 * 1024, deps.env.MAX_CODE_BYTES * 6 + 65_536), strict: true });
  const body = execBody(deps.env.MAX_CODE_BYTES, deps.env.MAX_FILES_PER_EXECUTION);

  router.get("/health", (_req, res) => {
    res.json({ status: "ok" });
  });

  router.use(async (req, res, next) => {
    res.locals.librechat = await credentialOf(req);
    next();
  });

  router.post("/exec", json, async (req, res) => {
    const input = parseInput(body, req.body, "body");
    const principal = principalOf(credOf(res), { kind: "user", id: input.user_id });
    if (!principal) throw new HttpError(400, "validation_error", "user_id is required");
    await limit(principal);
    const result = await runExec(deps, principal, input, clientGone(res));
    if (result) res.json(result);
  });

  const upload = (maxFiles: number) => async (req: Request, res: Response) => {
    const cred = credOf(res);
    // Counted before the body is read, on who the headers say is uploading.
    const early = principalOf(cred, { kind: "user", id: header(req, "user-id") });
    if (early) await limit(early);
    const form = await receiveForm(req, { files: deps.files, maxBytes: deps.env.MAX_UPLOAD_BYTES, maxFiles });
    const { sessionId, files } = await storeSession(deps, cred, form, header(req, "user-id"));
    const ok = files.filter((f) => f.status === "success");
    // Both generations: Gen-1 reads `session_id`, Gen-2 `storage_session_id`.
    if (maxFiles === 1) {
      res.json({
        message: "success",
        session_id: sessionId,
        storage_session_id: sessionId,
        files: ok.map(({ fileId, filename }) => ({ fileId, filename })),
      });
      return;
    }
    const failed = files.length - ok.length;
    const message = failed === 0 ? "success" : ok.length === 0 ? "error" : "partial_success";
    res
      .status(ok.length === 0 ? 400 : 200)
      .json({ message, session_id: sessionId, storage_session_id: sessionId, files, succeeded: ok.length, failed });
  };
  router.post("/upload", upload(1));
  router.post("/upload/batch", upload(MAX_BATCH_FILES));

  /** The session named in the path, if the request may see it (404 unknown, 403 someone else's). */
  const sessionFor = async (req: Request, res: Response): Promise<LibreChatSessionRow> => {
    const { session_id } = parseInput(SessionParams, { session_id: req.params.session_id }, "params");
    const q = parseInput(EntityQuery, req.query, "query");
    const cred = credOf(res);
    const session = await findLibreChatSession(deps.db, cred.tenant, session_id);
    if (!session) throw new HttpError(404, "not_found", "Session not found");
    const claimed = principalOf(cred, q.entity_id ? { kind: "agent", id: q.entity_id } : { kind: q.kind, id: q.id });
    // Gen-1 clients name nobody on these routes: the tenant's session and file ids are what they hold.
    if (claimed && claimed.userId !== session.userId) throw new HttpError(403, "forbidden", "Access denied");
    return session;
  };
  const fileFor = async (req: Request, res: Response): Promise<{ session: LibreChatSessionRow; file: FileRow }> => {
    const { file_id } = parseInput(SessionFileParams, req.params, "params");
    const session = await sessionFor(req, res);
    const uuid = libreChatIdToUuid(file_id);
    const file = uuid ? await findLibreChatSessionFile(deps.db, session, uuid) : null;
    if (!file) throw new HttpError(404, "not_found", "File not found");
    return { session, file };
  };

  router.get("/download/:session_id/:file_id", async (req, res) => {
    const { file } = await fileFor(req, res);
    await sendFileContent(deps, req, res, file);
  });

  router.get("/files/:session_id", async (req, res) => {
    const { detail } = parseInput(ListQuery, req.query, "query");
    const session = await sessionFor(req, res);
    const files = await listLibreChatSessionFiles(deps.db, session);
    res.json(files.map((f) => listEntry(f, session.id, detail)));
  });

  router.get("/sessions/:session_id/objects/:file_id", async (req, res) => {
    const { file } = await fileFor(req, res);
    res.json({
      lastModified: file.createdAt.toISOString(),
      originalFilename: file.name,
      size: file.size,
      contentType: file.mimeType,
      etag: file.sha256,
    });
  });

  router.delete("/files/:session_id/:file_id", async (req, res) => {
    const { session, file } = await fileFor(req, res);
    await deleteUserFile(deps, session.userId, file.id);
    res.json({ message: "File deleted successfully" });
  });

  router.use(libreChatErrors);
  return router;
}

function header(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === "string" && v !== "" ? v : undefined;
}

/**
 * One file of `GET /files/:session_id` at the official server's detail levels (`service/src/types/files.ts`).
 * `name` is `<session>/<file id>` as in its object store: Gen-1 clients take the id from it.
 */
function listEntry(f: FileRow, sessionId: string, detail: "simple" | "summary" | "full" | "normalized") {
  const id = uuidToLibreChatId(f.id);
  const name = `${sessionId}/${id}`;
  const filename = outputRef(f, sessionId).name;
  if (detail === "simple") return name;
  const summary = { name, size: f.size, lastModified: f.createdAt.toISOString(), etag: f.sha256 };
  if (detail === "summary") return summary;
  if (detail === "normalized") {
    return {
      id,
      name: filename,
      storage_session_id: sessionId,
      size: summary.size,
      contentType: f.mimeType,
      lastModified: summary.lastModified,
    };
  }
  return {
    ...summary,
    id,
    storage_session_id: sessionId,
    metadata: { "original-filename": filename, "content-type": f.mimeType },
    versionId: null,
    contentType: f.mimeType,
  };
}

/** Errors in the official server's shape, `{error: message}`, which LibreChat's clients read. */
const libreChatErrors: ErrorRequestHandler = (err, _req, res, next) => {
  const e = err as { type?: string };
  let http: HttpError | null = err instanceof HttpError ? err : null;
  if (err instanceof FilesNotFoundError) http = new HttpError(404, "not_found", "File not found");
  else if (err instanceof InvalidCodeError) http = toHttpError(err);
  else if (e?.type === "entity.parse.failed")
    http = new HttpError(400, "invalid_json", "request body is not valid JSON");
  else if (e?.type === "entity.too.large") http = new HttpError(413, "payload_too_large", "request body is too large");
  if (!http || res.headersSent) {
    next(err);
    return;
  }
  if (err instanceof RateLimitedError) res.setHeader("Retry-After", String(err.retryAfterSeconds));
  res.status(http.status).json({ ...(http.details ?? {}), error: http.message, code: http.code });
};
