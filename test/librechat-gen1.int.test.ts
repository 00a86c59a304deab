import { readFile } from "node:fs/promises";
import path from "node:path";
import nodeFetch from "node-fetch";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { libreChatDownload, libreChatUpload, toolCall } from "./helpers/librechat";
import { startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Gen-1 (LibreChat <= 0.8.5, `@librechat/agents` <= 3.0.x), driven by the older client itself: the npm
// alias `librechat-agents-gen1` = `@librechat/agents@3.0.50`. Its CodeExecutor (dist/cjs/tools/CodeExecutor.cjs)
// reads LIBRECHAT_CODE_BASEURL when the module loads, sends `X-API-Key`, spreads its factory params (the
// API key included) into the /exec body, and for a `session_id` argument first lists
// `GET /files/<session_id>?detail=full`, taking each file's id from `name` = "<session>/<id>".

type Gen1Tool = {
  invoke(
    input: unknown,
  ): Promise<{ content: string; artifact: { session_id: string; files?: Array<{ id: string; name: string }> } }>;
};
let stack: TestStack;
let base: string;
let key: string;
let createTool: (params: Record<string, unknown>) => Gen1Tool;

beforeAll(async () => {
  stack = await startTestStack();
  base = `${stack.url}/librechat/v1`;
  key = (await stack.newUser("acme-gen1")).key;
  process.env.LIBRECHAT_CODE_BASEURL = base;
  const mod = (await import("librechat-agents-gen1")) as { createCodeExecutionTool: typeof createTool };
  createTool = mod.createCodeExecutionTool;
});
afterAll(async () => {
  delete process.env.LIBRECHAT_CODE_BASEURL;
  await stack?.close();
});

describe("LibreChat Code Interpreter API, Gen-1 client", () => {
  let execSession: string;
  let upload: { session_id: string; files: Array<{ fileId: string; filename: string }> };

  it("uploads with entity-less Gen-1 fields and answers session_id", async () => {
    const res = await libreChatUpload(base, {
      userId: "alice",
      auth: { "X-API-Key": key },
      fields: {},
      files: [{ name: "in.csv", bytes: "n\n5\n7\n" }],
    });
    expect(res.status).toBe(200);
    upload = res.body;
    expect(upload.session_id).toMatch(/^[A-Za-z0-9_-]{21}$/);
    // Gen-1 priming (crud.js getSessionInfo): `detail=summary`, matched by name prefix "<session>/<fileId>".
    const summary = (await (
      await nodeFetch(`${base}/files/${upload.session_id}?detail=summary`, { headers: { "X-API-Key": key } })
    ).json()) as Array<{ name: string; lastModified: string }>;
    expect(
      summary.some(
        (o) =>
          o.name.startsWith(`${upload.session_id}/${upload.files[0]!.fileId}`) &&
          !Number.isNaN(Date.parse(o.lastModified)),
      ),
    ).toBe(true);
  });

  it("runs with Gen-1 file refs and X-API-Key, and never keeps the key the client leaks into the body", async () => {
    const tool = createTool({
      LIBRECHAT_CODE_API_KEY: key,
      user_id: "alice",
      files: [{ session_id: upload.session_id, id: upload.files[0]!.fileId, name: "in.csv" }],
    });
    const msg = await tool.invoke(
      toolCall({
        lang: "py",
        code: "import pandas as pd\ns = pd.read_csv('/mnt/data/in.csv').n.sum()\nopen('/mnt/data/sum.txt', 'w').write(str(s))\nprint(s)",
      }),
    );
    expect(msg.content).toContain("stdout:\n12");
    expect(msg.content).toContain("/mnt/data/sum.txt");
    execSession = msg.artifact.session_id;
    expect(msg.content).toContain(`session_id: ${execSession}`);
    // Gen-1 downloads name no user: `GET /download/<session>/<file>` with the key only.
    const f = msg.artifact.files![0]!;
    const got = await libreChatDownload(base, execSession, f.id, "", { "X-API-Key": key });
    expect(got.status).toBe(200);
    expect(got.bytes.toString()).toBe("12");
    const logFile = path.join(inject("testRoot"), "logs", `stack-${stack.queuePrefix.replace(/^citest-/, "")}.log`);
    const logged = await readFile(logFile, "utf8");
    expect(logged).toContain("librechat execution accepted");
    expect(logged).not.toContain(key);
    // Nor stored: no row of any table holds it (the key itself is kept as a hash).
    const sql = new pg.Client({ connectionString: stack.databaseUrl });
    await sql.connect();
    try {
      const { rows: tables } = await sql.query<{ name: string }>(
        "SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = current_schema()",
      );
      expect(tables.map((t) => t.name)).toContain("executions");
      for (const { name } of tables) {
        const hit = await sql.query(`SELECT 1 FROM ${name} t WHERE t::text LIKE '%' || $1 || '%' LIMIT 1`, [key]);
        expect(hit.rowCount, name).toBe(0);
      }
    } finally {
      await sql.end();
    }
  });

  it("lists the session with detail=full when the model passes session_id, and the next run sees its files", async () => {
    const tool = createTool({ LIBRECHAT_CODE_API_KEY: key, user_id: "alice" });
    const msg = await tool.invoke(
      toolCall({ lang: "py", code: "print(open('/mnt/data/sum.txt').read())", session_id: execSession }),
    );
    expect(msg.content).toContain("stdout:\n12");
  });

  it("does not let another LibreChat user run with the first user's session", async () => {
    const tool = createTool({ LIBRECHAT_CODE_API_KEY: key, user_id: "bob" });
    await expect(
      tool.invoke(toolCall({ lang: "py", code: "print(open('/mnt/data/sum.txt').read())", session_id: execSession })),
    ).rejects.toThrow(/status: 403/);
  });

  it("uploads an agent's file with entity_id, which another user of the agent lists, downloads and runs with", async () => {
    // Gen-1 LibreChat sent an agent's files with the `entity_id` field, and named the agent again as
    // `?entity_id=` on the priming listing and the download (fileIdentifier "<session>/<fileId>?entity_id=").
    const up = await libreChatUpload(base, {
      userId: "alice",
      auth: { "X-API-Key": key },
      fields: { entity_id: "agent-9" },
      files: [{ name: "kb.txt", bytes: "agent nine" }],
    });
    expect(up.status).toBe(200);
    const sid = up.body.session_id as string;
    const fid = up.body.files[0].fileId as string;
    const list = (q: string) => nodeFetch(`${base}/files/${sid}?detail=summary${q}`, { headers: { "X-API-Key": key } });
    expect((await list("&entity_id=agent-9")).status).toBe(200);
    expect((await list("&entity_id=agent-8")).status).toBe(403);
    const got = await libreChatDownload(base, sid, fid, "?entity_id=agent-9", { "X-API-Key": key });
    expect(got.bytes.toString()).toBe("agent nine");
    const tool = createTool({
      LIBRECHAT_CODE_API_KEY: key,
      user_id: "bob",
      files: [{ session_id: sid, id: fid, name: "kb.txt" }],
    });
    const msg = await tool.invoke(toolCall({ lang: "py", code: "print(open('/mnt/data/kb.txt').read())" }));
    expect(msg.content).toContain("stdout:\nagent nine");
  });

  it("answers an unsupported language with 400", async () => {
    const tool = createTool({ LIBRECHAT_CODE_API_KEY: key, user_id: "alice" });
    await expect(tool.invoke(toolCall({ lang: "go", code: "package main" }))).rejects.toThrow(/status: 400/);
  });
});
