import type { OpenAPIRegistry } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";
import {
  EntityQuery,
  execBody,
  ExecResult,
  LibreChatError,
  ListQuery,
  ObjectInfo,
  SessionFileParams,
  SessionParams,
  UploadResult,
} from "./schemas";

const json = (schema: z.ZodType, description: string) => ({ description, content: { "application/json": { schema } } });
const errors = {
  400: json(LibreChatError, "Invalid input"),
  401: json(LibreChatError, "No valid API key or LibreChat JWT"),
  403: json(LibreChatError, "Another LibreChat user's session or file"),
  404: json(LibreChatError, "No such session or file in it"),
};
const UploadForm = z.object({
  file: z.string().meta({ format: "binary", description: "one part per file (one for /upload)" }),
  kind: z.enum(["user", "agent", "skill"]).optional(),
  id: z.string().optional(),
  version: z.string().optional(),
  entity_id: z.string().optional().meta({ description: "Gen-1: the agent the file belongs to" }),
});

/** LibreChat's Code Interpreter API at /librechat/v1 (see README "Use with LibreChat"). */
export function registerLibreChatPaths(
  registry: OpenAPIRegistry,
  env: { MAX_CODE_BYTES: number; MAX_FILES_PER_EXECUTION: number },
): void {
  const scheme = registry.registerComponent("securitySchemes", "libreChatApiKey", {
    type: "apiKey",
    in: "header",
    name: "X-API-Key",
  });
  const security = [{ [scheme.name]: [] }, { apiKey: [] }];
  const base = "/librechat/v1";
  const tags = ["LibreChat"];
  registry.registerPath({
    method: "post",
    path: `${base}/exec`,
    tags,
    summary: "Run code (`py`, `bash`) with the referenced files in /mnt/data; answers when it has finished",
    security,
    request: {
      body: { content: { "application/json": { schema: execBody(env.MAX_CODE_BYTES, env.MAX_FILES_PER_EXECUTION) } } },
    },
    responses: {
      200: json(ExecResult, "Finished"),
      ...errors,
      429: json(LibreChatError, "Over the user's rate (`retry_after_seconds`)"),
    },
  });
  for (const route of ["/upload", "/upload/batch"]) {
    registry.registerPath({
      method: "post",
      path: `${base}${route}`,
      tags,
      summary: route === "/upload" ? "Upload one file" : "Upload several files in one session",
      security,
      request: { body: { content: { "multipart/form-data": { schema: UploadForm } } } },
      responses: {
        200: json(UploadResult, "Stored"),
        ...errors,
        413: json(LibreChatError, "Larger than MAX_UPLOAD_BYTES"),
      },
    });
  }
  registry.registerPath({
    method: "get",
    path: `${base}/download/{session_id}/{file_id}`,
    tags,
    summary: "A file's bytes",
    security,
    request: { params: SessionFileParams, query: EntityQuery },
    responses: {
      200: {
        description: "The bytes",
        content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
      },
      ...errors,
    },
  });
  registry.registerPath({
    method: "get",
    path: `${base}/files/{session_id}`,
    tags,
    summary: "A session's files (`detail=simple|summary|full|normalized`)",
    security,
    request: { params: SessionParams, query: ListQuery },
    responses: { 200: json(z.array(z.unknown()), "The files at that level of detail"), ...errors },
  });
  registry.registerPath({
    method: "get",
    path: `${base}/sessions/{session_id}/objects/{file_id}`,
    tags,
    summary: "A file's metadata (LibreChat's freshness probe)",
    security,
    request: { params: SessionFileParams, query: EntityQuery },
    responses: { 200: json(ObjectInfo, "The file"), ...errors },
  });
  registry.registerPath({
    method: "delete",
    path: `${base}/files/{session_id}/{file_id}`,
    tags,
    summary: "Delete a file",
    security,
    request: { params: SessionFileParams, query: EntityQuery },
    responses: { 200: json(z.object({ message: z.string() }), "Deleted"), ...errors },
  });
  registry.registerPath({
    method: "get",
    path: `${base}/health`,
    tags,
    summary: "Liveness",
    responses: { 200: json(z.object({ status: z.literal("ok") }), "Up") },
  });
}
