import { randomBytes } from "node:crypto";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { holdMessage } from "@codeinterp/queue";
import { workspaceId } from "@codeinterp/workspace";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { census, sleep, waitFor } from "../faults/harness";
import type { FaultStack } from "../faults/harness";
import { QUEUE_PREFIX, client, report, sha256, startCellsStack } from "./harness";
import type { CellMachine, CellsStack } from "./harness";

// The one fault that is a duration on purpose: how long the S3 server stays away.
const S3_DOWN_MS = 10_000;
const RESET_NOTE = /variables and imports from them were reset/;

type Client = ReturnType<typeof client>;

/** Code that sets a variable and writes a file named by the token; its follow-up reads both back. */
const firstCode = (token: string) =>
  [
    `x_${token} = '${token}'`,
    `open('/mnt/data/out-${token}.txt', 'w').write('${token}' * 100)`,
    "import time; time.sleep(0.3)",
    `print('${token}')`,
  ].join("\n");
const followUpCode = (token: string) =>
  [
    "import os",
    `v = globals().get('x_${token}', 'gone')`,
    `f = open('/mnt/data/out-${token}.txt').read() if os.path.exists('/mnt/data/out-${token}.txt') else 'missing'`,
    `print(v, f == '${token}' * 100)`,
  ].join("\n");

/** The cell that ran an execution, from the worker id it recorded. */
async function cellOf(stack: CellsStack, executionId: string): Promise<string | null> {
  const [row] = await stack.sql<{ worker_id: string | null }>(`SELECT worker_id FROM executions WHERE id = $1`, [
    executionId,
  ]);
  return row?.worker_id?.replace(/-worker$/, "") ?? null;
}

/** Finished execution jobs per queue: the shared one, and each cell's (where the producer placed them). */
async function jobsByQueue(stack: CellsStack): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const q of ["executions", "executions-cell-cell-a", "executions-cell-cell-b", "executions-cell-cell-c"])
    out[q] = await stack.r.zcard(`${QUEUE_PREFIX}:${q}:completed`);
  return out;
}

/** Every registered file's object is in the bucket (nothing half-registered). */
async function filesWithoutObject(stack: CellsStack): Promise<string[]> {
  const rows = await stack.sql<{ id: string; storage_key: string }>(`SELECT id, storage_key FROM files`);
  const s3 = stack.s3.client();
  const missing: string[] = [];
  for (const f of rows) {
    const ok = await s3
      .send(new HeadObjectCommand({ Bucket: stack.s3.bucket, Key: `blobs/${f.storage_key}` }))
      .then(() => true)
      .catch(() => false);
    if (!ok) missing.push(f.id);
  }
  s3.destroy();
  return missing;
}

