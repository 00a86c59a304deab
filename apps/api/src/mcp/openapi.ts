import type { OpenAPIRegistry } from "@asteasolutions/zod-to-openapi";
import { z } from "zod";
import { ErrorBody } from "../schemas";
import { toolSchemas } from "./server";

const JsonRpcRequest = z
  .object({
    jsonrpc: z.literal("2.0"),
    id: z.union([z.string(), z.number()]).optional(),
    method: z.string().describe("initialize, tools/list, tools/call, server/discover, ..."),
    params: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: "McpJsonRpcRequest" });

/** /mcp is JSON-RPC (the Model Context Protocol); its tools are listed in the description, their schemas by tools/list. */
export function registerMcpPaths(registry: OpenAPIRegistry, security: Array<Record<string, string[]>>): void {
  const tools = Object.entries(toolSchemas)
    .map(([name, s]) => `- \`${name}\`: ${JSON.stringify(z.toJSONSchema(s.input).properties)}`)
    .join("\n");
  registry.registerPath({
    method: "post",
    path: "/mcp",
    tags: ["MCP"],
    summary: "Model Context Protocol over Streamable HTTP (stateless; 2025-06-18, 2025-11-25, 2026-07-28)",
    description: `A JSON-RPC message of the Model Context Protocol. Tools (arguments; results in tools/list outputSchema):\n${tools}`,
    security,
    request: { body: { content: { "application/json": { schema: JsonRpcRequest } } } },
    responses: {
      200: {
        description: "The JSON-RPC response, as JSON or as a text/event-stream carrying progress notifications first",
        content: {
          "application/json": { schema: z.record(z.string(), z.unknown()) },
          "text/event-stream": { schema: z.string() },
        },
      },
      400: {
        description: "Not JSON-RPC (parse error -32700, invalid request -32600)",
        content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
      },
      401: {
        description: 'No or a wrong API key; `WWW-Authenticate: Bearer realm="codeinterp"`',
        content: { "application/json": { schema: ErrorBody } },
      },
    },
  });
}
