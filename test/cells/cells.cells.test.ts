import { randomBytes } from "node:crypto";
import { HeadObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { census, sleep, waitFor } from "../faults/harness";
import type { FaultStack } from "../faults/harness";
import { client, report, sha256, startCellsStack } from "./harness";
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
    const messages = users.flatMap((u, ui) => [0, 1, 2].map((m) => ({ u, token: `t${ui}m${m}`, messageId: `m-${ui}-${m}` })));
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
      .map((e, i) => ({ message: messages[i]!.messageId, first: firstCells[i], follow: followCells[i], out: e.result?.stdout, notes: e.result?.notes }))
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
    });
  });
});

export { census, sleep, waitFor, filesWithoutObject, S3_DOWN_MS };
