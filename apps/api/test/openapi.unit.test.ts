import { describe, expect, it } from "vitest";
import { loadApiEnv } from "../src/env";
import { buildOpenApiDocument } from "../src/openapi";

describe("openapi document", () => {
  it("is generated from the request schemas, limits included", () => {
    const env = loadApiEnv({ MAX_EXECUTION_TIMEOUT_MS: "120000" });
    const doc = buildOpenApiDocument(env);
    const post = doc.paths?.["/v1/executions"]?.post as { requestBody: { content: Record<string, { schema: { $ref: string } }> } };
    expect(post.requestBody.content["application/json"]?.schema.$ref).toBe("#/components/schemas/CreateExecutionRequest");
    const schema = doc.components?.schemas?.CreateExecutionRequest as { required: string[]; properties: Record<string, { maximum?: number }> };
    expect(schema.required).toEqual(expect.arrayContaining(["chatId", "messageId", "code"]));
    expect(schema.properties.timeoutMs?.maximum).toBe(120000);
  });
});
