import { describe, expect, it } from "vitest";
import { loadApiEnv } from "../src/env";
import { buildOpenApiDocument } from "../src/openapi";

describe("openapi document", () => {
  it("is generated from the request schemas, limits included", () => {
    const env = loadApiEnv({ MAX_EXECUTION_TIMEOUT_MS: "120000" });
    const doc = buildOpenApiDocument(env);
    const post = doc.paths?.["/v1/executions"]?.post as {
      requestBody: { content: Record<string, { schema: { $ref: string } }> };
    };
    expect(post.requestBody.content["application/json"]?.schema.$ref).toBe(
      "#/components/schemas/CreateExecutionRequest",
    );
    const schema = doc.components?.schemas?.CreateExecutionRequest as {
      required: string[];
      properties: Record<string, { maximum?: number }>;
    };
    expect(schema.required).toEqual(expect.arrayContaining(["chatId", "messageId", "code"]));
    expect(schema.properties.timeoutMs?.maximum).toBe(120000);
  });

  it("documents the signed-link routes, the public download outside /v1 and the configured lifetime cap", () => {
    const doc = buildOpenApiDocument(loadApiEnv({ SIGNED_LINK_MAX_TTL_S: "600" }));
    expect(Object.keys(doc.paths ?? {})).toEqual(
      expect.arrayContaining(["/v1/files/{id}/links", "/v1/messages/{messageId}/links", "/links/{id}"]),
    );
    const download = doc.paths?.["/links/{id}"]?.get as { security?: unknown; responses: Record<string, unknown> };
    expect(download.security).toBeUndefined();
    expect(Object.keys(download.responses)).toEqual(expect.arrayContaining(["200", "403", "404"]));
    const body = doc.components?.schemas?.CreateLinkRequest as { properties: Record<string, { maximum?: number }> };
    expect(body.properties.expiresIn?.maximum).toBe(600);
  });
});
