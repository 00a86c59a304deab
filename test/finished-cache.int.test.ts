import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadApiEnv } from "../apps/api/src/env";
import { startApiServer } from "../apps/api/src/server";
import type { RunningApi } from "../apps/api/src/server";
import { createLogger } from "@codeinterp/logger";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Finished executions are answered from a short per-process cache: what a client sees must still be right,
// on the API process that served the delete and on another one behind the same load balancer.
let stack: TestStack;
let second: RunningApi;
let aliceKey: string;

beforeAll(async () => {
  stack = await startTestStack();
  second = await startApiServer(loadApiEnv(stack.env), createLogger({ name: "test", level: "silent" }));
  aliceKey = (await stack.newUser("alice")).key;
});
afterAll(async () => {
  await second?.close(2000);
  await stack?.close();
});

describe("status of a finished execution", () => {
  it("drops a deleted file at once on every API process, and never answers another user", async () => {
    const one = client(stack.url, aliceKey);
    const two = client(second.url, aliceKey);
    const messageId = `msg-${randomBytes(4).toString("hex")}`;
    const created = await one.post("/v1/executions", {
      chatId: "c",
      messageId,
      code: "open('a.txt','w').write('a')\nopen('b.txt','w').write('b')",
    });
    expect(created.status).toBe(202);
    const id = created.body.id as string;
    const done = await one.get(`/v1/executions/${id}?waitMs=20000`);
    expect(done.body.status).toBe("completed");
    const names = (b: { files: Array<{ path: string }> }) => b.files.map((f) => f.path);
    // Both processes now hold the finished response.
    expect(names((await one.get(`/v1/executions/${id}`)).body)).toEqual(["a.txt", "b.txt"]);
    expect(names((await two.get(`/v1/executions/${id}`)).body)).toEqual(["a.txt", "b.txt"]);
    expect((await client(second.url, (await stack.newUser("bob")).key).get(`/v1/executions/${id}`)).status).toBe(404);

    const a = (done.body.files as Array<{ id: string; path: string }>).find((f) => f.path === "a.txt")!;
    expect((await one.del(`/v1/files/${a.id}`)).status).toBe(204);
    expect(names((await one.get(`/v1/executions/${id}`)).body)).toEqual(["b.txt"]);
    // The other process hears of it over Redis, well before its entry would expire (5 s).
    const until = Date.now() + 1000;
    let seen: string[] = [];
    while (Date.now() < until) {
      seen = names((await two.get(`/v1/executions/${id}`)).body);
      if (seen.length === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seen).toEqual(["b.txt"]);
  });
});
