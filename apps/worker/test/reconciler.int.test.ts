import { randomBytes } from "node:crypto";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  claimQueuedExecution,
  createDb,
  createExecution,
  finishExecution,
  getExecutionForWorker,
  kernelMayBeInUse,
  markExecutionRunning,
} from "@codeinterp/db";
import type { Db } from "@codeinterp/db";
import { createLogger } from "@codeinterp/logger";
import { ExecutionRouter, createEventSubscriber, createRedis, parseJobPayload, queueNames } from "@codeinterp/queue";
import type { Redis } from "@codeinterp/queue";
import { workspaceId } from "@codeinterp/workspace";
import { reconcileOnce } from "../src/reconciler";
import { createTestDatabase } from "../../../test/helpers/database";
import { testRedisUrl } from "../../../test/helpers/redis";

// reconcileOnce on the real Postgres and Redis, with no worker: what it does to executions whose job is missing.
const prefix = `citest-reconcile-${randomBytes(4).toString("hex")}`;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
let redis: Redis;
let queue: Queue;
let executions: ExecutionRouter;

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb({ url: database.url });
  redis = createRedis(testRedisUrl, { name: "reconciler-test" });
  queue = new Queue(queueNames.executions, { connection: redis, prefix });
  executions = new ExecutionRouter({ connection: redis, prefix });
});
afterAll(async () => {
  await queue?.obliterate({ force: true });
  await queue?.close();
  await executions?.close();
  for (const key of await redis.keys(`${prefix}:*`)) await redis.del(key);
  redis?.disconnect();
  await db?.$disconnect();
  await database?.drop();
});

describe("reconcileOnce", () => {
  it("gives a queued execution without a job its job, and ends a running one whose job is gone as failed, announced once", async () => {
    const opts = {
      db,
      redis,
      executions,
      prefix,
      log: createLogger({ name: "test", level: "silent" }),
      orphanAfterMs: 0,
    };
    const lost: string[] = [];
    const make = (messageId: string) =>
      createExecution(db, { userId: "rec-user", chatId: "c", messageId, code: "1", timeoutMs: 1000 }).then(
        (r) => r.execution,
      );
    const queued = await make("m-queued");
    const running = await make("m-running");
    expect(await claimQueuedExecution(db, running.id, "w-test")).not.toBeNull();
    expect(await markExecutionRunning(db, running.id, "k-test")).toBe(true);

    const first = await reconcileOnce({ ...opts, onLost: async (e) => void lost.push(e.id) });
    expect(first).toEqual({ enqueued: 1, failed: 1 });
    const job = await queue.getJob(queued.id);
    expect(parseJobPayload("runExecution", job?.data)).toEqual({
      executionId: queued.id,
      messageKey: workspaceId("rec-user", "m-queued"),
    });
    expect(await getExecutionForWorker(db, running.id)).toMatchObject({
      status: "failed",
      failure: { code: "worker_lost" },
    });
    expect(lost).toEqual([running.id]);

    // A second pass finds the queued one's job waiting and the failed one ended: it changes nothing.
    expect(await reconcileOnce(opts)).toEqual({ enqueued: 0, failed: 0 });
    expect(await queue.count()).toBe(1);
    const events = createEventSubscriber(redis.duplicate(), redis, prefix);
    try {
      expect((await events.replay(running.id)).map((e) => `${e.type}:${"status" in e ? e.status : ""}`)).toEqual([
        "status:failed",
        "done:failed",
      ]);
    } finally {
      await events.close();
    }
  });
});

describe("a lost execution's kernel", () => {
  // The worker's onLost shuts the kernel down only when this says no: after Redis restarts empty, the lost
  // execution's message lock is gone while the next execution of the message may be running on its kernel.
  it("counts as in use while another execution of the message runs on it or is preparing, and not otherwise", async () => {
    const make = (messageId: string) =>
      createExecution(db, { userId: "lost-user", chatId: "c", messageId, code: "1", timeoutMs: 1000 }).then(
        (r) => r.execution,
      );
    const lostOne = await make("m-lost");
    await claimQueuedExecution(db, lostOne.id, "w-test");
    await markExecutionRunning(db, lostOne.id, "k-shared");
    const asked = { id: lostOne.id, userId: "lost-user", messageId: "m-lost", kernelId: "k-shared" };
    expect(await kernelMayBeInUse(db, asked)).toBe(false);

    const next = await make("m-lost");
    await claimQueuedExecution(db, next.id, "w-test");
    expect(await kernelMayBeInUse(db, asked)).toBe(true); // preparing: it may be about to take the kernel
    await markExecutionRunning(db, next.id, "k-other");
    expect(await kernelMayBeInUse(db, asked)).toBe(false); // running on another kernel
    await finishExecution(db, next.id, "completed", {});

    const onIt = await make("m-lost");
    await claimQueuedExecution(db, onIt.id, "w-test");
    await markExecutionRunning(db, onIt.id, "k-shared");
    expect(await kernelMayBeInUse(db, asked)).toBe(true);
    // Another message's execution on a kernel of the same id is not this message's business.
    expect(await kernelMayBeInUse(db, { ...asked, messageId: "m-elsewhere" })).toBe(false);
    await finishExecution(db, onIt.id, "completed", {});
    expect(await kernelMayBeInUse(db, asked)).toBe(false);
  });
});
