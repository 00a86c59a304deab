import { expect, it } from "vitest";
import { createRedis } from "@codeinterp/queue";
import { startTestStack } from "./helpers/stack";

it("closing the test stack fails when a connection was left open", async () => {
  const stack = await startTestStack({ worker: false });
  const forgotten = createRedis(stack.env.REDIS_URL!, { name: "forgotten" });
  await forgotten.ping();
  await expect(stack.close()).rejects.toThrow(/leaked 1 open socket/);
  forgotten.disconnect();
});
