import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedis } from "@codeinterp/queue";
import { testRedisUrl } from "./helpers/redis";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

let stack: TestStack;
let api: ReturnType<typeof client>;
let key: string;

beforeAll(async () => {
  stack = await startTestStack();
  const user = await stack.newUser("alice");
  key = user.key;
  api = client(stack.url, key);
});
afterAll(async () => {
  await stack?.close();
});

describe("executions end to end", () => {
  it("runs code to completed with its stdout", async () => {
    const done = await api.run({ code: "print('hello', 6*7)" });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toBe("hello 42\n");
    expect(done.result.error).toBeNull();
    expect(done.startedAt).not.toBeNull();
    expect(done.finishedAt).not.toBeNull();
  });

  it("a Python exception completes with ename, a clean traceback and the stdout printed before it", async () => {
    const done = await api.run({ code: "print('before')\nraise ValueError('boom')" });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toBe("before\n");
    expect(done.result.error.ename).toBe("ValueError");
    expect(done.result.error.evalue).toBe("boom");
    expect(done.result.error.traceback.join("\n")).toContain("ValueError");
    expect(done.result.error.traceback.join("\n")).not.toMatch(/\u001b\[/);
  });

  it("keeps output with NUL characters, shown as U+FFFD, instead of failing the execution", async () => {
    // Postgres's jsonb cannot hold U+0000: such a result once failed the whole execution as internal_error.
    const done = await api.run({
      code: "print('a\\x00b')\nprint(r'\\u0000 stays text')\nraise ValueError('bad\\x00value')",
    });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toBe("a\uFFFDb\n\\u0000 stays text\n");
    expect(done.result.error.evalue).toBe("bad\uFFFDvalue");
  });

  it("says in notes how many outputs were over the cap, which the text alone does not show", async () => {
    const done = await api.run({ code: "for i in range(53): display(i)" });
    expect(done.status).toBe("completed");
    expect(done.result.outputs).toHaveLength(50);
    expect(done.result.notes).toEqual([expect.stringMatching(/^3 more outputs were not kept .*at most 50/)]);
  });

  it("returns the last expression as a text/plain output", async () => {
    const done = await api.run({ code: "1+1" });
    expect(done.result.outputs).toContainEqual({ type: "text/plain", data: "2" });
  });

  it("20 concurrent executions each get exactly their own output", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        api.run({ code: `import time; time.sleep(0.05); print('run-${i}')` }, 120_000),
      ),
    );
    results.forEach((r, i) => {
      expect(r.status).toBe("completed");
      expect(r.result.stdout).toBe(`run-${i}\n`);
    });
  });

  it("the same idempotency key returns the same execution", async () => {
    const body = { chatId: "c", messageId: "m-idem", code: "print(1)", idempotencyKey: "key-123" };
    const a = await api.post("/v1/executions", body);
    const b = await api.post("/v1/executions", body);
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.body.id).toBe(a.body.id);
    const other = await api.post("/v1/executions", { ...body, code: "print(2)" });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("idempotency_conflict");
  });

  it("waitMs returns early when the execution is still running", async () => {
    const created = await api.post("/v1/executions", {
      chatId: "c",
      messageId: "m-slow",
      code: "import time; time.sleep(3)",
    });
    // Had it waited for the end instead of 300 ms, the 3 s run would be over.
    const res = await api.get(`/v1/executions/${created.body.id}?waitMs=300`);
    expect(["queued", "preparing", "running"]).toContain(res.body.status);
    const done = await api.get(`/v1/executions/${created.body.id}?waitMs=20000`);
    expect(done.body.status).toBe("completed");
  });

  it("POST with waitMs submits and answers 200 with the ended execution, its output and files, in one request", async () => {
    const res = await api.post("/v1/executions?waitMs=20000", {
      chatId: "c",
      messageId: "m-post-wait",
      code: "open('out.txt', 'w').write('hi'); print('done here')",
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("location")).toBe(`/v1/executions/${res.body.id}`);
    expect(res.body.status).toBe("completed");
    expect(res.body.result.stdout).toBe("done here\n");
    expect(res.body.files.map((f: { path: string }) => f.path)).toEqual(["out.txt"]);
    // The same record a GET reads.
    const again = await api.get(`/v1/executions/${res.body.id}`);
    expect(again.body).toEqual(res.body);
  });

  it("POST with waitMs answers 202 with the execution as it is when waitMs passes first", async () => {
    const res = await api.post("/v1/executions?waitMs=300", {
      chatId: "c",
      messageId: "m-post-wait-slow",
      code: "import time; time.sleep(3); print('late')",
    });
    expect(res.status).toBe(202);
    expect(["queued", "preparing", "running"]).toContain(res.body.status);
    const done = await api.get(`/v1/executions/${res.body.id}?waitMs=20000`);
    expect(done.body.result.stdout).toBe("late\n");
  });

  it("POST with waitMs replays an idempotent request's ended execution, and refuses a reused key without waiting", async () => {
    const body = { chatId: "c", messageId: "m-post-wait-idem", code: "print(5)", idempotencyKey: "wait-key" };
    const first = await api.post("/v1/executions?waitMs=20000", body);
    expect(first.status).toBe(200);
    const replay = await api.post("/v1/executions?waitMs=20000", body);
    expect(replay.status).toBe(200);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
    expect(replay.body.id).toBe(first.body.id);
    expect(replay.body.result.stdout).toBe("5\n");

    const slow = {
      chatId: "c",
      messageId: "m-post-wait-idem2",
      code: "import time; time.sleep(3)",
      idempotencyKey: "k2",
    };
    const running = await api.post("/v1/executions", slow);
    const conflict = await api.post("/v1/executions?waitMs=20000", { ...slow, code: "print(6)" });
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe("idempotency_conflict");
    // Refused before any wait: the execution its key names is still going.
    const now = await api.get(`/v1/executions/${running.body.id}`);
    expect(["queued", "preparing", "running"]).toContain(now.body.status);
  });

  it("POST with a bad waitMs is refused with 400 validation_error", async () => {
    const res = await api.post("/v1/executions?waitMs=-1", { chatId: "c", messageId: "m-post-bad-wait", code: "1" });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_error");
    expect(res.body.error.message).toContain("waitMs");
  });
});

