import { createHash, randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// v1, as LibreChat embeds it (packages/api/src/mcp/connection.ts: Client + StreamableHTTPClientTransport
// with the configured headers in requestInit).
import { Client as ClientV1 } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport as TransportV1 } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
// v2: negotiates 2026-07-28 and falls back to the 2025 handshake.
import { Client as ClientV2, StreamableHTTPClientTransport as TransportV2 } from "@modelcontextprotocol/client";
import { startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// The MCP server at /mcp against the real stack (API, worker, Jupyter, Postgres, Redis), through the
// official client SDKs of both generations.
let stack: TestStack;
let alice: { userId: string; key: string };
let bob: { userId: string; key: string };
let db: pg.Client;
const UPLOAD_LIMIT = 64 * 1024;
// Links start with PUBLIC_URL (the address users reach), whatever host the request came in on.
const PUBLIC_URL = "https://ci.example.test";
const reachable = (url: string) => url.replace(PUBLIC_URL, stack.url);

interface ToolResult {
  content: Array<{ type: string; text?: string; data?: string; mimeType?: string }>;
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
}
interface FileEntry {
  name: string;
  path: string;
  size: number;
  mime_type: string;
  url: string;
}

async function connectV1(key: string) {
  const client = new ClientV1({ name: "codeinterp-test-v1", version: "1.0.0" });
  const transport = new TransportV1(new URL(`${stack.url}/mcp`), {
    requestInit: { headers: { authorization: `Bearer ${key}` } },
  });
  await client.connect(transport);
  return { client, transport };
}

/** The v2 client, negotiating (`auto`: server/discover, 2026-07-28) unless told to stay on the 2025 handshake. */
async function connectV2(key: string, mode: "auto" | "legacy" = "auto") {
  const client = new ClientV2({ name: "codeinterp-test-v2", version: "2.0.0" }, { versionNegotiation: { mode } });
  await client.connect(
    new TransportV2(new URL(`${stack.url}/mcp`), { requestInit: { headers: { authorization: `Bearer ${key}` } } }),
  );
  return client;
}

const text = (r: ToolResult) =>
  r.content
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function countRows(userId: string) {
  const ex = await db.query<{ n: string }>("SELECT count(*) AS n FROM executions WHERE user_id = $1", [userId]);
  const files = await db.query<{ n: string }>("SELECT count(*) AS n FROM files WHERE user_id = $1", [userId]);
  return { executions: Number(ex.rows[0]?.n), files: Number(files.rows[0]?.n) };
}

beforeAll(async () => {
  stack = await startTestStack({
    env: {
      MCP_UPLOAD_MAX_BYTES: String(UPLOAD_LIMIT),
      PUBLIC_URL,
      // Allowed by the operator, refused anyway: these are inside the network.
      MCP_URL_ALLOWLIST: "127.0.0.1,169.254.169.254,10.1.2.3,localhost",
    },
  });
  alice = await stack.newUser();
  bob = await stack.newUser();
  db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
}, 120_000);

afterAll(async () => {
  await db?.end();
  await stack?.close();
});

describe("MCP server at /mcp", () => {
  it("connects with the v1 client (2025-11-25) and lists the four tools with input and output schemas", async () => {
    const { client, transport } = await connectV1(alice.key);
    try {
      expect(transport.protocolVersion).toBe("2025-11-25");
      expect(client.getServerVersion()?.name).toBe("codeinterp");
      expect(client.getInstructions()).toContain("/mnt/data");
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(["execute_code", "list_files", "read_file", "upload_file"]);
      const byName = new Map(tools.map((t) => [t.name, t]));
      expect(byName.get("execute_code")?.inputSchema.required).toEqual(["code"]);
      expect(Object.keys(byName.get("execute_code")?.inputSchema.properties ?? {}).sort()).toEqual([
        "code",
        "session_id",
        "timeout_seconds",
      ]);
      expect(Object.keys(byName.get("execute_code")?.outputSchema?.properties ?? {}).sort()).toEqual([
        "error",
        "files",
        "session_id",
        "status",
        "stderr",
        "stdout",
      ]);
      expect(Object.keys(byName.get("upload_file")?.inputSchema.properties ?? {}).sort()).toEqual([
        "content_base64",
        "name",
        "session_id",
        "url",
      ]);
      expect(byName.get("list_files")?.inputSchema.required).toEqual(["session_id"]);
      expect(byName.get("read_file")?.inputSchema.required?.slice().sort()).toEqual(["path", "session_id"]);
      expect(byName.get("execute_code")?.description).toMatch(/session_id/);
    } finally {
      await client.close();
    }
  });

  it("connects with the v2 client on the 2026-07-28 revision, and on the 2025 handshake (its default)", async () => {
    for (const [mode, revision] of [
      ["auto", "2026-07-28"],
      ["legacy", "2025-11-25"],
    ] as const) {
      const client = await connectV2(alice.key, mode);
      try {
        expect(client.getNegotiatedProtocolVersion()).toBe(revision);
        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name).sort()).toEqual(["execute_code", "list_files", "read_file", "upload_file"]);
      } finally {
        await client.close();
      }
    }
  });

  it("answers a 2025-06-18 initialize with that revision, and no Mcp-Session-Id (stateless)", async () => {
    const res = await fetch(`${stack.url}/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${alice.key}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
      },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "old", version: "0" } },
      }),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("mcp-session-id")).toBeNull();
    expect(await res.text()).toContain('"protocolVersion":"2025-06-18"');
  });

  it("refuses a request without a key with 401 and WWW-Authenticate: Bearer", async () => {
    const res = await fetch(`${stack.url}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer realm="codeinterp"/);
    const wrong = await fetch(`${stack.url}/mcp`, {
      method: "POST",
      headers: { authorization: "Bearer not-a-key", "content-type": "application/json" },
      body: "{}",
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("v1: uploads a CSV, analyses it, returns the chart as image content and as a link to the exact bytes", async () => {
    const { client } = await connectV1(alice.key);
    try {
      const csv = "region,amount\nnorth,120\nsouth,80\neast,55\nwest,45\n";
      const up = (await client.callTool({
        name: "upload_file",
        arguments: { name: "sales.csv", content_base64: Buffer.from(csv).toString("base64") },
      })) as ToolResult;
      expect(up.isError).toBeFalsy();
      const { session_id, path } = up.structuredContent as { session_id: string; path: string };
      expect(path).toBe("/mnt/data/sales.csv");
      expect(session_id).toMatch(/^[A-Za-z0-9_-]{22}$/);

      const code = [
        "import hashlib, pandas as pd, matplotlib",
        "matplotlib.use('Agg')",
        "import matplotlib.pyplot as plt",
        "df = pd.read_csv('/mnt/data/sales.csv')",
        "print('total', df.amount.sum())",
        "df.plot.bar(x='region', y='amount')",
        "plt.savefig('/mnt/data/chart.png')",
        "print('sha', hashlib.sha256(open('/mnt/data/chart.png','rb').read()).hexdigest())",
      ].join("\n");
      const run = (await client.callTool({ name: "execute_code", arguments: { code, session_id } })) as ToolResult;
      expect(run.isError).toBeFalsy();
      const out = run.structuredContent as { stdout: string; status: string; files: FileEntry[]; session_id: string };
      expect(out.status).toBe("completed");
      expect(out.session_id).toBe(session_id);
      expect(out.stdout).toContain("total 300");
      const written = /sha ([0-9a-f]{64})/.exec(out.stdout)?.[1];
      const chart = out.files.find((f) => f.path === "/mnt/data/chart.png");
      expect(chart?.mime_type).toBe("image/png");
      expect(chart?.url.startsWith(`${PUBLIC_URL}/links/`)).toBe(true);
      expect(text(run)).toContain(chart!.url);

      const image = run.content.find((c) => c.type === "image");
      expect(image?.mimeType).toBe("image/png");
      expect(sha256(Buffer.from(image!.data!, "base64"))).toBe(written);
      // The link works without a key, as a chat renders it.
      const download = await fetch(reachable(chart!.url));
      expect(download.status).toBe(200);
      expect(sha256(Buffer.from(await download.arrayBuffer()))).toBe(written);

      const listed = (await client.callTool({ name: "list_files", arguments: { session_id } })) as ToolResult;
      const paths = (listed.structuredContent as { files: FileEntry[] }).files.map((f) => f.path);
      expect(paths).toEqual(["/mnt/data/chart.png", "/mnt/data/sales.csv"]);

      const readCsv = (await client.callTool({
        name: "read_file",
        arguments: { session_id, path: "sales.csv" },
      })) as ToolResult;
      expect(text(readCsv)).toBe(csv);
      const readChart = (await client.callTool({
        name: "read_file",
        arguments: { session_id, path: "/mnt/data/chart.png" },
      })) as ToolResult;
      const png = readChart.content.find((c) => c.type === "image");
      expect(sha256(Buffer.from(png!.data!, "base64"))).toBe(written);
    } finally {
      await client.close();
    }
  });

  it("v2: keeps variables across calls with the session_id, and reports progress with the output so far", async () => {
    const client = await connectV2(alice.key);
    try {
      const first = (await client.callTool({ name: "execute_code", arguments: { code: "x = 41" } })) as ToolResult;
      const { session_id } = first.structuredContent as { session_id: string };
      expect(text(first)).toContain(`session_id: ${session_id}`);
      const messages: string[] = [];
      const second = (await client.callTool(
        {
          name: "execute_code",
          arguments: { code: "import time\nprint('step one', flush=True)\ntime.sleep(1.5)\nprint(x + 1)", session_id },
        },
        { onprogress: (p) => messages.push(p.message ?? "") },
      )) as ToolResult;
      expect((second.structuredContent as { stdout: string }).stdout).toBe("step one\n42\n");
      expect(messages.some((m) => m.includes("step one"))).toBe(true);

      const failed = (await client.callTool({
        name: "execute_code",
        arguments: { code: "1/0", session_id },
      })) as ToolResult;
      expect(failed.isError).toBe(true);
      expect((failed.structuredContent as { error: string }).error).toContain("ZeroDivisionError");
    } finally {
      await client.close();
    }
  });

  it("answers another user's session_id exactly as an unknown one, and creates nothing for them", async () => {
    const owner = await connectV2(alice.key);
    const other = await connectV1(bob.key);
    try {
      const made = (await owner.callTool({
        name: "execute_code",
        arguments: { code: "secret = 'alice'\nopen('/mnt/data/private.txt','w').write(secret)" },
      })) as ToolResult;
      const { session_id } = made.structuredContent as { session_id: string };
      const unknown = randomBytes(16).toString("base64url");
      for (const [name, args] of [
        ["execute_code", { code: "print(secret)" }],
        ["list_files", {}],
        ["read_file", { path: "private.txt" }],
        ["upload_file", { name: "x.txt", content_base64: "eA==" }],
      ] as const) {
        const theirs = (await other.client.callTool({ name, arguments: { ...args, session_id } })) as ToolResult;
        const none = (await other.client.callTool({
          name,
          arguments: { ...args, session_id: unknown },
        })) as ToolResult;
        expect(theirs.isError).toBe(true);
        expect(theirs).toEqual(none);
        expect(text(theirs)).toMatch(/^Unknown session_id/);
      }
      expect(await countRows(bob.userId)).toEqual({ executions: 0, files: 0 });
    } finally {
      await owner.close();
      await other.client.close();
    }
  });

  it("with a tenant key, each end user named in X-End-User (LibreChat's {{LIBRECHAT_USER_ID}}) is a user of its own", async () => {
    const res = await fetch(`${stack.url}/v1/admin/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ userId: `librechat-${randomBytes(3).toString("hex")}`, kind: "tenant" }),
    });
    const tenant = (await res.json()) as { key: string };
    const as = async (endUser: string) => {
      const client = new ClientV1({ name: "librechat-like", version: "1.0.0" });
      await client.connect(
        new TransportV1(new URL(`${stack.url}/mcp`), {
          requestInit: { headers: { authorization: `Bearer ${tenant.key}`, "x-end-user": endUser } },
        }),
      );
      return client;
    };
    const [u1, u2] = [await as("64f0c0ffee0000000000aaaa"), await as("64f0c0ffee0000000000bbbb")];
    try {
      const made = (await u1.callTool({ name: "execute_code", arguments: { code: "mine = 1" } })) as ToolResult;
      const { session_id } = made.structuredContent as { session_id: string };
      const own = (await u1.callTool({
        name: "execute_code",
        arguments: { code: "print(mine)", session_id },
      })) as ToolResult;
      expect((own.structuredContent as { stdout: string }).stdout).toBe("1\n");
      const theirs = (await u2.callTool({
        name: "execute_code",
        arguments: { code: "print(mine)", session_id },
      })) as ToolResult;
      expect([theirs.isError, text(theirs)]).toEqual([true, expect.stringMatching(/^Unknown session_id/)]);
    } finally {
      await Promise.all([u1.close(), u2.close()]);
    }
  });

  it("answers bad input with a JSON-RPC error or an isError result, and creates nothing", async () => {
    const carol = await stack.newUser();
    const { client } = await connectV1(carol.key);
    try {
      const refused = async (name: string, args: Record<string, unknown>, pattern: RegExp) => {
        try {
          const r = (await client.callTool({ name, arguments: args })) as ToolResult;
          expect(r.isError).toBe(true);
          expect(text(r)).toMatch(pattern);
        } catch (err) {
          expect(String(err)).toMatch(pattern);
        }
      };
      await refused("execute_code", {}, /code/);
      await refused("no_such_tool", {}, /no_such_tool/);
      const big = randomBytes(UPLOAD_LIMIT + 1024).toString("base64");
      await refused("upload_file", { name: "big.bin", content_base64: big }, /larger than the upload limit/);
      await refused("upload_file", { name: "x", content_base64: "%%%not base64" }, /not valid base64/);
      for (const url of ["http://127.0.0.1:8080/x", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/"])
        await refused("upload_file", { name: "x", url }, /private, loopback or metadata/);
      await refused("upload_file", { name: "x", url: "http://localhost:1/x" }, /inside the network/);
      await refused("upload_file", { name: "x", url: "https://example.com/x.csv" }, /not on this server's list/);
      await refused("upload_file", { name: "x" }, /exactly one of content_base64 or url/);

      const post = (body: string) =>
        fetch(`${stack.url}/mcp`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${carol.key}`,
            "content-type": "application/json",
            accept: "application/json, text/event-stream",
          },
          body,
        });
      const malformed = await post("{not json");
      expect(malformed.status).toBe(400);
      expect(((await malformed.json()) as { error: { code: number } }).error.code).toBe(-32700);
      const noMethod = await post(JSON.stringify({ jsonrpc: "2.0", id: 1, params: {} }));
      expect(noMethod.status).toBeGreaterThanOrEqual(400);
      expect(JSON.stringify(await noMethod.json())).toMatch(/"code":-326\d\d/);

      expect(await countRows(carol.userId)).toEqual({ executions: 0, files: 0 });
    } finally {
      await client.close();
    }
  });
});
