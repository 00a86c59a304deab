import { randomBytes, randomUUID } from "node:crypto";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  claimQueuedExecution,
  createDb,
  createExecution,
  findExecutionWithFiles,
  getExecutionForWorker,
  markExecutionRunning,
  registerExecutionFiles,
} from "@codeinterp/db";
import type { Db, ExecutionWithFiles } from "@codeinterp/db";
import {
  WrongQueueError,
  createEventPublisher,
  createEventSubscriber,
  createRedis,
  enqueueExecution,
  finishAndAnnounce,
  isCancelRequested,
  onCancelRequests,
  parseEventBody,
  parseJobPayload,
  queueNames,
  requestCancel,
} from "@codeinterp/queue";
import type { ExecutionEvent, FinishData, Redis } from "@codeinterp/queue";
import { workspaceId } from "@codeinterp/workspace";
import { watchExecution } from "../apps/api/src/executions/service";
import { createTestDatabase } from "./helpers/database";

// The execution state changes shared by the API (cancel), the job and the reconciler, on the real Postgres
// and Redis: what a watcher of the execution sees and what the row holds.
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let db: Db;
let redis: Redis;
let subscriberRedis: Redis;
const prefix = `citest-state-${randomBytes(4).toString("hex")}`;

beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb({ url: database.url });
  redis = createRedis(redisUrl, { name: "execution-state-test" });
  subscriberRedis = createRedis(redisUrl, { name: "execution-state-test-sub", blocking: true });
});
afterAll(async () => {
  for (const key of await redis.keys(`${prefix}:*`)) await redis.del(key);
  subscriberRedis?.disconnect();
  redis?.disconnect();
  await db?.$disconnect();
  await database?.drop();
});

async function newExecution(status: "queued" | "running") {
  const { execution } = await createExecution(db, {
    userId: "state-user",
    chatId: "c",
    messageId: `m-${randomBytes(4).toString("hex")}`,
    code: "1",
    timeoutMs: 1000,
  });
  if (status === "running") {
    expect(await claimQueuedExecution(db, execution.id, "w-test")).not.toBeNull();
    expect(await markExecutionRunning(db, execution.id, "k-test")).toBe(true);
  }
  return execution;
}

/** The execution's replay log, and its live channel as a watcher subscribed before the change sees it. */
async function watch(executionId: string) {
  const events = createEventSubscriber(subscriberRedis.duplicate(), redis, prefix);
  const live: ExecutionEvent[] = [];
  const stop = await events.subscribe(executionId, (e) => live.push(e));
  return {
    live,
    replay: () => events.replay(executionId),
    close: async () => {
      await stop();
      await events.close();
    },
  };
}

const kinds = (events: ExecutionEvent[]) => events.map((e) => `${e.type}:${"status" in e ? e.status : ""}`);

/** Ends a running execution `completed` (it must be the one finish that moves it); returns the `done` the watcher got. */
async function complete(w: Awaited<ReturnType<typeof watch>>, id: string, data: FinishData): Promise<ExecutionEvent> {
  expect(await finishAndAnnounce({ db, redis, prefix }, id, "completed", data)).toBe(true);
  await expect.poll(() => kinds(w.live)).toEqual(["status:completed", "done:completed"]);
  return w.live[1]!;
}

