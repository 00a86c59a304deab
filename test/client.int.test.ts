import { randomBytes } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CodeinterpApiError,
  CodeinterpTimeoutError,
  createClient,
  filenameFromContentDisposition,
} from "@codeinterp/client";
import type { CodeinterpClient, ExecutionEvent } from "@codeinterp/client";
import { uploadPath } from "@codeinterp/client/node";
import { startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

let stack: TestStack;
let ci: CodeinterpClient;
const msg = () => `msg-${randomBytes(4).toString("hex")}`;

beforeAll(async () => {
  stack = await startTestStack();
  const user = await stack.newUser("client-user");
  ci = createClient({ baseUrl: `${stack.url}/`, apiKey: user.key });
});
afterAll(async () => {
  await stack?.close();
});

describe("@codeinterp/client against the real stack", () => {
  it("uploads bytes, reads the metadata back, downloads the exact bytes and deletes", async () => {
    const bytes = Buffer.from("a,b\n1,2\n");
    const info = await ci.uploadFile(bytes, "../weird/näme.csv");
    expect(info).toMatchObject({ name: "näme.csv", size: bytes.length, mimeType: expect.stringContaining("csv") });
    expect(await ci.getFile(info.id)).toMatchObject({ id: info.id, sha256: info.sha256 });
    expect(Buffer.from(await ci.downloadFile(info.id))).toEqual(bytes);
    const dl = await ci.downloadFileStream(info.id);
    expect(dl.name).toBe("näme.csv");
    expect(dl.size).toBe(bytes.length);
    await dl.body.cancel();
    await ci.deleteFile(info.id);
    const err = await ci.getFile(info.id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodeinterpApiError);
    expect(err).toMatchObject({ status: 404, code: "not_found" });
  });

  it("finds an upload by content, makes signed links, and rewrites sandbox: links in model text", async () => {
    const bytes = Buffer.from(`k\n${randomBytes(6).toString("hex")}\n`);
    const info = await ci.uploadFile(bytes, "linked.csv");
    expect((await ci.findFiles({ sha256: info.sha256, name: "linked.csv" })).map((f) => f.id)).toEqual([info.id]);
    expect(await ci.findFiles({ sha256: info.sha256, name: "other.csv" })).toEqual([]);
    const link = await ci.createLink(info.id, { expiresIn: 30 });
    expect(link).toMatchObject({ fileId: info.id, name: "linked.csv" });
    expect(Buffer.from(await (await fetch(link.url)).arrayBuffer())).toEqual(bytes);
    const messageId = msg();
    const done = await ci.run(
      { chatId: "chat-links", messageId, fileIds: [info.id], code: "print(open('linked.csv').read().count('\\n'))" },
      { timeoutMs: 60_000 },
    );
    expect(done.result?.stdout).toBe("2\n");
    const rewritten = await ci.rewriteLinks(messageId, "See [the data](sandbox:/mnt/data/linked.csv).");
    expect(rewritten.links).toHaveLength(1);
    expect(rewritten.text).toBe(`See [the data](${rewritten.links[0]!.url}).`);
    expect(Buffer.from(await (await fetch(rewritten.links[0]!.url)).arrayBuffer())).toEqual(bytes);
  });

  it("uploads a Blob and a path from disk (Node entry)", async () => {
    const blob = await ci.uploadFile(new Blob(["hello"], { type: "text/plain" }), "hello.txt");
    expect(blob.size).toBe(5);
    const dir = await mkdtemp(path.join(os.tmpdir(), "client-test-"));
    await writeFile(path.join(dir, "disk.json"), '{"k": 1}');
    const fromDisk = await uploadPath(ci, path.join(dir, "disk.json"));
    expect(fromDisk).toMatchObject({ name: "disk.json", size: 8 });
  });

  it("runs code on an attachment, waits, and downloads what it wrote; listings and context see it", async () => {
    const csv = await ci.uploadFile(Buffer.from("x,y\n1,2\n3,4\n"), "data.csv");
    const messageId = msg();
    const chatId = `chat-${randomBytes(3).toString("hex")}`;
    const done = await ci.run(
      {
        chatId,
        messageId,
        fileIds: [csv.id],
        code: "import csv, os\nrows = list(csv.reader(open('data.csv')))\nprint(len(rows))\nos.makedirs('out', exist_ok=True)\nopen('out/sum.txt','w').write(str(sum(int(r[0]) for r in rows[1:])))",
      },
      { timeoutMs: 30_000 },
    );
    expect(done.status).toBe("completed");
    expect(done.result?.stdout).toBe("3\n");
    expect(done.result?.error).toBeNull();
    const out = done.files.find((f) => f.path === "out/sum.txt");
    expect(out).toBeDefined();
    expect(new TextDecoder().decode(await ci.downloadFile(out!.id))).toBe("4");

    const byMessage = await ci.listMessageFiles(messageId);
    expect(byMessage.files.map((f) => f.path)).toEqual(["out/sum.txt"]);
    const byChat = await ci.listChatFiles(chatId);
    expect(byChat.totalFiles).toBe(1);
    expect(byChat.messages[messageId]?.[0]?.id).toBe(out!.id);
    const ctx = await ci.messageContext(messageId);
    expect(ctx.files.map((f) => f.path).sort()).toEqual(["data.csv", "out/sum.txt"]);
    expect(ctx.files.find((f) => f.path === "data.csv")?.preview).toEqual({ kind: "columns", columns: ["x", "y"] });
    expect(ctx.prompt).toContain("/mnt/data");
  });

  it("streams stdout as it comes, then done with the whole execution", async () => {
    const created = await ci.execute({
      chatId: "c-stream",
      messageId: msg(),
      code: "import time, sys\nfor i in range(3):\n    print('tick', i, flush=True)\n    time.sleep(0.3)\nprint('err', file=sys.stderr)",
    });
    expect(created.status).toBe("queued");
    const events: Array<ExecutionEvent & { at: number }> = [];
    for await (const e of ci.stream(created.id)) events.push({ ...e, at: Date.now() });
    const last = events.at(-1)!;
    expect(last.type).toBe("done");
    if (last.type !== "done") throw new Error("unreachable");
    expect(last.execution.status).toBe("completed");
    expect(last.execution.result?.stdout).toBe("tick 0\ntick 1\ntick 2\n");
    const stdout = events.filter((e) => e.type === "stdout");
    expect(stdout.map((e) => (e.type === "stdout" ? e.text : "")).join("")).toBe("tick 0\ntick 1\ntick 2\n");
    // Live: the first tick arrives well before the end.
    expect(last.at - stdout[0]!.at).toBeGreaterThan(400);
    expect(events.some((e) => e.type === "stderr")).toBe(true);
    expect(events.some((e) => e.type === "status" && e.status === "running")).toBe(true);

    // A stream opened after the end replays the stored result as a status and done.
    const again: ExecutionEvent[] = [];
    for await (const e of ci.stream(created.id)) again.push(e);
    expect(again.map((e) => e.type)).toEqual(["status", "done"]);
  });

  it("stops reading when the consumer breaks out of the loop", async () => {
    const created = await ci.execute({
      chatId: "c",
      messageId: msg(),
      code: "import time\nprint('x', flush=True)\ntime.sleep(2)",
    });
    for await (const e of ci.stream(created.id)) {
      if (e.type === "stdout") break;
    }
    const done = await ci.wait(created.id, { timeoutMs: 20_000 });
    expect(done.status).toBe("completed");
  });

  it("wait gives up with CodeinterpTimeoutError carrying the last state; cancel ends it as cancelled", async () => {
    const created = await ci.execute({ chatId: "c", messageId: msg(), code: "import time\ntime.sleep(30)" });
    const err = await ci.wait(created.id, { timeoutMs: 1500, pollMs: 500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodeinterpTimeoutError);
    expect(["queued", "preparing", "running"]).toContain((err as CodeinterpTimeoutError).execution?.status);
    const cancelled = await ci.cancel(created.id);
    expect(cancelled.id).toBe(created.id);
    const done = await ci.wait(created.id, { timeoutMs: 20_000 });
    expect(done.status).toBe("cancelled");
    const again = await ci.cancel(created.id).catch((e: unknown) => e);
    expect(again).toMatchObject({ status: 409, code: "execution_finished" });
  });

  it("reports Python errors in the result and API errors as CodeinterpApiError", async () => {
    const done = await ci.run({ chatId: "c", messageId: msg(), code: "raise KeyError('nope')" }, { timeoutMs: 30_000 });
    expect(done.status).toBe("completed");
    expect(done.result?.error).toMatchObject({ ename: "KeyError" });

    const same1 = await ci.execute({ chatId: "c", messageId: "m-idem", code: "1", idempotencyKey: "k1" });
    const same2 = await ci.execute({ chatId: "c", messageId: "m-idem", code: "1", idempotencyKey: "k1" });
    expect(same2.id).toBe(same1.id);

    const bad = await ci
      .execute({ chatId: "c", messageId: "m", code: "1", fileIds: ["00000000-0000-4000-8000-000000000000"] })
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ name: "CodeinterpApiError", status: 422, code: "files_not_found" });

    const stranger = createClient({ baseUrl: stack.url, apiKey: "wrong" });
    const unauth = await stranger.listChatFiles("c").catch((e: unknown) => e);
    expect(unauth).toMatchObject({ status: 401 });
    const missing = await (async () => {
      for await (const _ of ci.stream("00000000-0000-4000-8000-000000000000")) void _;
    })().catch((e: unknown) => e);
    expect(missing).toMatchObject({ status: 404, code: "not_found" });
  });

  it("uses a custom fetch and parses Content-Disposition names", async () => {
    const seen: string[] = [];
    const user = await stack.newUser();
    const custom = createClient({
      baseUrl: stack.url,
      apiKey: user.key,
      fetch: (input, init) => {
        seen.push(`${init?.method} ${new URL(input).pathname}`);
        return fetch(input, init);
      },
    });
    await custom.listChatFiles("nothing-here");
    expect(seen).toEqual(["GET /v1/chats/nothing-here/files"]);
    expect(filenameFromContentDisposition(`attachment; filename="a \\"b\\".csv"`)).toBe('a "b".csv');
    expect(
      filenameFromContentDisposition(`attachment; filename="r?sum?.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt`),
    ).toBe("résumé.txt");
    expect(filenameFromContentDisposition(null)).toBeNull();
  });

  it("with a tenant key, endUser makes each end user a user of their own", async () => {
    const res = await fetch(`${stack.url}/v1/admin/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ userId: "client-tenant", kind: "tenant" }),
    });
    const { key } = (await res.json()) as { key: string };
    const alice = createClient({ baseUrl: stack.url, apiKey: key, endUser: "alice" });
    const bob = createClient({ baseUrl: stack.url, apiKey: key, endUser: "bob" });
    const file = await alice.uploadFile(new TextEncoder().encode("alice's"), "notes.txt");
    expect((await alice.getFile(file.id)).name).toBe("notes.txt");
    const err = await bob.getFile(file.id).catch((e: unknown) => e);
    expect([err instanceof CodeinterpApiError, (err as CodeinterpApiError).status]).toEqual([true, 404]);
  });
});
