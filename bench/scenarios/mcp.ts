// What MCP adds to a warm print(1): /v1 against execute_code from the v1 and v2 client SDKs (bench/mcp.ts).
import type { Bench } from "../context";
import { benchMcp } from "../mcp";

export async function mcp(b: Bench): Promise<void> {
  const { ci, P, results, log, apiUrl, key } = b;
  log("mcp: warm print(1) over /v1 vs execute_code from the v1 and v2 MCP client SDKs");
  results.mcp = await benchMcp(apiUrl, key, ci, P.mcpN);
  log(`mcp: ${JSON.stringify(results.mcp)}`);
}
