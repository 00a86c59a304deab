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
    code: z.string().refine((c) => Buffer.byteLength(c, "utf8") <= maxCodeBytes, `code must be at most ${maxCodeBytes} bytes`),
    user_id: z.string().max(200).optional(),
    files: z.array(FileRef).max(maxFiles).optional(),
    runtime_session_hint: z.string().min(1).max(200).regex(/^[^\u0000-\u001f\u007f]+$/).optional(),
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

export const ListQuery = EntityQuery.extend({ detail: z.enum(["simple", "summary", "full", "normalized"]).default("simple") });
