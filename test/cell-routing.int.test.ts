import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ExecutionRouter,
  cellQueueName,
  createRedis,
  holdMessage,
  queueNames,
  readMessageCell,
  removeCellBeat,
  writeCellBeat,
} from "@codeinterp/queue";
import type { CellBeat, Redis } from "@codeinterp/queue";
import { workspaceId } from "@codeinterp/workspace";

// The routing rule of packages/queue/src/cells.ts on the real Redis, with no worker: where each job lands.
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = `citest-cells-${randomBytes(4).toString("hex")}`;
let redis: Redis;
let router: ExecutionRouter;

const beat = (cellId: string, room: number, draining = false): CellBeat => ({
  cellId,
  at: Date.now(),
  room,
  draining,
  holdMs: 60_000,
});
const execution = (messageId: string) => ({ id: randomUUID(), userId: "u1", messageId });
const waitingIn = async (queue: string) => (await router.queue(queue).getWaiting()).map((j) => j.id);

beforeAll(() => {
  redis = createRedis(redisUrl, { name: "cell-routing-test" });
  // No reuse of a beat read: each case sets the beats it needs.
  router = new ExecutionRouter({ connection: redis, prefix, beatsMaxAgeMs: 0 });
});
afterAll(async () => {
  await router?.close();
  for (const key of await redis.keys(`${prefix}:*`)) await redis.del(key);
  redis?.disconnect();
});

describe("routing executions to cells", () => {
  it("without a live cell, a new message goes to the shared queue", async () => {
    const e = execution("m-none");
    expect(await router.enqueue(e)).toBe(queueNames.executions);
    expect(await waitingIn(queueNames.executions)).toContain(e.id);
    expect(await readMessageCell(redis, prefix, workspaceId("u1", "m-none"))).toBeNull();
  });

  it("places a new message on the cell with room; its follow-up follows; the first run there is no takeover", async () => {
    await writeCellBeat(redis, prefix, beat("a", 3), 10_000);
    await writeCellBeat(redis, prefix, beat("b", 0), 10_000);
    const first = execution("m-1");
    expect(await router.enqueue(first)).toBe(cellQueueName("a"));
    const key = workspaceId("u1", "m-1");
    expect(await readMessageCell(redis, prefix, key)).toBe("a");
    // Cell a runs it: a placement is not a previous holder.
    expect(await holdMessage(redis, prefix, key, "a", 60_000)).toBeNull();
    await writeCellBeat(redis, prefix, beat("b", 5), 10_000);
    const follow = execution("m-1");
    expect(await router.enqueue(follow)).toBe(cellQueueName("a"));
    expect(await waitingIn(cellQueueName("a"))).toEqual(expect.arrayContaining([first.id, follow.id]));
    expect((await router.findJob(follow.id))?.queueName).toBe(cellQueueName("a"));
  });

  it("sends a message held by a draining or gone cell to the shared queue, where the next cell takes it over", async () => {
    const key = workspaceId("u1", "m-1");
    await writeCellBeat(redis, prefix, beat("a", 0, true), 10_000);
    expect(await router.enqueue(execution("m-1"))).toBe(queueNames.executions);
    await removeCellBeat(redis, prefix, "a");
    expect(await router.enqueue(execution("m-1"))).toBe(queueNames.executions);
    // Cell b runs it: it learns that a held it (its kernel, and variables, are lost there).
    expect(await holdMessage(redis, prefix, key, "b", 60_000)).toBe("a");
    expect(await readMessageCell(redis, prefix, key)).toBe("b");
  });

  it("removes a queued job wherever it is", async () => {
    await writeCellBeat(redis, prefix, beat("b", 2), 10_000);
    const e = execution("m-2");
    expect(await router.enqueue(e)).toBe(cellQueueName("b"));
    await router.remove(e.id);
    expect(await router.findJob(e.id)).toBeUndefined();
  });
});