describe("bad input and auth", () => {
  it("rejects bad JSON with 400 invalid_json", async () => {
    const res = await api.post("/v1/executions", "{not json", { "content-type": "application/json" });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_json");
  });

  it("rejects missing fields with 400 validation_error naming the field", async () => {
    const res = await api.post("/v1/executions", { chatId: "c", code: "print(1)" });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_error");
    expect(res.body.error.message).toContain("messageId");
  });

  it("a held request whose client goes away lets go of the execution's events then, not when the code ends", async () => {
    const redis = createRedis(testRedisUrl, { name: "client-gone-test" });
    // The executions whose events this stack's API listens to (a held request listens to its execution's).
    const listened = async () => (await redis.pubsub("CHANNELS", `${stack.queuePrefix}:execution:*`)).length;
    try {
      const sent = await api.post("/v1/executions", {
        chatId: "c",
        messageId: "m-gone",
        code: "import time; time.sleep(60)",
      });
      const id = (sent.body as { id: string }).id;
      const held = [
        { method: "GET", path: `/v1/executions/${id}?waitMs=120000` },
        // A submit that waits, queued behind the sleeping execution of its message.
        {
          method: "POST",
          path: "/v1/executions?waitMs=120000",
          body: JSON.stringify({ chatId: "c", messageId: "m-gone", code: "print('after')" }),
        },
      ];
      for (const { method, path, body } of held) {
        const hangUp = new AbortController();
        const answered = fetch(`${stack.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          ...(body ? { body } : {}),
          signal: hangUp.signal,
        }).catch(() => undefined);
        await expect.poll(listened, { timeout: 15_000 }).toBe(1);
        hangUp.abort();
        await answered;
        await expect.poll(listened, { timeout: 10_000 }).toBe(0);
      }
      // Only the clients went away: the execution runs on.
      const now = await api.get(`/v1/executions/${id}`);
      expect(["queued", "preparing", "running"]).toContain((now.body as { status: string }).status);
      await api.post(`/v1/executions/${id}/cancel`, {});
    } finally {
      redis.disconnect();
    }
  });

  it("rejects unknown fileIds with 422 naming them, and records nothing", async () => {
    const missing = "00000000-0000-4000-8000-000000000000";
    const res = await api.post("/v1/executions", { chatId: "c", messageId: "m-x", code: "1", fileIds: [missing] });
    expect(res.status).toBe(422);
    expect(res.body.error.fileIds).toEqual([missing]);
  });

  it("answers 401 without a key and with a wrong key", async () => {
    const none = await fetch(`${stack.url}/v1/executions/00000000-0000-4000-8000-000000000000`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    const wrong = await client(stack.url, "ci_wrong").get("/v1/executions/00000000-0000-4000-8000-000000000000");
    expect(wrong.status).toBe(401);
  });

  it("another user's execution answers 404 like a missing one", async () => {
    const mine = await api.run({ code: "print('secret')" });
    const bob = client(stack.url, (await stack.newUser("bob")).key);
    const res = await bob.get(`/v1/executions/${mine.id}`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
    expect((await bob.get("/v1/executions/not-a-uuid")).status).toBe(404);
  });

  it("admin routes need the admin token", async () => {
    const res = await fetch(`${stack.url}/v1/admin/api-keys`, {
      method: "POST",
      headers: { authorization: "Bearer nope", "content-type": "application/json" },
      body: JSON.stringify({ userId: "mallory" }),
    });
    expect(res.status).toBe(401);
  });
});

describe("operator endpoints", () => {
  it("healthz, readyz and openapi.json answer", async () => {
    expect((await fetch(`${stack.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${stack.url}/readyz`);
    // The kernel gateway's state comes from the worker's heartbeat: the API holds no gateway URL or token.
    expect(await ready.json()).toMatchObject({
      status: "ok",
      checks: { database: "ok", redis: "ok", kernelGateway: "ok" },
      problems: [],
      gateway: { reachable: true, restarts: 0 },
      workers: [{ gateway: { reachable: true, restarts: 0 } }],
      kernels: { sandboxed: true, network: "none" },
    });
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/v1/executions", "/v1/executions/{id}", "/v1/admin/api-keys"]),
    );
  });
});
