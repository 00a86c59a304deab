import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";
import { contractRoutes } from "./helpers/contract";
import type { Route } from "./helpers/contract";

/**
 * Every /v1 route, read from the served /openapi.json (so a new route is covered without editing this
 * file), plus the routes docs/API.md promises, called by user B on user A's objects: 404 exactly as for a
 * missing object (or an empty listing for list routes), never A's data, never 403; without a key: 401.
 */

/** User routes docs/API.md promises. Every one is in /openapi.json too (test/api-contract.unit.test.ts). */
const CONTRACT_ROUTES: Route[] = contractRoutes().filter(
  (r) => r.path.startsWith("/v1/") && !r.path.startsWith("/v1/admin/"),
);

const LIST_ROUTES = new Set([
  "/v1/messages/{messageId}/files",
  "/v1/chats/{chatId}/files",
  "/v1/messages/{messageId}/context",
  "/v1/messages/{messageId}/links",
]);

describe("authorization matrix", () => {
  let stack: TestStack;
  let routes: Route[];
  let documented: Route[];
  let alice: { userId: string; key: string };
  let bob: { userId: string; key: string };
  const A = {
    file: "",
    generated: "",
    execution: "",
    running: "",
    chat: "chat-secret-a",
    message: "msg-secret-a",
    secret: "",
  };

  beforeAll(async () => {
    stack = await startTestStack();
    alice = await stack.newUser("alice-authz");
    bob = await stack.newUser("bob-authz");
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops)
        .filter((m) => ["get", "post", "put", "patch", "delete"].includes(m))
        .map((method) => ({ method, path: p })),
    );
    const key = (r: Route) => `${r.method} ${r.path}`;
    const all = new Map([...documented, ...CONTRACT_ROUTES].map((r) => [key(r), r]));
    routes = [...all.values()].filter((r) => r.path.startsWith("/v1/") && !r.path.startsWith("/v1/admin/"));

    // Alice's objects: an upload attached to a message whose execution wrote a file, and one still running.
    A.secret = `alice-secret-${Date.now()}`;
    const form = new FormData();
    form.append("file", new Blob([`col\n${A.secret}\n`]), "alice-private.csv");
    const up = await fetch(`${stack.url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${alice.key}` },
      body: form,
    });
    expect(up.status).toBe(201);
    A.file = ((await up.json()) as { id: string }).id;
    const a = client(stack.url, alice.key);
    const done = await a.run({
      chatId: A.chat,
      messageId: A.message,
      fileIds: [A.file],
      idempotencyKey: "alice-idem",
      code: `open('/mnt/data/alice-out.txt','w').write('${A.secret}')\nprint('${A.secret}')`,
    });
    expect(done.status).toBe("completed");
    A.execution = done.id;
    A.generated = done.files[0].id;
    const running = await a.post("/v1/executions", {
      chatId: A.chat,
      messageId: "msg-a-long",
      code: "import time\ntime.sleep(30)",
    });
    A.running = running.body.id;
  });
  afterAll(async () => {
    if (A.running) await client(stack.url, alice.key).post(`/v1/executions/${A.running}/cancel`);
    await stack?.close();
  });

  it("the served OpenAPI document lists every /v1 route of the contract", () => {
    const have = new Set(documented.map((r) => `${r.method} ${r.path}`));
    const missing = CONTRACT_ROUTES.filter((r) => !have.has(`${r.method} ${r.path}`)).map(
      (r) => `${r.method.toUpperCase()} ${r.path}`,
    );
    expect(missing).toEqual([]);
  });

  /** Concrete requests for a route template, one per object of Alice's it can point at. */
  function instances(r: Route): Array<{ label: string; url: string; body?: unknown; multipart?: boolean }> {
    const out: Array<{ label: string; url: string; body?: unknown; multipart?: boolean }> = [];
    if (r.path.includes("{id}")) {
      const ids = r.path.startsWith("/v1/files") ? [A.file, A.generated] : [A.execution, A.running];
      for (const id of ids) out.push({ label: id, url: r.path.replace("{id}", id) });
    } else if (r.path.includes("{messageId}")) {
      // Link rewriting takes model text naming Alice's file: Bob must get it back unsigned.
      const body = r.method === "post" ? { text: "[out](sandbox:/mnt/data/alice-out.txt)" } : undefined;
      out.push({ label: A.message, url: r.path.replace("{messageId}", encodeURIComponent(A.message)), body });
    } else if (r.path.includes("{chatId}")) {
      out.push({ label: A.chat, url: r.path.replace("{chatId}", encodeURIComponent(A.chat)) });
    } else if (r.path === "/v1/executions" && r.method === "post") {
      // Bob names Alice's file, or reuses Alice's idempotency key and message id.
      out.push({
        label: "alice's fileIds",
        url: r.path,
        body: { chatId: A.chat, messageId: A.message, code: "print(1)", fileIds: [A.file] },
      });
    } else if (r.path === "/v1/files" && r.method === "post") {
      out.push({ label: "upload", url: r.path, multipart: true });
    } else {
      out.push({ label: "as is", url: r.path });
    }
    return out;
  }

  async function call(key: string | null, method: string, url: string, body?: unknown, multipart?: boolean) {
    const headers: Record<string, string> = key === null ? {} : { authorization: `Bearer ${key}` };
    let payload: FormData | string | undefined;
    if (multipart) {
      const form = new FormData();
      form.append("file", new Blob(["x"]), "x.txt");
      payload = form;
    } else if (body !== undefined) {
      headers["content-type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await fetch(`${stack.url}${url}`, {
      method: method.toUpperCase(),
      headers,
      body: payload,
      signal: AbortSignal.timeout(20_000),
    });
    const text = res.headers.get("content-type")?.includes("text/event-stream") ? "(stream)" : await res.text();
    if (text === "(stream)") await res.body?.cancel();
    return { status: res.status, text, contentType: res.headers.get("content-type") ?? "" };
  }

  const leaks = (text: string) =>
    [A.secret, A.file, A.generated, A.execution, A.running, "alice-out.txt", "alice-private.csv"].filter((s) =>
      text.includes(s),
    );

  it("user B on user A's objects: 404 (or an empty listing), never A's data, never 403", async () => {
    const table: string[] = [];
    const problems: string[] = [];
    for (const r of routes) {
      for (const inst of instances(r)) {
        const res = await call(bob.key, r.method, inst.url, inst.body, inst.multipart);
        table.push(`${r.method.toUpperCase()} ${r.path} [${inst.label}] → ${res.status}`);
        // A 422 echoes the fileIds Bob sent: that tells him nothing he did not say himself.
        const leaked = leaks(res.text).filter((l) => !(inst.body && JSON.stringify(inst.body).includes(l)));
        if (leaked.length) problems.push(`${r.method} ${inst.url}: leaks ${leaked.join(", ")}`);
        if (res.status === 403) problems.push(`${r.method} ${inst.url}: 403 tells the object exists`);
        if (res.status >= 500) problems.push(`${r.method} ${inst.url}: ${res.status}`);
        if (LIST_ROUTES.has(r.path)) {
          if (res.status !== 200) problems.push(`${r.method} ${inst.url}: ${res.status} (want an empty 200)`);
          const body = JSON.parse(res.text) as {
            files?: unknown[];
            links?: unknown[];
            totalFiles?: number;
            messages?: object;
          };
          if (
            (body.files?.length ?? 0) !== 0 ||
            (body.links?.length ?? 0) !== 0 ||
            (body.totalFiles ?? 0) !== 0 ||
            Object.keys(body.messages ?? {}).length !== 0
          ) {
            problems.push(`${r.method} ${inst.url}: listing not empty`);
          }
        } else if (r.path.includes("{")) {
          if (res.status !== 404) problems.push(`${r.method} ${inst.url}: ${res.status} (want 404)`);
          else expect(JSON.parse(res.text)).toMatchObject({ error: { code: "not_found" } });
        } else if (r.method === "post" && r.path === "/v1/executions") {
          // Alice's file is as unknown to Bob as a missing one.
          if (res.status !== 422) problems.push(`${r.method} ${inst.url}: ${res.status} (want 422 files_not_found)`);
        }
      }
    }
    console.log(`[authz] B→A matrix:\n  ${table.join("\n  ")}`);
    expect(problems).toEqual([]);
    expect(routes.length).toBeGreaterThanOrEqual(CONTRACT_ROUTES.length);
  });

  it("a 404 for someone else's object is the same answer as for a missing one", async () => {
    const missing = "00000000-0000-4000-8000-000000000000";
    for (const p of ["/v1/files/{id}", "/v1/files/{id}/content", "/v1/executions/{id}", "/v1/executions/{id}/events"]) {
      const theirs = await call(bob.key, "get", p.replace("{id}", p.startsWith("/v1/files") ? A.file : A.execution));
      const none = await call(bob.key, "get", p.replace("{id}", missing));
      expect(theirs.status).toBe(404);
      expect(none.status).toBe(404);
      expect(JSON.parse(theirs.text).error.code).toBe(JSON.parse(none.text).error.code);
    }
  });

  it("Bob's writes never reach Alice's objects or workspace", async () => {
    const b = client(stack.url, bob.key);
    // Same message id and Alice's idempotency key: Bob gets his own execution in his own workspace.
    const mine = await b.post("/v1/executions", {
      chatId: A.chat,
      messageId: A.message,
      idempotencyKey: "alice-idem",
      code: "import os, json\nprint(json.dumps(sorted(os.listdir('/mnt/data'))))",
    });
    expect(mine.status).toBe(202);
    expect(mine.body.id).not.toBe(A.execution);
    const done = await b.get(`/v1/executions/${mine.body.id}?waitMs=30000`);
    expect(done.body.status).toBe("completed");
    expect(JSON.parse(done.body.result.stdout)).toEqual([]);
    // Deleting and cancelling Alice's objects as Bob: 404 and nothing changes for Alice.
    expect((await b.del(`/v1/files/${A.file}`)).status).toBe(404);
    expect((await b.del(`/v1/files/${A.generated}`)).status).toBe(404);
    expect((await b.post(`/v1/executions/${A.running}/cancel`)).status).toBe(404);
    const a = client(stack.url, alice.key);
    expect((await a.get(`/v1/files/${A.file}`)).status).toBe(200);
    expect((await a.get(`/v1/files/${A.generated}`)).status).toBe(200);
    expect((await a.get(`/v1/executions/${A.running}`)).body.status).not.toBe("cancelled");
  });

  it("no key, a wrong key, or a user key on admin routes: 401 JSON", async () => {
    const problems: string[] = [];
    for (const r of routes) {
      for (const inst of instances(r)) {
        for (const key of [null, "not-a-real-key", `${alice.key}x`]) {
          const res = await call(key, r.method, inst.url, inst.body, inst.multipart);
          if (res.status !== 401)
            problems.push(`${r.method} ${inst.url} key=${key === null ? "none" : "wrong"}: ${res.status}`);
          else if (JSON.parse(res.text).error?.code !== "unauthorized")
            problems.push(`${r.method} ${inst.url}: 401 without code unauthorized`);
          if (leaks(res.text).length) problems.push(`${r.method} ${inst.url}: unauthenticated leak`);
        }
      }
    }
    for (const key of [null, alice.key]) {
      const res = await call(key, "post", "/v1/admin/api-keys", { userId: "mallory" });
      if (res.status !== 401) problems.push(`POST /v1/admin/api-keys key=${key ? "user" : "none"}: ${res.status}`);
    }
    expect(problems).toEqual([]);
  });
});
