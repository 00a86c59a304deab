import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Operators see live kernels, the ceiling, evictions and waits from Bull Board (issue 11): a page at
// /admin/kernels behind the admin token, linked from Bull Board's header.
let stack: TestStack;
let alice: ReturnType<typeof client>;

beforeAll(async () => {
  stack = await startTestStack({ env: { KERNEL_POOL_SIZE: "1", MAX_LIVE_KERNELS: "7" } });
  alice = client(stack.url, (await stack.newUser("alice")).key);
});
afterAll(async () => {
  await stack?.close();
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${stack.url}${path}`, { headers });
const admin = () => ({ authorization: `Bearer ${stack.adminToken}` });

describe("the live kernels page", () => {
  it("needs the admin token", async () => {
    const basicWrong = `Basic ${Buffer.from("admin:not-the-token").toString("base64")}`;
    const [none, wrong, basicRight] = await Promise.all([
      get("/admin/kernels"),
      get("/admin/kernels", { authorization: basicWrong }),
      get("/admin/kernels", { authorization: `Basic ${Buffer.from(`admin:${stack.adminToken}`).toString("base64")}` }),
    ]);
    expect([none.status, wrong.status, basicRight.status]).toEqual([401, 401, 200]);
  });

  it("is linked from Bull Board's header", async () => {
    const board = await (await get("/admin/queues", admin())).text();
    expect(board).toContain("/admin/kernels");
  });

  it("lists a live kernel with its message, next to the ceiling, evictions and waits", async () => {
    const done = await alice.run({ chatId: "chat-adm", messageId: "msg-adm-1", code: "x = 1" });
    expect(done.status).toBe("completed");
    await expect
      .poll(async () => (await get("/admin/kernels", { ...admin(), accept: "application/json" })).json(), {
        timeout: 20_000,
        interval: 500,
      })
      .toMatchObject({
        ceiling: 7,
        evictions: 0,
        capacityWaits: 0,
        kernels: expect.arrayContaining([
          expect.objectContaining({
            message: expect.objectContaining({
              userId: "alice",
              chatId: "chat-adm",
              messageId: "msg-adm-1",
              executionId: done.id,
            }),
          }),
        ]),
      });
    const html = await (await get("/admin/kernels", { ...admin(), accept: "text/html" })).text();
    expect(html).toMatch(/<td>msg-adm-1<\/td>/);
  });
});