describe("finishAndAnnounce", () => {
  it("writes a terminal state once and announces it once; a second finish changes nothing and says so", async () => {
    const e = await newExecution("running");
    const w = await watch(e.id);
    try {
      const result = { stdout: "1\n", stderr: "", outputs: [], error: null, notes: [] };
      await complete(w, e.id, { result, metrics: { runMs: 3 } });

      // A late finish (the reconciler, a cancel) of the same execution does not overwrite it.
      expect(
        await finishAndAnnounce({ db, redis, prefix }, e.id, "failed", {
          failure: { code: "worker_lost", message: "lost" },
        }),
      ).toBe(false);
      const row = await getExecutionForWorker(db, e.id);
      expect(row).toMatchObject({ status: "completed", result, failure: null, metrics: { runMs: 3 } });
      expect(kinds(await w.replay())).toEqual(["status:completed", "done:completed"]);
      // The live channel carried the same events (same stream ids) and nothing after them.
      expect(w.live.map((x) => x.id)).toEqual((await w.replay()).map((x) => x.id));
    } finally {
      await w.close();
    }
  });

  it("`done` carries the ended execution with its files, as a read finds it; a big one is left to be read", async () => {
    const e = await newExecution("running");
    await registerExecutionFiles(db, e.id, [
      {
        userId: "state-user",
        chatId: "c",
        messageId: e.messageId,
        path: "out/chart.png",
        name: "chart.png",
        size: 3,
        sha256: "a".repeat(64),
        storageKey: "a".repeat(64),
        mimeType: "image/png",
        source: "generated",
      },
    ]);
    const w = await watch(e.id);
    try {
      const result = { stdout: "1\n", stderr: "", outputs: [], error: null, notes: [] };
      const done = await complete(w, e.id, { result, metrics: { runMs: 3 } });
      const carried = done.type === "done" ? done.execution : undefined;
      expect(carried).toBeDefined();
      expect(carried).toEqual(await findExecutionWithFiles(db, "state-user", e.id));
      expect(carried?.files.map((f) => f.path)).toEqual(["out/chart.png"]);
      // A copy that does not parse is dropped (the waiter reads the row instead); the `done` still counts.
      const sent = JSON.parse(JSON.stringify(carried)) as Record<string, unknown>;
      const withCopy = (x: unknown) =>
        parseEventBody(JSON.stringify({ type: "done", status: "completed", execution: x }));
      expect(withCopy(sent)).toEqual({ type: "done", status: "completed", execution: carried });
      expect(withCopy({ ...sent, createdAt: "yesterday" })).toEqual({ type: "done", status: "completed" });
      expect(withCopy({ ...sent, files: [{ id: 1 }] })).toEqual({ type: "done", status: "completed" });
      // The replay log keeps the same `done`.
      const replayed = (await w.replay())[1]!;
      expect(replayed.type === "done" ? replayed.execution : undefined).toEqual(carried);
    } finally {
      await w.close();
    }

    // Output beyond what an event should carry: `done` says only that it ended.
    const big = await newExecution("running");
    const wb = await watch(big.id);
    try {
      const stdout = "x".repeat(40_000);
      const result = { stdout, stderr: "", outputs: [], error: null, notes: [] };
      const done = await complete(wb, big.id, { result });
      expect(done.type === "done" && done.execution).toBeFalsy();
      expect((await findExecutionWithFiles(db, "state-user", big.id))?.result).toMatchObject({ stdout });
    } finally {
      await wb.close();
    }
  });

  it("of two finishes racing for one execution, exactly one wins and only its status is recorded and announced", async () => {
    const e = await newExecution("running");
    const w = await watch(e.id);
    try {
      const moved = await Promise.all([
        finishAndAnnounce({ db, redis, prefix }, e.id, "cancelled", { result: null }),
        finishAndAnnounce({ db, redis, prefix }, e.id, "failed", { failure: { code: "worker_lost", message: "lost" } }),
      ]);
      expect(moved.filter(Boolean)).toHaveLength(1);
      const winner = moved[0] ? "cancelled" : "failed";
      expect((await getExecutionForWorker(db, e.id))?.status).toBe(winner);
      await expect.poll(async () => kinds(await w.replay())).toEqual([`status:${winner}`, `done:${winner}`]);
      await expect.poll(() => kinds(w.live)).toEqual([`status:${winner}`, `done:${winner}`]);
    } finally {
      await w.close();
    }
  });

  it("with onlyFrom (the API's cancel of a queued execution) leaves an execution a worker already runs alone", async () => {
    const e = await newExecution("running");
    expect(await finishAndAnnounce({ db, redis, prefix }, e.id, "cancelled", { onlyFrom: ["queued"] })).toBe(false);
    expect((await getExecutionForWorker(db, e.id))?.status).toBe("running");
    const w = await watch(e.id);
    try {
      expect(await w.replay()).toEqual([]);
    } finally {
      await w.close();
    }
    const queued = await newExecution("queued");
    expect(await finishAndAnnounce({ db, redis, prefix }, queued.id, "cancelled", { onlyFrom: ["queued"] })).toBe(true);
    expect((await getExecutionForWorker(db, queued.id))?.status).toBe("cancelled");
  });
});

describe("the API's wait for an end (watchExecution)", () => {
  it("answers with the execution `done` carried, and reads the row when the copy is not this user's or not ended", async () => {
    const events = createEventSubscriber(subscriberRedis.duplicate(), redis, prefix);
    // Each end is announced by hand while the row still says `running`: what the wait answers shows whether
    // it used the copy or read the row.
    const waitFor = async (copy: (own: ExecutionWithFiles) => ExecutionWithFiles) => {
      const e = await newExecution("running");
      const own = (await findExecutionWithFiles(db, "state-user", e.id))!;
      const watch = await watchExecution({ db, events }, "state-user", e.id);
      try {
        const ending = watch.end({ ms: 10_000, subscribedBeforeQueued: true });
        await createEventPublisher(redis, prefix, e.id).end("completed", copy(own));
        return await ending;
      } finally {
        await watch.close();
      }
    };
    try {
      const result = { stdout: "carried\n", stderr: "", outputs: [], error: null, notes: [] };
      const answered = await waitFor((own) => ({ ...own, status: "completed", result }));
      expect(answered).toMatchObject({ status: "completed", result });
      // Another user's copy, one of another execution, one not ended: the row is read.
      for (const copy of [
        (own: ExecutionWithFiles) => ({ ...own, status: "completed" as const, userId: "someone-else" }),
        (own: ExecutionWithFiles) => ({ ...own, status: "completed" as const, id: randomUUID() }),
        (own: ExecutionWithFiles) => own,
      ])
        expect((await waitFor(copy))?.status).toBe("running");
    } finally {
      await events.close();
    }
  });
});

