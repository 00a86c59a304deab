import { OpenAPIRegistry, OpenApiGeneratorV31 } from "@asteasolutions/zod-to-openapi";
import type { z } from "zod";
import { executionMemoryBounds } from "@codeinterp/config";
import type { ApiEnv } from "./env";
import { registerFilePaths } from "./openapi-files";
import { registerLinkPaths } from "./openapi-links";
import { registerLibreChatPaths } from "./librechat/openapi";
import { registerJupyterPaths } from "./jupyter/openapi";
import { registerMcpPaths } from "./mcp/openapi";
import {
  ApiKeyCreated,
  ApiKeyInfo,
  ApiKeyList,
  ApiKeyListQuery,
  ApiKeyParams,
  CreateApiKeyBody,
  createExecutionBody,
  ErrorBody,
  Execution,
  ExecutionParams,
  Health,
  Readiness,
  WaitQuery,
} from "./schemas";

const json = (schema: z.ZodType, description: string) => ({ description, content: { "application/json": { schema } } });
const errors = {
  400: json(ErrorBody, "Invalid input"),
  401: json(ErrorBody, "Missing or wrong API key"),
  404: json(ErrorBody, "Not found, or owned by someone else"),
};

/** Built from the same zod schemas that validate requests, so the document cannot drift from the code. */
export function buildOpenApiDocument(
  env: Pick<
    ApiEnv,
    | "MAX_CODE_BYTES"
    | "MAX_EXECUTION_TIMEOUT_MS"
    | "MAX_FILES_PER_EXECUTION"
    | "SIGNED_LINK_MAX_TTL_S"
    | "KERNEL_MEMORY_MB"
    | "KERNEL_MEMORY_MAX_MB"
  >,
) {
  const registry = new OpenAPIRegistry();
  const bearer = registry.registerComponent("securitySchemes", "apiKey", {
    type: "http",
    scheme: "bearer",
    description:
      "An API key. With a tenant key, the header X-End-User names the end user the request acts for (a codeinterp user of its own under the tenant); a user key naming one is refused with 403 end_user_not_allowed.",
  });
  const security = [{ [bearer.name]: [] }];

  registry.registerPath({
    method: "post",
    path: "/v1/admin/api-keys",
    summary: "Create an API key for a user or a tenant (Authorization: Bearer ADMIN_TOKEN)",
    security,
    request: { body: { content: { "application/json": { schema: CreateApiKeyBody } } } },
    responses: { 201: json(ApiKeyCreated, "The key, shown once"), ...errors },
  });
  registry.registerPath({
    method: "get",
    path: "/v1/admin/api-keys",
    summary: "List API keys, newest first, never the keys themselves (Authorization: Bearer ADMIN_TOKEN)",
    security,
    request: { query: ApiKeyListQuery },
    responses: { 200: json(ApiKeyList, "The keys"), ...errors },
  });
  registry.registerPath({
    method: "delete",
    path: "/v1/admin/api-keys/{id}",
    summary: "Revoke an API key (Authorization: Bearer ADMIN_TOKEN); it is refused from then on",
    description:
      "Refused at once by the API process that revoked it; other API processes may accept it until their key cache entry lapses (10 s).",
    security,
    request: { params: ApiKeyParams },
    responses: { 200: json(ApiKeyInfo, "The key, revoked"), ...errors },
  });
  registry.registerPath({
    method: "post",
    path: "/v1/executions",
    summary: "Run code for a chat message; with waitMs, held until it ends or waitMs pass",
    security,
    request: {
      query: WaitQuery,
      body: {
        content: {
          "application/json": {
            schema: createExecutionBody(
              env.MAX_CODE_BYTES,
              env.MAX_EXECUTION_TIMEOUT_MS,
              env.MAX_FILES_PER_EXECUTION,
              executionMemoryBounds(env),
            ),
          },
        },
      },
    },
    responses: {
      200: json(Execution, "With waitMs: the execution, ended within waitMs"),
      202: json(Execution, "Accepted (also for a replayed idempotencyKey); with waitMs, as it is when waitMs passed"),
      409: json(
        ErrorBody,
        "idempotencyKey reused for a different request (idempotency_conflict), or the messageId is already used by this user in another chat (message_in_other_chat)",
      ),
      422: json(ErrorBody, "Some fileIds do not exist"),
      ...errors,
    },
  });
  registry.registerPath({
    method: "get",
    path: "/v1/executions/{id}",
    summary: "An execution; with waitMs, held until it ends or waitMs pass",
    security,
    request: { params: ExecutionParams, query: WaitQuery },
    responses: { 200: json(Execution, "The execution"), ...errors },
  });
  registry.registerPath({
    method: "get",
    path: "/v1/executions/{id}/events",
    summary: "Server-Sent Events: status, stdout, stderr, output, file, then done with the whole execution",
    description: "Replays what already happened, then streams live. Send Last-Event-ID to resume after a reconnect.",
    security,
    request: { params: ExecutionParams },
    responses: {
      200: { description: "An event stream", content: { "text/event-stream": { schema: { type: "string" } } } },
      ...errors,
    },
  });
  registry.registerPath({
    method: "post",
    path: "/v1/executions/{id}/cancel",
    summary: "Cancel: a queued execution ends now; a running one is interrupted and ends as cancelled",
    security,
    request: { params: ExecutionParams },
    responses: {
      202: json(Execution, "Cancellation accepted"),
      409: json(ErrorBody, "The execution already ended"),
      ...errors,
    },
  });
  registerFilePaths(registry, security);
  registerLinkPaths(registry, security, env.SIGNED_LINK_MAX_TTL_S);
  registerLibreChatPaths(registry, env);
  registerJupyterPaths(registry);
  registerMcpPaths(registry, security);
  registry.registerPath({
    method: "get",
    path: "/healthz",
    summary: "Process up",
    responses: { 200: json(Health, "Up") },
  });
  registry.registerPath({
    method: "get",
    path: "/readyz",
    summary: "Database and Redis reachable, and a live worker whose kernel gateway answers",
    description:
      "The kernel gateway's state comes from worker heartbeats in Redis: the API holds no gateway address or token. `problems` says what is wrong in plain words (no live worker; gateway unresponsive since T; restarted N times).",
    responses: { 200: json(Readiness, "Ready"), 503: json(Readiness, "A dependency is down") },
  });

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: "3.1.0",
    info: { title: "codeinterp", version: "0.1.0", description: "Self-hosted code interpreter for chat products." },
  });
}
