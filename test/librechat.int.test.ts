import { createHash } from "node:crypto";
// LibreChat's own client for its Code Interpreter API (the `execute_code` tool), pinned in package.json.
import { createCodeExecutionTool, fetchSessionFiles } from "@librechat/agents";
import nodeFetch from "node-fetch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { libreChatDownload, libreChatUpload, toolCall } from "./helpers/librechat";
import type { CodeEnvFile } from "./helpers/librechat";
import { startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Gen-2 (`@librechat/agents` 3.9.x, LibreChat 0.8.6+): the tool is created as LibreChat's server creates it
// (`createCodeExecutionTool({ baseUrl, user_id, files, authHeaders })`) and invoked the way its ToolNode
// invokes it (see helpers/librechat.ts). No model is involved: the tool calls are written here.

const ID = /^[A-Za-z0-9_-]{21}$/;
const RATE = 40;
const MAX_UPLOAD = 256 * 1024;
let stack: TestStack;
let base: string;
let auth: Record<string, string>;

type Artifact = { session_id: string; files?: CodeEnvFile[]; runtime_session_id?: string; runtime_status?: string };
type ToolMessage = { content: string; artifact: Artifact };

function toolFor(userId: string, extra: Record<string, unknown> = {}) {
  return createCodeExecutionTool({ baseUrl: base, user_id: userId, authHeaders: auth, ...extra });
}
async function run(
  tool: ReturnType<typeof toolFor>,
  args: Record<string, unknown>,
  prev?: Artifact,
): Promise<ToolMessage> {
  return (await tool.invoke(toolCall(args, prev))) as unknown as ToolMessage;
}
/** POST /exec as the tenant, the way LibreChat's server sends it, without the client's own error handling. */
const postExec = (body: Record<string, unknown>) =>
  nodeFetch(`${base}/exec`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const userQuery = (u: string) => `?kind=user&id=${u}`;
// Downloads, as Alice, a file an exec returned the way processCodeOutput does: from its storage_session_id,
// else from the exec's session_id.
const downloadOutput = (artifact: Artifact, f: CodeEnvFile) =>
  libreChatDownload(base, f.storage_session_id ?? artifact.session_id, f.id, userQuery("alice"), auth);

beforeAll(async () => {
  stack = await startTestStack({
    env: { LIBRECHAT_RATE_LIMIT_PER_MINUTE: String(RATE), MAX_UPLOAD_BYTES: String(MAX_UPLOAD) },
  });
  base = `${stack.url}/librechat/v1`;
  // One codeinterp API key for the whole LibreChat deployment: the tenant.
  const { key } = await stack.newUser("acme-librechat");
  auth = { Authorization: `Bearer ${key}` };
});
afterAll(async () => {
  await stack?.close();
});

describe("LibreChat Code Interpreter API, Gen-2 client", () => {
  it("runs print and answers in the shape the client formats", async () => {
    const msg = await run(toolFor("alice"), { lang: "py", code: 'print("hello from librechat")' });
    expect(msg.content).toContain("stdout:\nhello from librechat");
    expect(msg.artifact.session_id).toMatch(ID);
    const health = await nodeFetch(`${base}/health`);
    expect(health.status).toBe(200);
    const doc = (await (await nodeFetch(`${stack.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    for (const [method, p] of [
      ["post", "/exec"],
      ["post", "/upload"],
      ["post", "/upload/batch"],
      ["get", "/download/{session_id}/{file_id}"],
      ["get", "/files/{session_id}"],
      ["get", "/sessions/{session_id}/objects/{file_id}"],
      ["delete", "/files/{session_id}/{file_id}"],
      ["get", "/health"],
    ] as const) {
      expect(doc.paths[`/librechat/v1${p}`]?.[method], `${method} ${p}`).toBeDefined();
    }
  });

  it("returns a Python error's traceback on stderr, after what the code printed", async () => {
    const msg = await run(toolFor("alice"), { lang: "py", code: "print('before')\n1 / 0" });
    expect(msg.content).toContain("stdout:\nbefore");
    expect(msg.content).toMatch(/stderr:\n[\s\S]*ZeroDivisionError/);
    expect(msg.content).not.toMatch(/\u001b\[/);
  });

  it("reads a CSV uploaded as LibreChat's server uploads it, with pandas", async () => {
    // The multipart shape of LibreChat's `uploadCodeEnvFile` (packages/api/src/files/code/form.ts, called from
    // api/server/services/Files/Code/crud.js): fields kind/id, then the file part; see helpers/librechat.ts.
    const up = await libreChatUpload(base, {
      userId: "alice",
      auth,
      files: [{ name: "sales.csv", bytes: "region,amount\nnorth,10\nsouth,32\n" }],
    });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ message: "success", files: [{ filename: "sales.csv" }] });
    expect(up.body.storage_session_id).toMatch(ID);
    expect(up.body.files[0].fileId).toMatch(ID);
    // LibreChat's priming: the freshness probe, then the ref it passes as the factory's `files`.
    const probe = await nodeFetch(
      `${base}/sessions/${up.body.storage_session_id}/objects/${up.body.files[0].fileId}${userQuery("alice")}`,
      { headers: auth },
    );
    expect(probe.status).toBe(200);
    expect(Date.now() - Date.parse(((await probe.json()) as { lastModified: string }).lastModified)).toBeLessThan(
      60_000,
    );
    const ref = {
      id: up.body.files[0].fileId,
      resource_id: up.body.files[0].fileId,
      name: "sales.csv",
      storage_session_id: up.body.storage_session_id,
      kind: "user",
    };
    const msg = await run(toolFor("alice", { files: [ref] }), {
      lang: "py",
      code: "import pandas as pd\ndf = pd.read_csv('/mnt/data/sales.csv')\nprint('total', df['amount'].sum())",
    });
    expect(msg.content).toContain("total 42");
  });

  let first: Artifact;
  let hashes: Record<string, string>;

  it("returns a chart and an xlsx that download byte-exact with kind/id", async () => {
    const code = [
      "import hashlib, pandas as pd, matplotlib",
      "matplotlib.use('Agg')",
      "import matplotlib.pyplot as plt",
      "df = pd.DataFrame({'x': [1, 2, 3], 'y': [3, 1, 2]})",
      "plt.plot(df.x, df.y); plt.savefig('/mnt/data/chart.png')",
      "df.to_excel('/mnt/data/report.xlsx', index=False)",
      "for n in ['chart.png', 'report.xlsx']: print(n, hashlib.sha256(open('/mnt/data/' + n, 'rb').read()).hexdigest())",
    ].join("\n");
    const msg = await run(toolFor("alice"), { lang: "py", code });
    first = msg.artifact;
    hashes = Object.fromEntries(
      [...msg.content.matchAll(/^(chart\.png|report\.xlsx) ([0-9a-f]{64})$/gm)].map((m) => [m[1], m[2]]),
    );
    const names = (first.files ?? []).map((f) => f.name).sort();
    expect(names).toEqual(["chart.png", "report.xlsx"]);
    expect(msg.content).toMatch(/Generated files|chart\.png/);
    for (const f of first.files ?? []) {
      expect(f.id).toMatch(ID);
      const got = await downloadOutput(first, f);
      expect(got.status).toBe(200);
      expect(sha(got.bytes)).toBe(hashes[f.name]);
    }
    const png = (first.files ?? []).find((f) => f.name === "chart.png")!;
    const got = await downloadOutput(first, png);
    expect(got.bytes.subarray(1, 4).toString()).toBe("PNG");
    expect(got.type).toBe("image/png");
  });

  it("returns a plot shown inline (no savefig) as a file LibreChat can display", async () => {
    const msg = await run(toolFor("alice"), {
      lang: "py",
      code: "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
    });
    const files = msg.artifact.files ?? [];
    expect(files.map((f) => f.name)).toEqual([expect.stringMatching(/\.png$/)]);
    const got = await downloadOutput(msg.artifact, files[0]!);
    expect(got.bytes.subarray(1, 4).toString()).toBe("PNG");
  });

  it("gives the next call the previous call's output through _injected_files", async () => {
    const msg = await run(
      toolFor("alice"),
      { lang: "py", code: "import pandas as pd\nprint(pd.read_excel('/mnt/data/report.xlsx').y.sum())" },
      first,
    );
    expect(msg.content).toContain("stdout:\n6");
  });

  it("keeps two same-name uploads both readable", async () => {
    const a = await libreChatUpload(base, { userId: "alice", auth, files: [{ name: "data.csv", bytes: "v\n1\n" }] });
    const b = await libreChatUpload(base, { userId: "alice", auth, files: [{ name: "data.csv", bytes: "v\n2\n" }] });
    const refs = [a, b].map((u) => ({
      id: u.body.files[0].fileId,
      name: "data.csv",
      storage_session_id: u.body.storage_session_id,
      kind: "user",
    }));
    const msg = await run(toolFor("alice", { files: refs }), {
      lang: "py",
      code: "import os\nfor n in sorted(os.listdir('/mnt/data')): print(repr(n), open('/mnt/data/' + n).read().split()[1])",
    });
    expect(msg.content).toContain("'data.csv' 1");
    expect(msg.content).toContain("'data (2).csv' 2");
  });

  it("uploads a batch, and deletes a file", async () => {
    const up = await libreChatUpload(base, {
      route: "/upload/batch",
      userId: "alice",
      auth,
      files: [
        { name: "a.txt", bytes: "A" },
        { name: "b.txt", bytes: "B" },
      ],
    });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ message: "success", succeeded: 2, failed: 0 });
    const sid = up.body.storage_session_id;
    const listed = (await (
      await nodeFetch(`${base}/files/${sid}?detail=normalized&kind=user&id=alice`, { headers: auth })
    ).json()) as Array<{ id: string; name: string }>;
    expect(listed.map((f) => f.name).sort()).toEqual(["a.txt", "b.txt"]);
    // detail=simple: the object names "<session>/<file id>", as the official server lists them.
    const simple = (await (
      await nodeFetch(`${base}/files/${sid}?detail=simple&kind=user&id=alice`, { headers: auth })
    ).json()) as string[];
    expect(simple.sort()).toEqual(listed.map((f) => `${sid}/${f.id}`).sort());
    // The client's own session listing (dist/cjs/tools/ProgrammaticToolCalling.cjs fetchSessionFiles: detail=full, kind/id).
    const viaClient = await fetchSessionFiles(base, sid, { kind: "user", id: "alice" }, auth);
    expect(viaClient.map((f) => [f.name, f.storage_session_id, f.id]).sort()).toEqual(
      listed.map((f) => [f.name, sid, f.id]).sort(),
    );
    expect(await fetchSessionFiles(base, sid, { kind: "user", id: "bob" }, auth)).toEqual([]);
    const refs = up.body.files.map((f: { fileId: string; filename: string }) => ({
      id: f.fileId,
      name: f.filename,
      storage_session_id: sid,
    }));
    const msg = await run(toolFor("alice", { files: refs }), {
      lang: "py",
      code: "print(open('/mnt/data/a.txt').read() + open('/mnt/data/b.txt').read())",
    });
    expect(msg.content).toContain("stdout:\nAB");

    const del = await nodeFetch(`${base}/files/${sid}/${up.body.files[0].fileId}${userQuery("alice")}`, {
      method: "DELETE",
      headers: auth,
    });
    expect(del.status).toBe(200);
    expect((await libreChatDownload(base, sid, up.body.files[0].fileId, userQuery("alice"), auth)).status).toBe(404);
    expect((await libreChatDownload(base, sid, up.body.files[1].fileId, userQuery("alice"), auth)).status).toBe(200);
  });

  it("answers 413 for a file over the limit, and reports it per file in a batch", async () => {
    const big = Buffer.alloc(MAX_UPLOAD + 1, 97);
    const one = await libreChatUpload(base, { userId: "alice", auth, files: [{ name: "big.bin", bytes: big }] });
    expect(one.status).toBe(413);
    const batch = await libreChatUpload(base, {
      route: "/upload/batch",
      userId: "alice",
      auth,
      files: [
        { name: "big.bin", bytes: big },
        { name: "ok.txt", bytes: "fine" },
      ],
    });
    expect(batch.status).toBe(200);
    expect(batch.body).toMatchObject({ message: "partial_success", succeeded: 1, failed: 1 });
    expect(batch.body.files.map((f: { status: string; filename: string }) => `${f.filename}:${f.status}`)).toEqual([
      "big.bin:error",
      "ok.txt:success",
    ]);
    // An /exec body past the JSON limit (6 x MAX_CODE_BYTES, 3 MiB by default) is 413 in LibreChat's error shape.
    const huge = await postExec({ lang: "py", code: "#".repeat(4 * 1024 * 1024), user_id: "alice" });
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ error: "request body is too large" });
  });

  it("shares an agent's files with the agent's users, and only those", async () => {
    // LibreChat uploads an agent's files with kind=agent, id=<agent id>; any user of the agent may attach them.
    const up = await libreChatUpload(base, {
      userId: "alice",
      auth,
      fields: { kind: "agent", id: "agent-42" },
      files: [{ name: "kb.txt", bytes: "agent knowledge" }],
    });
    expect(up.status).toBe(200);
    const sid = up.body.storage_session_id;
    const fid = up.body.files[0].fileId;
    const probe = (q: string) => nodeFetch(`${base}/sessions/${sid}/objects/${fid}${q}`, { headers: auth });
    expect((await probe("?kind=agent&id=agent-42")).status).toBe(200);
    expect((await probe("?kind=agent&id=agent-7")).status).toBe(403);
    expect((await probe(userQuery("bob"))).status).toBe(403);
    const ref = { id: fid, resource_id: "agent-42", name: "kb.txt", storage_session_id: sid, kind: "agent" };
    const msg = await run(toolFor("bob", { files: [ref] }), {
      lang: "py",
      code: "print(open('/mnt/data/kb.txt').read())",
    });
    expect(msg.content).toContain("stdout:\nagent knowledge");
  });

  it("never lets another LibreChat user download, list or use the first user's files", async () => {
    const f = (first.files ?? [])[0]!;
    const sid = f.storage_session_id ?? first.session_id;
    expect((await libreChatDownload(base, sid, f.id, userQuery("bob"), auth)).status).toBe(403);
    const list = await nodeFetch(`${base}/files/${sid}?detail=full&kind=user&id=bob`, { headers: auth });
    expect(list.status).toBe(403);
    const probe = await nodeFetch(`${base}/sessions/${sid}/objects/${f.id}${userQuery("bob")}`, { headers: auth });
    expect(probe.status).toBe(403);
    const del = await nodeFetch(`${base}/files/${sid}/${f.id}${userQuery("bob")}`, { method: "DELETE", headers: auth });
    expect(del.status).toBe(403);
    // Bob's tool with Alice's artifact: refused before anything runs, and the client says so.
    await expect(
      run(toolFor("bob"), { lang: "py", code: "print(open('/mnt/data/report.xlsx','rb').read()[:2])" }, first),
    ).rejects.toThrow(/Code execution is not authorized/);
    // Alice's file is still hers.
    expect((await libreChatDownload(base, sid, f.id, userQuery("alice"), auth)).status).toBe(200);
    // Another tenant (another LibreChat deployment's key) does not even see the session.
    const other = { Authorization: `Bearer ${(await stack.newUser("other-librechat")).key}` };
    expect((await libreChatDownload(base, sid, f.id, userQuery("alice"), other)).status).toBe(404);
    expect((await nodeFetch(`${base}/files/${sid}?detail=full&kind=user&id=alice`, { headers: other })).status).toBe(
      404,
    );
  });

  it("turns an unsupported language into the client's 'request rejected' text", async () => {
    await expect(run(toolFor("alice"), { lang: "rs", code: "fn main() {}" })).rejects.toThrow(
      /The code execution request was rejected/,
    );
    const res = await postExec({ lang: "js", code: "1", user_id: "alice" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: "Unsupported language: js" });
  });

  it("refuses code with a NUL character as a rejected request, in the official server's error shape", async () => {
    await expect(run(toolFor("alice"), { lang: "py", code: "print(1)\0" })).rejects.toThrow(
      /The code execution request was rejected/,
    );
    const res = await postExec({ lang: "py", code: "print(1)\0", user_id: "alice" });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: "invalid_code", error: expect.stringContaining("NUL") });
  });

  it("returns an input the code changed, with its new content", async () => {
    const up = await libreChatUpload(base, { userId: "alice", auth, files: [{ name: "log.txt", bytes: "one\n" }] });
    const ref = { id: up.body.files[0].fileId, name: "log.txt", storage_session_id: up.body.storage_session_id };
    const msg = await run(toolFor("alice", { files: [ref] }), {
      lang: "py",
      code: "open('/mnt/data/log.txt', 'a').write('two\\n')",
    });
    const files = msg.artifact.files ?? [];
    expect(files.map((f) => f.name)).toEqual(["log.txt"]);
    const got = await downloadOutput(msg.artifact, files[0]!);
    expect(got.bytes.toString()).toBe("one\ntwo\n");
    // The upload itself is unchanged.
    const before = await libreChatDownload(base, ref.storage_session_id, ref.id, userQuery("alice"), auth);
    expect(before.bytes.toString()).toBe("one\n");
  });

  it("runs bash in the same workspace and returns its stdout and stderr apart", async () => {
    const up = await libreChatUpload(base, {
      userId: "alice",
      auth,
      files: [{ name: "notes.txt", bytes: "one\ntwo\nthree\n" }],
    });
    const ref = { id: up.body.files[0].fileId, name: "notes.txt", storage_session_id: up.body.storage_session_id };
    const msg = await run(toolFor("alice", { files: [ref] }), {
      lang: "bash",
      code: "wc -l < /mnt/data/notes.txt; pwd; echo oops >&2; echo made > /mnt/data/out.txt",
    });
    expect(msg.content).toContain("stdout:\n3\n/mnt/data");
    expect(msg.content).toContain("stderr:\noops");
    expect((msg.artifact.files ?? []).map((f) => f.name)).toEqual(["out.txt"]);
  });

  it("shares one kernel between calls with the same runtime_session_hint", async () => {
    const tool = toolFor("alice", { statefulSessions: true, runtimeSessionHint: "conversation-7" });
    const a = await run(tool, { lang: "py", code: "answer = 41" });
    const b = await run(tool, { lang: "py", code: "print(answer + 1)" });
    expect(b.content).toContain("stdout:\n42");
    expect(a.artifact.runtime_status).toBe("new");
    expect(b.artifact.runtime_status).toBe("reused");
    expect(b.artifact.runtime_session_id).toBe(a.artifact.runtime_session_id);
    // The hint is the client's word: another LibreChat user sending the same one gets a kernel of its own.
    const bob = toolFor("bob", { statefulSessions: true, runtimeSessionHint: "conversation-7" });
    const d = await run(bob, { lang: "py", code: "print('answer' in globals())" });
    expect(d.content).toContain("stdout:\nFalse");
    expect(d.artifact.runtime_status).toBe("new");
    // Without the hint every call is fresh, as LibreChat expects.
    const c = await run(toolFor("alice"), { lang: "py", code: "print('answer' in globals())" });
    expect(c.content).toContain("stdout:\nFalse");
  });

  it("stops code at its timeout and says so on stderr, keeping what it printed", async () => {
    const res = await postExec({
      lang: "py",
      code: "print('started', flush=True)\nimport time\ntime.sleep(60)",
      user_id: "alice",
      timeout: 1500,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { stdout: string; stderr: string };
    expect(body.stdout).toContain("started");
    expect(body.stderr).toContain("Time limit exceeded");
  });

  it("refuses a request without credentials or with a wrong key", async () => {
    const none = await nodeFetch(`${base}/exec`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ lang: "py", code: "1", user_id: "alice" }),
    });
    expect(none.status).toBe(401);
    await expect(
      run(createCodeExecutionTool({ baseUrl: base, user_id: "alice", authHeaders: { Authorization: "Bearer nope" } }), {
        lang: "py",
        code: "1",
      }),
    ).rejects.toThrow(/not authorized/);
  });

  it("answers 429 with retry_after_seconds once a LibreChat user is over its rate", async () => {
    // Uploads count too: spend carol's budget cheaply, then the tool shows the client's rate-limit text.
    for (let i = 0; i < RATE; i++) {
      const up = await libreChatUpload(base, { userId: "carol", auth, files: [{ name: "x.txt", bytes: "x" }] });
      expect(up.status).toBe(200);
    }
    const res = await postExec({ lang: "py", code: "1", user_id: "carol" });
    expect(res.status).toBe(429);
    const body = (await res.json()) as { error: string; retry_after_seconds: number };
    expect(body.error).toBe("rate_limited");
    expect(body.retry_after_seconds).toBeGreaterThan(0);
    await expect(run(toolFor("carol"), { lang: "py", code: "1" })).rejects.toThrow(
      /rate-limited\. Retry after \d+ seconds/,
    );
    // Someone else is not affected.
    expect((await run(toolFor("dave"), { lang: "py", code: "print(7)" })).content).toContain("7");
  });
});