describe("a held event (the worker's `preparing`)", () => {
  const pubFor = (id: string) => createEventPublisher(redis, prefix, id);

  it("goes out ahead of the next event, in order, and live watchers and replays see the same events", async () => {
    const e = await newExecution("running");
    const w = await watch(e.id);
    try {
      const pub = pubFor(e.id);
      pub.hold({ type: "status", status: "preparing" }, 60_000);
      await pub.publish({ type: "status", status: "running" });
      await pub.publish({ type: "stdout", text: "1\n" });
      expect(await finishAndAnnounce({ db, redis, prefix }, e.id, "completed", { result: null }, pub)).toBe(true);
      const expected = ["status:preparing", "status:running", "stdout:", "status:completed", "done:completed"];
      expect(kinds(await w.replay())).toEqual(expected);
      await expect.poll(() => kinds(w.live)).toEqual(expected);
      expect(w.live.map((x) => x.id)).toEqual((await w.replay()).map((x) => x.id));
    } finally {
      await w.close();
    }
  });

  it("output published while the code runs reaches watchers without waiting for the end, in order", async () => {
    const e = await newExecution("running");
    const w = await watch(e.id);
    try {
      const pub = pubFor(e.id);
      pub.hold({ type: "status", status: "preparing" }, 60_000);
      void pub.publish({ type: "status", status: "running" });
      void pub.publish({ type: "stdout", text: "a" });
      // Nothing else is published and nothing ends: the batch window alone sends them.
      const expected = ["status:preparing", "status:running", "stdout:"];
      await expect.poll(() => kinds(w.live)).toEqual(expected);
      await pub.publish({ type: "stdout", text: "b" });
      expect(kinds(await w.replay())).toEqual([...expected, "stdout:"]);
    } finally {
      await w.close();
    }
  });

  it("goes out alone once its time has passed (a kernel that takes a while to start)", async () => {
    const e = await newExecution("running");
    const w = await watch(e.id);
    try {
      pubFor(e.id).hold({ type: "status", status: "preparing" }, 20);
      await expect.poll(() => kinds(w.live)).toEqual(["status:preparing"]);
      expect(kinds(await w.replay())).toEqual(["status:preparing"]);
    } finally {
      await w.close();
    }
  });

  it("is dropped, not sent later, when the finish carrying it loses to another end", async () => {
    const e = await newExecution("running");
    const w = await watch(e.id);
    try {
      const pub = pubFor(e.id);
      pub.hold({ type: "status", status: "preparing" }, 60_000);
      // Someone else ends it first; the worker's finish then moves nothing and must not announce its event.
      expect(await finishAndAnnounce({ db, redis, prefix }, e.id, "cancelled", { result: null })).toBe(true);
      expect(await finishAndAnnounce({ db, redis, prefix }, e.id, "failed", { result: null }, pub)).toBe(false);
      // Nothing follows a `done`, whoever sends it: the stream refuses a late event (a held one whose timer
      // fires after another process ended the execution goes out the same way).
      pub.hold({ type: "status", status: "preparing" }, 60_000);
      await pub.publish({ type: "stdout", text: "late" });
      expect(kinds(await w.replay())).toEqual(["status:cancelled", "done:cancelled"]);
      await expect.poll(() => kinds(w.live)).toEqual(["status:cancelled", "done:cancelled"]);
    } finally {
      await w.close();
    }
  });
});

describe("requestCancel", () => {
  it("reaches a listening worker at once and leaves a mark for one that picks the execution up later", async () => {
    const e = await newExecution("running");
    const listener = subscriberRedis.duplicate();
    const heard: string[] = [];
    try {
      await onCancelRequests(listener, prefix, (id) => heard.push(id));
      expect(await isCancelRequested(redis, prefix, e.id)).toBe(false);
      await requestCancel(redis, prefix, e.id);
      await expect.poll(() => heard).toEqual([e.id]);
      expect(await isCancelRequested(redis, prefix, e.id)).toBe(true);
    } finally {
      listener.disconnect();
    }
  });
});

describe("enqueueExecution", () => {
  it("makes one job per execution, named by its id, with a payload the worker accepts", async () => {
    const executions = new Queue(queueNames.executions, { connection: redis, prefix });
    const maintenance = new Queue(queueNames.maintenance, { connection: redis, prefix });
    try {
      const e = await newExecution("queued");
      await enqueueExecution(executions, e);
      await enqueueExecution(executions, e); // a retried request, the reconciler
      expect(await executions.count()).toBe(1);
      const job = await executions.getJob(e.id);
      expect(parseJobPayload("runExecution", job?.data)).toEqual({
        executionId: e.id,
        messageKey: workspaceId(e.userId, e.messageId),
      });
      expect(job?.opts.attempts).toBe(5);
      await expect(enqueueExecution(maintenance, e)).rejects.toBeInstanceOf(WrongQueueError);
      expect(await maintenance.count()).toBe(0);
    } finally {
      await executions.close();
      await maintenance.close();
    }
  });
});
