import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

/**
 * Tenant keys with end users on the real stack (issue 20): a tenant key names its end user per request
 * (X-End-User); each end user is a codeinterp user of its own, whose files, executions, messages, kernels
 * and workspaces nobody else reaches (404, as a missing object). A user key naming anyone is refused and
 * changes nothing; a revoked key is refused at once.
 */

let stack: TestStack;
type Key = { userId: string; key: string; id: string; kind: string };
let acme: Key;
let globex: Key;
let ursula: Key;
const SECRET = `acme-alice-${randomBytes(6).toString("hex")}`;
const CHAT = "chat-shared-name";
const MESSAGE = "msg-shared-name";
const alice = { file: "", execution: "", generated: "" };

const as = (key: string, endUser?: string) => client(stack.url, key, endUser ? { "x-end-user": endUser } : {});
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

async function upload(key: string, endUser: string | undefined, name: string, content: string) {
  const form = new FormData();
  form.append("file", new Blob([content]), name);
  const res = await fetch(`${stack.url}/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, ...(endUser ? { "x-end-user": endUser } : {}) },
    body: form,
  });
  return { status: res.status, body: (await res.json()) as { id: string; error?: { code: string } } };
}

/** What one caller sees of /mnt/data and of alice's variable, running in the chat and message alice used. */
async function peek(key: string, endUser?: string) {
  const done = await as(key, endUser).run({
    chatId: CHAT,
    messageId: MESSAGE,
    code: "import os, json\nprint(json.dumps([sorted(os.listdir('/mnt/data')), globals().get('secret')]))",
  });
  expect(done.status).toBe("completed");
  return JSON.parse(done.result.stdout as string) as [string[], string | null];
}

const admin = (method: string, p: string, body?: unknown) =>
  fetch(`${stack.url}${p}`, {
    method,
    headers: { authorization: `Bearer ${stack.adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));

beforeAll(async () => {
  stack = await startTestStack();
  acme = await stack.newUser("acme-tenant", "tenant");
  globex = await stack.newUser("globex-tenant", "tenant");
  ursula = await stack.newUser("ursula");

  // Alice of acme: an upload attached to a message whose code keeps a variable and writes a file.
  const up = await upload(acme.key, "alice", "alice-notes.txt", SECRET);
  expect(up.status).toBe(201);
  alice.file = up.body.id;
  const done = await as(acme.key, "alice").run({
    chatId: CHAT,
    messageId: MESSAGE,
    fileIds: [alice.file],
    code: `secret = '${SECRET}'\nopen('/mnt/data/alice-out.txt', 'w').write(secret)\nprint(secret)`,
  });
  expect(done).toMatchObject({ status: "completed", result: { stdout: `${SECRET}\n` } });
  alice.execution = done.id as string;
  alice.generated = (done.files as Array<{ id: string }>)[0]!.id;
}, 15 * 60_000);

afterAll(async () => {
  await stack?.close();
});

describe("tenant keys with end users", () => {
  it("the admin API makes tenant and user keys and lists them without the keys", async () => {
    expect(acme).toMatchObject({ userId: "acme-tenant", kind: "tenant" });
    expect(ursula).toMatchObject({ userId: "ursula", kind: "user" });
    const listed = await admin("GET", "/v1/admin/api-keys?userId=acme-tenant");
    expect(listed.status).toBe(200);
    expect(listed.body.apiKeys).toEqual([
      {
        id: acme.id,
        userId: "acme-tenant",
        kind: "tenant",
        prefix: acme.key.slice(0, 7),
        createdAt: expect.any(String) as string,
        revokedAt: null,
      },
    ]);
    expect(JSON.stringify((await admin("GET", "/v1/admin/api-keys")).body)).not.toContain(acme.key);
    // Bad input: 400, nothing made; the derived end-user namespace is not for ordinary keys.
    expect((await admin("POST", "/v1/admin/api-keys", { userId: "x", kind: "root" })).status).toBe(400);
    expect((await admin("POST", "/v1/admin/api-keys", { userId: "librechat:abc" })).body).toMatchObject({
      error: { code: "validation_error" },
    });
    expect((await admin("GET", "/v1/admin/api-keys?userId=x")).body.apiKeys).toEqual([]);
    // Tenant and user keys cannot use the admin API.
    for (const key of [acme.key, ursula.key]) {
      const res = await fetch(`${stack.url}/v1/admin/api-keys`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(401);
    }
  });

  it("the end user sees its own objects through the tenant key", async () => {
    const a = as(acme.key, "alice");
    expect((await a.get(`/v1/files/${alice.file}`)).status).toBe(200);
    expect((await a.get(`/v1/executions/${alice.execution}`)).body.result.stdout).toBe(`${SECRET}\n`);
    expect((await a.get(`/v1/messages/${MESSAGE}/files`)).body.files).toHaveLength(1);
    // Its kernel kept the variable; its workspace has both files.
    expect(await peek(acme.key, "alice")).toEqual([["alice-notes.txt", "alice-out.txt"], SECRET]);
  });

  it("another end user of the same tenant, the tenant itself and another tenant's end user: 404 and an empty workspace", async () => {
    const others: Array<[string, string, string | undefined]> = [
      ["acme/bob", acme.key, "bob"],
      ["acme itself", acme.key, undefined],
      ["globex/alice", globex.key, "alice"],
      ["user key", ursula.key, undefined],
    ];
    for (const [label, key, endUser] of others) {
      const c = as(key, endUser);
      const seen = {
        label,
        file: (await c.get(`/v1/files/${alice.file}`)).status,
        content: (await c.get(`/v1/files/${alice.file}/content`)).status,
        generated: (await c.get(`/v1/files/${alice.generated}`)).status,
        execution: (await c.get(`/v1/executions/${alice.execution}`)).status,
        byContent: (await c.get(`/v1/files?sha256=${sha(SECRET)}`)).body.files.length as number,
        messageFiles: (await c.get(`/v1/messages/${MESSAGE}/files`)).body.files.length as number,
        chatFiles: (await c.get(`/v1/chats/${CHAT}/files`)).body.totalFiles as number,
      };
      expect(seen).toEqual({
        label,
        file: 404,
        content: 404,
        generated: 404,
        execution: 404,
        byContent: 0,
        messageFiles: 0,
        chatFiles: 0,
      });
      // Same chat and message names: a kernel and a workspace of its own, without alice's variable or files.
      expect(await peek(key, endUser), label).toEqual([[], null]);
    }
    // Their runs changed nothing of alice's.
    expect(await peek(acme.key, "alice")).toEqual([["alice-notes.txt", "alice-out.txt"], SECRET]);
  });

  it("a user key naming an end user: 403 JSON, and nothing is created", async () => {
    const c = as(ursula.key, "alice");
    const before = (await as(ursula.key).get(`/v1/files?sha256=${sha("x-ursula")}`)).body.files.length as number;
    const up = await upload(ursula.key, "alice", "x.txt", "x-ursula");
    expect(up).toMatchObject({ status: 403, body: { error: { code: "end_user_not_allowed" } } });
    const run = await c.post("/v1/executions", { chatId: "c", messageId: "m-ursula", code: "print(1)" });
    expect(run).toMatchObject({ status: 403, body: { error: { code: "end_user_not_allowed" } } });
    expect((await c.get(`/v1/files/${alice.file}`)).status).toBe(403);
    expect((await as(ursula.key).get(`/v1/files?sha256=${sha("x-ursula")}`)).body.files).toHaveLength(before);
    expect((await as(acme.key, "alice").get(`/v1/files?sha256=${sha("x-ursula")}`)).body.files).toHaveLength(0);
    // The message was not claimed either: ursula's own run with that message id works in any chat.
    expect((await as(ursula.key).run({ chatId: "c2", messageId: "m-ursula", code: "print(2)" })).status).toBe(
      "completed",
    );
  });

  it("an end user that is empty or too long is a 400, not someone", async () => {
    for (const endUser of ["", "x".repeat(201)]) {
      const res = await as(acme.key).get("/v1/files?sha256=" + sha(SECRET));
      expect(res.status).toBe(200);
      const bad = await fetch(`${stack.url}/v1/files/${alice.file}`, {
        headers: { authorization: `Bearer ${acme.key}`, "x-end-user": endUser },
      });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("invalid_end_user");
    }
  });

  it("a message id belongs to one chat: the same id under another chat is 409 and creates nothing", async () => {
    const a = as(acme.key, "alice");
    const res = await a.post("/v1/executions", { chatId: "another-chat", messageId: MESSAGE, code: "print(secret)" });
    expect(res).toMatchObject({ status: 409, body: { error: { code: "message_in_other_chat", messageId: MESSAGE } } });
    const withFiles = await a.post("/v1/executions", {
      chatId: "another-chat",
      messageId: MESSAGE,
      fileIds: [alice.file],
      code: "print(1)",
    });
    expect(withFiles).toMatchObject({ status: 409, body: { error: { code: "message_in_other_chat" } } });
    expect((await a.get("/v1/chats/another-chat/files")).body.totalFiles).toBe(0);
    // Two chats racing for a new message id: exactly one gets it.
    const fresh = `msg-race-${randomBytes(4).toString("hex")}`;
    const raced = await Promise.all(
      ["race-a", "race-b", "race-c"].map((chatId) =>
        a.post("/v1/executions", { chatId, messageId: fresh, code: "print(1)" }),
      ),
    );
    expect(raced.map((r) => r.status).sort()).toEqual([202, 409, 409]);
    // In its own chat it goes on as before.
    expect(await peek(acme.key, "alice")).toEqual([["alice-notes.txt", "alice-out.txt"], SECRET]);
  });

  it("a revoked key is refused at once; revoking is idempotent; an unknown key id is 404", async () => {
    const t = await stack.newUser("initech-tenant", "tenant");
    const c = as(t.key, "peter");
    expect((await c.get("/v1/files?sha256=" + sha("x"))).status).toBe(200);
    const revoked = await admin("DELETE", `/v1/admin/api-keys/${t.id}`);
    expect(revoked).toMatchObject({ status: 200, body: { id: t.id, revokedAt: expect.any(String) as string } });
    // The key was just used (so it is in the API's key cache): refused all the same.
    for (const endUser of ["peter", undefined]) {
      const res = await as(t.key, endUser).get("/v1/files?sha256=" + sha("x"));
      expect(res).toMatchObject({ status: 401, body: { error: { code: "unauthorized" } } });
    }
    const again = await admin("DELETE", `/v1/admin/api-keys/${t.id}`);
    expect(again.body.revokedAt).toBe(revoked.body.revokedAt);
    expect((await admin("DELETE", "/v1/admin/api-keys/00000000-0000-4000-8000-000000000000")).status).toBe(404);
    // An id that cannot be a key reads as a missing one, as everywhere in the API.
    expect((await admin("DELETE", "/v1/admin/api-keys/not-a-uuid")).status).toBe(404);
    // Other keys are untouched.
    expect((await as(acme.key, "alice").get(`/v1/files/${alice.file}`)).status).toBe(200);
  });
});