describe("cells: machines that share only Postgres, Redis and S3", () => {
  let stack: CellsStack;
  let cellA: CellMachine;
  let cellB: CellMachine;
  let users: Array<{ userId: string; key: string }>;
  const asFaultStack = () => stack as unknown as FaultStack;

  beforeAll(async () => {
    const t0 = Date.now();
    stack = await startCellsStack();
    const t1 = Date.now();
    await Promise.all([stack.startApi("api1"), stack.startApi("api2")]);
    const t2 = Date.now();
    [cellA, cellB] = await Promise.all([stack.startCell("cell-a"), stack.startCell("cell-b")]);
    users = await Promise.all([1, 2, 3, 4].map((i) => stack.newUser(`u${i}`)));
    report("setup", { sharedServicesMs: t1 - t0, apisMs: t2 - t1, cellsMs: Date.now() - t2 });
  }, 300_000);
  afterAll(async () => stack?.close(), 120_000);

  const via = (i: number, key: string): Client => client(stack.apis[i % stack.apis.length]!.url, key);

  it("two cells and two API instances serve many users; follow-ups keep variables; files download through either API", async () => {
    const upload = randomBytes(64 * 1024);
    const messages = users.flatMap((u, ui) =>
      [0, 1, 2].map((m) => ({ u, token: `t${ui}m${m}`, messageId: `m-${ui}-${m}` })),
    );
    // Each user's first message carries an attachment, uploaded through the other API instance.
    const attachment = new Map<string, string>();
    for (const [ui, u] of users.entries()) {
      const up = await via(ui + 1, u.key).upload(`data-${ui}.bin`, upload);
      expect(up.status).toBe(201);
      attachment.set(u.userId, up.body.id as string);
    }
    const firsts = await Promise.all(
      messages.map(async ({ u, token, messageId }, i) => {
        const fileIds = messageId.endsWith("-0") ? [attachment.get(u.userId)!] : undefined;
        const code = `${firstCode(token)}\nimport os; print(sorted(os.listdir('/mnt/data')))`;
        return via(i, u.key).run({ chatId: `chat-${u.userId}`, messageId, code, ...(fileIds ? { fileIds } : {}) });
      }),
    );
    expect(firsts.map((e) => e.status)).toEqual(messages.map(() => "completed"));
    for (const [i, e] of firsts.entries())
      if (messages[i]!.messageId.endsWith("-0")) expect(String(e.result.stdout)).toMatch(/data-\d\.bin/);
    // Follow-ups through the other API instance: same cell, same kernel, variables kept.
    const follows = await Promise.all(
      messages.map(({ u, token, messageId }, i) =>
        via(i + 1, u.key).run({ chatId: `chat-${u.userId}`, messageId, code: followUpCode(token) }),
      ),
    );
    const firstCells = await Promise.all(firsts.map((e) => cellOf(stack, e.id as string)));
    const followCells = await Promise.all(follows.map((e) => cellOf(stack, e.id as string)));
    const lostState = follows
      .map((e, i) => ({
        message: messages[i]!.messageId,
        first: firstCells[i],
        follow: followCells[i],
        out: e.result?.stdout,
        notes: e.result?.notes,
      }))
      .filter((x, i) => String(follows[i]!.result?.stdout).trim() !== `${messages[i]!.token} True`);
    if (lostState.length) report("follow-ups that lost state", lostState);
    for (const [i, e] of follows.entries()) {
      expect(e.status).toBe("completed");
      expect(String(e.result.stdout).trim()).toBe(`${messages[i]!.token} True`);
      expect(e.result.notes ?? []).not.toEqual(expect.arrayContaining([expect.stringMatching(RESET_NOTE)]));
    }
    expect(followCells).toEqual(firstCells);
    const perCell = Object.fromEntries(["cell-a", "cell-b"].map((c) => [c, firstCells.filter((x) => x === c).length]));
    expect(perCell["cell-a"]).toBeGreaterThan(0);
    expect(perCell["cell-b"]).toBeGreaterThan(0);
    // Every generated file, through both API instances, with its bytes.
    let downloads = 0;
    for (const [i, e] of firsts.entries()) {
      const { u, token } = messages[i]!;
      const file = (e.files as Array<{ id: string; name: string }>).find((f) => f.name === `out-${token}.txt`);
      expect(file).toBeDefined();
      for (const api of [0, 1]) {
        const got = await via(api, u.key).download(file!.id);
        expect(got.status).toBe(200);
        expect(sha256(got.bytes)).toBe(sha256(token.repeat(100)));
        downloads++;
      }
    }
    report("two cells, two APIs", {
      messages: messages.length,
      executions: firsts.length + follows.length,
      messagesPerCell: perCell,
      followUpsOnTheirCell: followCells.filter((c, i) => c === firstCells[i]).length,
      downloads,
      cells: (await stack.beats()).map((b) => ({ cell: b.cellId, room: b.room })),
      jobsByQueue: await jobsByQueue(stack),
    });
  });

  /** Runs a first execution on each of `n` new messages of `chat`; returns them with the cell that ran each. */
  async function firstRuns(chat: string, n: number, u = users[0]!) {
    const runs = await Promise.all(
      Array.from({ length: n }, (_, i) => {
        const token = `${chat}${i}`;
        const messageId = `${chat}-m${i}`;
        return via(i, u.key)
          .run({ chatId: chat, messageId, code: firstCode(token) })
          .then(async (e) => ({ token, messageId, chatId: chat, u, id: e.id as string, status: e.status as string }));
      }),
    );
    return Promise.all(runs.map(async (r) => ({ ...r, cell: await cellOf(stack, r.id) })));
  }

  /** Waits until no execution is active, then counts them all (failure codes, files registered twice). */
  async function settleAll(ms: number) {
    await waitFor(
      async () =>
        (await stack.sql(`SELECT 1 FROM executions WHERE status NOT IN ('completed','failed','timed_out','cancelled')`))
          .length === 0,
      ms,
      "every execution terminal",
    );
    return census(asFaultStack());
  }

  it("SIGKILL of a cell during a burst: every execution ends once, its messages continue on the other cell with their files", async () => {
    const held = await firstRuns("kill", 8);
    expect(held.every((r) => r.status === "completed")).toBe(true);
    const onA = held.filter((r) => r.cell === "cell-a");
    const onB = held.filter((r) => r.cell === "cell-b");
    // Placement is by room: with both idle each gets some; without any on cell-a there is nothing to lose.
    expect(onA.length).toBeGreaterThan(0);
    // The burst: a slow second execution on every held message and a few new messages.
    const slow = (t: string) =>
      `import time; open('/mnt/data/burst-${t}.txt', 'w').write('${t}'); time.sleep(2); print('${t}')`;
    const burst: string[] = [];
    for (const [i, r] of held.entries()) {
      const sub = await via(i, r.u.key).submit({ chatId: r.chatId, messageId: r.messageId, code: slow(r.token) });
      expect(sub.status).toBe(202);
      burst.push(sub.body.id as string);
    }
    for (let i = 0; i < 6; i++) {
      const sub = await via(i, users[1]!.key).submit({
        chatId: "kill-new",
        messageId: `kill-new-${i}`,
        code: slow(`n${i}`),
      });
      burst.push(sub.body.id as string);
    }
    await waitFor(
      async () =>
        (await stack.sql(`SELECT 1 FROM executions WHERE status = 'running' AND worker_id = $1`, [cellA.workerId]))
          .length > 0,
      30_000,
      "an execution running on cell-a",
    );
    const runningOnA = (
      await stack.sql<{ id: string }>(`SELECT id FROM executions WHERE status = 'running' AND worker_id = $1`, [
        cellA.workerId,
      ])
    ).map((r) => r.id);
    const killedAt = Date.now();
    await cellA.killAll();
    const c = await settleAll(120_000);
    const ended = await stack.sql<{
      id: string;
      status: string;
      code: string | null;
      worker_id: string | null;
      kernel_id: string | null;
    }>(`SELECT id, status, failure->>'code' AS code, worker_id, kernel_id FROM executions WHERE id = ANY($1::uuid[])`, [
      burst,
    ]);
    // Running on cell-a when it died: failed worker_lost (the code may have had effects; not run twice).
    for (const id of runningOnA)
      expect(ended.find((e) => e.id === id)).toMatchObject({ status: "failed", code: "worker_lost" });
    // Everything else of the burst ran (queued or preparing on cell-a, it was handed on to cell-b), but for an
    // execution that reached cell-a's kernel in the moment between the look and the kill: `running` is written
    // with the kernel, on the cell that sends the code.
    const others = ended.filter((e) => e.status !== "completed" && !runningOnA.includes(e.id));
    for (const e of others)
      expect(e).toMatchObject({
        status: "failed",
        code: "worker_lost",
        worker_id: cellA.workerId,
        kernel_id: expect.any(String),
      });
    expect(c.duplicates).toBe(0);
    expect(Object.keys(c.failureCodes).filter((k) => k !== "worker_lost")).toEqual([]);
    // cell-a's messages: their next execution runs on cell-b, variables reset, files rebuilt from S3.
    const follows = await Promise.all(
      held.map((r, i) =>
        via(i + 1, r.u.key).run({ chatId: r.chatId, messageId: r.messageId, code: followUpCode(r.token) }),
      ),
    );
    for (const [i, e] of follows.entries()) {
      const r = held[i]!;
      expect(e.status).toBe("completed");
      expect(await cellOf(stack, e.id as string)).toBe("cell-b");
      const [value, fileOk] = String(e.result.stdout).trim().split(" ");
      expect(fileOk).toBe("True");
      if (r.cell === "cell-a") {
        expect(value).toBe("gone");
        // The message's first execution on cell-b (its burst run, or this follow-up) said variables were reset.
        const notes = await stack.sql<{ n: string }>(
          `SELECT (result->'notes')::text AS n FROM executions WHERE message_id = $1 AND worker_id = $2 AND status = 'completed' ORDER BY created_at LIMIT 1`,
          [r.messageId, cellB.workerId],
        );
        expect(notes[0]?.n ?? "").toMatch(RESET_NOTE);
      } else expect(value).toBe(r.token);
    }
    expect((await settleAll(30_000)).duplicates).toBe(0);
    report("SIGKILL cell-a during a burst", {
      heldMessages: { "cell-a": onA.length, "cell-b": onB.length },
      burst: burst.length,
      runningOnCellAWhenKilled: runningOnA.length,
      burstOutcome: Object.fromEntries(
        [...new Set(ended.map((e) => `${e.status}${e.code ? `:${e.code}` : ""}`))].map((k) => [
          k,
          ended.filter((e) => `${e.status}${e.code ? `:${e.code}` : ""}` === k).length,
        ]),
      ),
      settledWithinMs: Date.now() - killedAt,
      followUpsOnCellB: follows.length,
      cellAMessagesContinuedOnB: onA.length,
      filesRegisteredTwice: c.duplicates,
    });
  });

  it("the S3 server away for 10 s: uploads and captures answer clearly, nothing lost or half-registered, all works after", async () => {
    const u = users[2]!;
    const a = via(0, u.key);
    const before = await a.run({
      chatId: "s3",
      messageId: "s3-m0",
      code: "open('/mnt/data/before.txt','w').write('b'); x = 1",
    });
    expect(before.status).toBe("completed");
    await stack.s3.stopProxy();
    const downAt = Date.now();
    const uploads: number[] = [];
    const uploadCodes = new Set<string>();
    const submitted: string[] = [];
    let i = 0;
    while (Date.now() - downAt < S3_DOWN_MS) {
      const up = await via(i, u.key).upload(`during-${i}.bin`, randomBytes(4096));
      uploads.push(up.status);
      if (up.status !== 201) uploadCodes.add(String(up.body?.error?.code ?? up.body?.code ?? up.status));
      const sub = await via(i, u.key).submit({
        chatId: "s3",
        messageId: `s3-m${i % 3}`,
        code: `open('/mnt/data/during-${i}.txt','w').write('${i}' * 1000); print(${i})`,
      });
      expect(sub.status).toBe(202);
      submitted.push(sub.body.id as string);
      i++;
      await sleep(1000);
    }
    await stack.s3.startProxy();
    const c = await settleAll(180_000);
    const ended = await stack.sql<{ id: string; status: string; code: string | null; msg: string | null }>(
      `SELECT id, status, failure->>'code' AS code, failure->>'message' AS msg FROM executions WHERE id = ANY($1::uuid[])`,
      [submitted],
    );
    // Each ended: completed (its capture retried until the store was back), or, when its capture outlasted the
    // worker's retries, failed `blob_store_unavailable` with what the code printed (never `worker_lost`: the
    // code ran once and its job says so itself).
    for (const e of ended) {
      if (e.status !== "completed") expect([e.status, e.code]).toEqual(["failed", "blob_store_unavailable"]);
    }
    expect(uploads.every((s) => s === 201 || s === 503)).toBe(true);
    expect(c.duplicates).toBe(0);
    expect(await filesWithoutObject(stack)).toEqual([]);
    // Every file a completed execution registered downloads with its bytes.
    const completedFiles = await stack.sql<{ id: string; path: string }>(
      `SELECT f.id, f.path FROM files f JOIN executions e ON e.id = f.execution_id WHERE e.id = ANY($1::uuid[]) AND e.status = 'completed'`,
      [submitted],
    );
    for (const f of completedFiles) {
      const n = /during-(\d+)\.txt/.exec(f.path)?.[1];
      const got = await a.download(f.id);
      expect(got.status).toBe(200);
      if (n !== undefined) expect(got.bytes.toString()).toBe(n.repeat(1000));
    }
    // After: an upload and a capture work.
    const up = await a.upload("after.bin", randomBytes(1024));
    expect(up.status).toBe(201);
    const after = await a.run({
      chatId: "s3",
      messageId: "s3-after",
      fileIds: [up.body.id],
      code: "import os; open('/mnt/data/after.txt','w').write('a' * 10); print(os.path.getsize('/mnt/data/after.bin'))",
    });
    expect(after.status).toBe("completed");
    expect(String(after.result.stdout).trim()).toBe("1024");
    const afterFile = (after.files as Array<{ id: string; name: string }>).find((f) => f.name === "after.txt");
    expect((await via(1, u.key).download(afterFile!.id)).bytes.toString()).toBe("a".repeat(10));
    report("S3 server away for 10 s", {
      uploadsDuring: Object.fromEntries([...new Set(uploads)].map((s) => [s, uploads.filter((x) => x === s).length])),
      uploadErrorCodes: [...uploadCodes],
      executionsDuring: Object.fromEntries(
        [...new Set(ended.map((e) => `${e.status}${e.code ? `:${e.code}` : ""}`))].map((k) => [
          k,
          ended.filter((e) => `${e.status}${e.code ? `:${e.code}` : ""}` === k).length,
        ]),
      ),
      failureSample: ended.find((e) => e.code)?.msg?.slice(0, 160) ?? null,
      filesDownloaded: completedFiles.length,
      filesWithoutObject: 0,
      filesRegisteredTwice: c.duplicates,
    });
  });

  let cellC: CellMachine;
  it("a cell added under load takes new messages", { timeout: 360_000 }, async () => {
    const u = users[3]!;
    const ids: Array<{ id: string; at: number }> = [];
    let stop = false;
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const sub = await via(i, u.key).submit({
          chatId: "grow",
          messageId: `grow-${i}`,
          code: "import time; time.sleep(0.5); print(1)",
        });
        if (sub.status === 202) ids.push({ id: sub.body.id as string, at: Date.now() });
        await sleep(500);
      }
    })();
    let cBeatsAt = 0;
    try {
      await sleep(2000);
      cellC = await stack.startCell("cell-c");
      cBeatsAt = Date.now();
      await waitFor(
        async () =>
          (await stack.sql(`SELECT 1 FROM executions WHERE worker_id = $1 AND status = 'completed'`, [cellC.workerId]))
            .length >= 3,
        60_000,
        "cell-c completing new messages",
      );
    } finally {
      stop = true;
      await load;
    }
    await settleAll(120_000);
    const rows = await stack.sql<{ id: string; worker_id: string; status: string }>(
      `SELECT id, worker_id, status FROM executions WHERE id = ANY($1::uuid[])`,
      [ids.map((x) => x.id)],
    );
    expect(rows.every((r) => r.status === "completed")).toBe(true);
    const after = rows.filter((r) => ids.find((x) => x.id === r.id)!.at >= cBeatsAt);
    const byCell = (list: typeof rows) =>
      Object.fromEntries(
        ["cell-b", "cell-c"].map((c) => [c, list.filter((r) => r.worker_id === `${c}-worker`).length]),
      );
    expect(byCell(after)["cell-c"]).toBeGreaterThan(0);
    report("cell-c added under load", {
      submitted: ids.length,
      beforeCellC: byCell(rows.filter((r) => !after.includes(r))),
      afterCellC: byCell(after),
    });
  });

  it("a cell drained with SIGTERM finishes its turns and hands its messages on", async () => {
    // Two new messages held by cell-b, recorded as cell-b's before they run. Placement alone (random, weighted
    // by room, tested above) sometimes put only one of 20 new messages there after the load case (CI saw it).
    const u = users[0]!;
    for (const i of [0, 1])
      await holdMessage(stack.r, QUEUE_PREFIX, workspaceId(u.userId, `drainx-m${i}`), "cell-b", 60_000);
    const heldByB = (await firstRuns("drainx", 2, u)).filter((r) => r.cell === "cell-b");
    expect(heldByB.length).toBe(2);
    const [busy, idle] = heldByB as [(typeof heldByB)[0], (typeof heldByB)[0]];
    const long = await via(0, busy.u.key).submit({
      chatId: busy.chatId,
      messageId: busy.messageId,
      code: `import time; time.sleep(4); open('/mnt/data/long.txt','w').write('done'); print(x_${busy.token})`,
    });
    await waitFor(
      async () =>
        (await stack.sql(`SELECT 1 FROM executions WHERE id = $1 AND status = 'running'`, [long.body.id])).length > 0,
      30_000,
      "the long execution running on cell-b",
    );
    const drainAt = Date.now();
    const stopping = cellB.stop("SIGTERM");
    // While it drains: its idle message's next execution goes elsewhere.
    await waitFor(
      async () => (await stack.beats()).some((b) => b.cellId === "cell-b" && b.draining) || undefined,
      10_000,
      "cell-b draining",
    );
    const moved = await via(1, idle.u.key).run({
      chatId: idle.chatId,
      messageId: idle.messageId,
      code: followUpCode(idle.token),
    });
    await stopping;
    const drainedMs = Date.now() - drainAt;
    const finished = await via(0, busy.u.key).execution(long.body.id as string, 20_000);
    expect(finished.body.status).toBe("completed");
    expect(String(finished.body.result.stdout).trim()).toBe(busy.token);
    expect(moved.status).toBe("completed");
    expect(await cellOf(stack, moved.id as string)).toBe("cell-c");
    expect(String(moved.result.stdout).trim()).toBe("gone True");
    expect(moved.result.notes ?? []).toEqual(expect.arrayContaining([expect.stringMatching(RESET_NOTE)]));
    // The busy message, after the drain: on cell-c, with the file its last turn on cell-b wrote.
    const next = await via(1, busy.u.key).run({
      chatId: busy.chatId,
      messageId: busy.messageId,
      code: "print(open('/mnt/data/long.txt').read())",
    });
    expect(next.status).toBe("completed");
    expect(await cellOf(stack, next.id as string)).toBe("cell-c");
    expect(String(next.result.stdout).trim()).toBe("done");
    expect(cellB.node.pids()).toEqual([]);
    const c = await settleAll(30_000);
    expect(c.duplicates).toBe(0);
    report("cell-b drained with SIGTERM", {
      runningWhenDrained: 1,
      itsOutcome: finished.body.status,
      drainedMs,
      handedOnDuringDrain: { ranOn: await cellOf(stack, moved.id as string), resetNoted: true },
      afterDrain: { ranOn: await cellOf(stack, next.id as string), fileKept: true },
      cellsBeating: (await stack.beats()).map((b) => b.cellId),
      executions: c.byStatus,
    });
  });
});
