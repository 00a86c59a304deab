import { z } from "zod";
import { LIBRECHAT_ID } from "./ids";

// Request shapes of LibreChat's Code Interpreter API. Clients spread extra keys into the body (LibreChat's
// execution context, and with Gen-1 even `LIBRECHAT_CODE_API_KEY`): unknown keys are dropped here and never
// logged or stored.

const lcId = z.string().regex(LIBRECHAT_ID, "must be 21 characters of [A-Za-z0-9_-]");

/**
 * A file reference in `/exec`'s `files`, either generation:
 * Gen-1 `{id, session_id, name}`; Gen-2 `{id, resource_id, name, storage_session_id, kind, version?}`
 * (`@librechat/agents` src/tools/ToolNode.ts injects the Gen-2 shape from the previous call's artifact).
 */
export const FileRef = z
  .object({
    id: lcId,
    name: z.string().max(1024).optional(),
    session_id: lcId.optional(),
    storage_session_id: lcId.optional(),
    resource_id: z.string().max(200).optional(),
    kind: z.enum(["user", "agent", "skill"]).optional(),
    version: z.union([z.string(), z.number()]).optional(),
  })
  .transform((r, ctx) => {
    const sessionId = r.storage_session_id ?? r.session_id;
    if (!sessionId) {
      ctx.addIssue({ code: "custom", message: "a file reference needs storage_session_id (or session_id)" });
      return z.NEVER;
    }
    return { fileId: r.id, sessionId, name: r.name, kind: r.kind };
  });
export type FileRefValue = z.output<typeof FileRef>;

export const execBody = (maxCodeBytes: number, maxFiles: number) =>
  z.object({
    lang: z.string().min(1).max(50),
    code: z
      .string()
      .refine((c) => Buffer.byteLength(c, "utf8") <= maxCodeBytes, `code must be at most ${maxCodeBytes} bytes`),
    user_id: z.string().max(200).optional(),
    files: z.array(FileRef).max(maxFiles).optional(),
    runtime_session_hint: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[^\u0000-\u001f\u007f]+$/)
      .optional(),
    /** Milliseconds, as `@librechat/agents` sends it for plain executions (CODE_API_RUN_TIMEOUT_MS). */
    timeout: z.number().int().positive().optional(),
    args: z.unknown().optional(),
  });

export const SessionParams = z.object({ session_id: lcId });
export const SessionFileParams = z.object({ session_id: lcId, file_id: lcId });

/** `?kind=&id=[&version=]` (Gen-2) or `?entity_id=` (Gen-1, agent files). */
export const EntityQuery = z.object({
  kind: z.string().max(20).optional(),
  id: z.string().max(200).optional(),
  version: z.string().max(50).optional(),
  entity_id: z.string().max(200).optional(),
});

export const ListQuery = EntityQuery.extend({
  detail: z.enum(["simple", "summary", "full", "normalized"]).default("simple"),
});

// Answers, for /openapi.json (the official server's shapes, `service/src/types/{service,files}.ts`).
const OutputRef = z
  .object({
    id: z.string(),
    name: z.string(),
    path: z.string(),
    storage_session_id: z.string(),
    resource_id: z.string(),
    kind: z.literal("user"),
  })
  .meta({ id: "LibreChatOutputFile" });
export const ExecResult = z
  .object({
    session_id: z.string(),
    stdout: z.string(),
    stderr: z.string(),
    files: z.array(OutputRef),
    runtime_session_id: z.string().optional(),
    runtime_status: z.enum(["new", "reused"]).optional(),
  })
  .meta({ id: "LibreChatExecResult" });
export const UploadResult = z
  .object({
    message: z.enum(["success", "partial_success", "error"]),
    session_id: z.string().meta({ description: "Gen-1 name of storage_session_id" }),
    storage_session_id: z.string(),
    files: z.array(
      z.object({
        fileId: z.string().optional(),
        filename: z.string(),
        status: z.enum(["success", "error"]).optional(),
        error: z.string().optional(),
      }),
    ),
    succeeded: z.number().optional(),
    failed: z.number().optional(),
  })
  .meta({ id: "LibreChatUploadResult" });
export const ObjectInfo = z
  .object({
    lastModified: z.string(),
    originalFilename: z.string(),
    size: z.number(),
    contentType: z.string(),
    etag: z.string(),
  })
  .meta({ id: "LibreChatObject" });
export const LibreChatError = z
  .object({ error: z.string(), code: z.string().optional(), retry_after_seconds: z.number().optional() })
  .meta({ id: "LibreChatError" });
