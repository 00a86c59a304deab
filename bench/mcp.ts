import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from "@modelcontextprotocol/client";
import type { apiClient } from "./client";
import { now, round, summarize } from "./stats";
import type { Summary } from "./stats";

type ToolOutput = { structuredContent?: { session_id?: string; stdout?: string } };

/**
 * What MCP adds to a warm print(1): the same code in a warm kernel over /v1 (submit + long-poll) and through
 * execute_code with a session_id, from the v1 client SDK (as LibreChat embeds it, 2025-11-25) and the v2
 * client (2026-07-28), interleaved so load and drift hit all three alike.
 */
export async function benchMcp(apiUrl: string, key: string, ci: ReturnType<typeof apiClient>, n: number) {
  const headers = { authorization: `Bearer ${key}` };
  const v1 = new ClientV1({ name: "bench-v1", version: "1" });
  await v1.connect(new TransportV1(new URL(`${apiUrl}/mcp`), { requestInit: { headers } }));
  const v2 = new ClientV2({ name: "bench-v2", version: "2" }, { versionNegotiation: { mode: "auto" } });
  await v2.connect(new TransportV2(new URL(`${apiUrl}/mcp`), { requestInit: { headers } }));
  try {
    const call = async (client: ClientV1 | ClientV2, session_id?: string) => {
      const t = now();
      const r = (await client.callTool({
        name: "execute_code",
        arguments: { code: "print(1)", ...(session_id ? { session_id } : {}) },
      })) as ToolOutput;
      if (r.structuredContent?.stdout !== "1\n") throw new Error(`execute_code print(1) gave ${JSON.stringify(r)}`);
      return { ms: now() - t, session: r.structuredContent.session_id! };
    };
    const s1 = (await call(v1)).session;
    const s2 = (await call(v2)).session;
    const message = `bench-mcp-${Date.now()}`;
    await ci.run({ messageId: message, code: "print(1)" });
    const rest: number[] = [];
    const viaV1: number[] = [];
    const viaV2: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await ci.run({ messageId: message, code: "print(1)" });
      rest.push(r.ms);
      viaV1.push((await call(v1, s1)).ms);
      viaV2.push((await call(v2, s2)).ms);
    }
    const sum = (s: Summary) => ({ n: s.n, p50: round(s.p50, 1), p95: round(s.p95, 1) });
    const [r, a, b] = [summarize(rest), summarize(viaV1), summarize(viaV2)];
    return {
      v1_rest_warm_print: sum(r),
      mcp_sdk1_2025_11_25_warm_print: sum(a),
      mcp_sdk2_2026_07_28_warm_print: sum(b),
      mcp_sdk1_added_p50_ms: round(a.p50 - r.p50, 1),
      mcp_sdk2_added_p50_ms: round(b.p50 - r.p50, 1),
    };
  } finally {
    await v1.close();
    await v2.close();
  }
}
