import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// End to end with the worker: uploads attached to a message, code reading and writing /mnt/data, and the
// listings and prompt context that follow from it.
let stack: TestStack;
let aliceKey: string;
let alice: ReturnType<typeof client>;
let bob: ReturnType<typeof client>;

beforeAll(async () => {
  stack = await startTestStack();
  aliceKey = (await stack.newUser("alice")).key;
  alice = client(stack.url, aliceKey);
  bob = client(stack.url, (await stack.newUser("bob")).key);
});
afterAll(async () => {
  await stack?.close();
});

const id = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;

async function upload(content: string | Uint8Array, name: string, type = "") {
  const form = new FormData();
  form.append("file", new Blob([content], { type }), name);
  const res = await fetch(`${stack.url}/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${aliceKey}` },
    body: form,
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; name: string; sha256: string; size: number };
}

async function bytesOf(url: string, key = aliceKey): Promise<{ status: number; text: string }> {
  const res = await fetch(`${stack.url}${url}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: res.status, text: Buffer.from(await res.arrayBuffer()).toString("utf8") };
}

const SALES = "date,region,amount\n2024-01-01,east,10\n2024-01-02,west,12\n2024-01-03,east,20\n";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function expectCompleted(done: any): void {
  expect(done.status, JSON.stringify(done.failure ?? done.result?.error)).toBe("completed");
  expect(done.result.error, JSON.stringify(done.result.error)).toBeNull();
}

describe("a CSV through the worker, then the listings and the context", () => {
  const chatId = id("chat");
  const messageId = id("msg");
  let sales: { id: string };
  let summaryId: string;

  it("code reads the attachment at /mnt/data and by relative path, and its output is registered", async () => {
    sales = await upload(SALES, "sales.csv", "text/csv");
    const done = await alice.run({
      chatId,
      messageId,
      fileIds: [sales.id],
      code: [
        "import os, pandas as pd",
        "df = pd.read_csv('/mnt/data/sales.csv')",
        "os.makedirs('/mnt/data/out', exist_ok=True)",
        "df.groupby('region')['amount'].sum().to_csv('/mnt/data/out/summary.csv')",
        "print(open('sales.csv').read() == open('/mnt/data/sales.csv').read(), os.getcwd() == os.path.realpath('/mnt/data'))",
      ].join("\n"),
    });
    expectCompleted(done);
    expect(done.result.stdout).toContain("True");
    expect(done.files).toHaveLength(1);
    const [file] = done.files;
    expect(file).toMatchObject({
      name: "summary.csv",
      path: "out/summary.csv",
      mimeType: "text/csv",
      url: `/v1/files/${file.id}/content`,
    });
    summaryId = file.id;
    const got = await bytesOf(file.url);
    expect(got.status).toBe(200);
    expect(got.text).toBe("region,amount\neast,30\nwest,12\n");
    expect(file.size).toBe(Buffer.byteLength(got.text));

    const meta = await alice.get(`/v1/files/${file.id}`);
    expect(meta.body).toMatchObject({
      id: file.id,
      name: "summary.csv",
      path: "out/summary.csv",
      messageId,
      executionId: done.id,
    });
  });

  it("GET /v1/messages/:id/files and /v1/chats/:id/files list it", async () => {
    const byMessage = await alice.get(`/v1/messages/${messageId}/files`);
    expect(byMessage.status).toBe(200);
    expect(byMessage.body.messageId).toBe(messageId);
    expect(byMessage.body.files.map((f: { id: string; path: string }) => [f.id, f.path])).toEqual([
      [summaryId, "out/summary.csv"],
    ]);

    const byChat = await alice.get(`/v1/chats/${chatId}/files`);
    expect(byChat.status).toBe(200);
    expect(byChat.body).toEqual({ chatId, totalFiles: 1, messages: { [messageId]: byMessage.body.files } });
  });

  it("a later execution of the message sees the attachment and what earlier ones wrote; its files are added", async () => {
    const done = await alice.run({
      chatId,
      messageId,
      code: [
        "import os, json",
        "from openpyxl import Workbook",
        "print(sorted(n for n in os.listdir('/mnt/data') if not n.startswith('.')))",
        "print(open('out/summary.csv').read().splitlines()[0])",
        "wb = Workbook(); wb.active.title = 'Summary'; wb.create_sheet('Raw data & notes'); wb.save('report.xlsx')",
        "json.dump({'total': 42, 'regions': ['east', 'west']}, open('stats.json', 'w'))",
        "open('notes.txt', 'w').write('\\nTotals by region\\nsecond line\\n')",
      ].join("\n"),
    });
    expectCompleted(done);
    expect(done.result.stdout).toBe("['out', 'sales.csv']\nregion,amount\n");
    expect(done.files.map((f: { path: string }) => f.path).sort()).toEqual(["notes.txt", "report.xlsx", "stats.json"]);

    const byChat = await alice.get(`/v1/chats/${chatId}/files`);
    expect(byChat.body.totalFiles).toBe(4);
    expect(byChat.body.messages[messageId].map((f: { path: string }) => f.path)).toEqual([
      "notes.txt",
      "out/summary.csv",
      "report.xlsx",
      "stats.json",
    ]);
  });

  it("/context lists attachments and generated files with previews, and a prompt naming them", async () => {
    const ctx = await alice.get(`/v1/messages/${messageId}/context`);
    expect(ctx.status).toBe(200);
    expect(ctx.body.messageId).toBe(messageId);
    const byPath = Object.fromEntries(ctx.body.files.map((f: { path: string }) => [f.path, f]));
    expect(ctx.body.files[0].path).toBe("sales.csv"); // attachments first
    expect(byPath["sales.csv"]).toEqual({
      id: sales.id,
      source: "attachment",
      path: "sales.csv",
      name: "sales.csv",
      size: Buffer.byteLength(SALES),
      mimeType: "text/csv",
      preview: { kind: "columns", columns: ["date", "region", "amount"] },
    });
    expect(byPath["out/summary.csv"]).toMatchObject({
      source: "generated",
      name: "summary.csv",
      preview: { kind: "columns", columns: ["region", "amount"] },
    });
    expect(byPath["report.xlsx"].preview).toEqual({ kind: "sheets", sheets: ["Summary", "Raw data & notes"] });
    expect(byPath["stats.json"].preview).toEqual({ kind: "keys", keys: ["total", "regions"], array: false });
    expect(byPath["notes.txt"].preview).toEqual({ kind: "text", firstLine: "Totals by region" });

    const prompt: string = ctx.body.prompt;
    expect(prompt).toMatch(/^Files available in \/mnt\/data for this message:\n/);
    expect(prompt).toContain(
      `- /mnt/data/sales.csv (text/csv, ${Buffer.byteLength(SALES)} B) — columns: date, region, amount`,
    );
    expect(prompt).toContain("- /mnt/data/out/summary.csv (text/csv");
    expect(prompt).toContain(
      "/mnt/data/report.xlsx (application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    );
    expect(prompt).toContain("sheets: Summary, Raw data & notes");
    expect(prompt).toMatch(/Save files you create under \/mnt\/data so the user can download them\.$/);
  });

  it("another user sees empty listings and context, and 404 on the files", async () => {
    expect((await bob.get(`/v1/messages/${messageId}/files`)).body).toEqual({ messageId, files: [] });
    expect((await bob.get(`/v1/chats/${chatId}/files`)).body).toEqual({ chatId, totalFiles: 0, messages: {} });
    const ctx = await bob.get(`/v1/messages/${messageId}/context`);
    expect(ctx.status).toBe(200);
    expect(ctx.body.files).toEqual([]);
    expect(ctx.body.prompt).not.toContain("sales.csv");
    expect((await bob.get(`/v1/files/${summaryId}`)).status).toBe(404);
    expect((await bob.get(`/v1/files/${summaryId}/content`)).status).toBe(404);
    expect((await bob.get(`/v1/files/${sales.id}/content`)).status).toBe(404);
  });
});

describe("attachments in the workspace", () => {
  it("two uploads named data.csv are placed as data.csv and data (2).csv, as /context says", async () => {
    const first = await upload("which\nfirst\n", "data.csv");
    const second = await upload("which\nsecond\n", "data.csv");
    const messageId = id("msg");
    const done = await alice.run({
      messageId,
      fileIds: [first.id, second.id],
      code: "print(open('data.csv').read().split()[1], open('/mnt/data/data (2).csv').read().split()[1])",
    });
    expectCompleted(done);
    expect(done.result.stdout).toBe("first second\n");
    const ctx = await alice.get(`/v1/messages/${messageId}/context`);
    expect(ctx.body.files.map((f: { id: string; path: string }) => [f.id, f.path])).toEqual([
      [first.id, "data.csv"],
      [second.id, "data (2).csv"],
    ]);
  });

  it("deleting one attachment renames no other: a new message still gets data (2).csv for the second", async () => {
    const first = await upload("which\nfirst\n", "data.csv");
    const second = await upload("which\nsecond\n", "data.csv");
    const messageId = id("msg");
    expectCompleted(await alice.run({ messageId, fileIds: [first.id, second.id], code: "1" }));
    expect((await alice.del(`/v1/files/${first.id}`)).status).toBe(204);
    const ctx = await alice.get(`/v1/messages/${messageId}/context`);
    expect(ctx.body.files.map((f: { path: string }) => f.path)).toEqual(["data (2).csv"]);
    // A later execution of the same message: the workspace copies are the user's working state.
    const later = await alice.run({ messageId, code: "import os\nprint(sorted(os.listdir('/mnt/data')))" });
    expect(later.result.stdout).toBe("['data (2).csv', 'data.csv']\n");
    expect(later.result.notes ?? []).toEqual([]);
  });

  it("changing an attachment keeps the stored original and registers the copy with derivedFromId", async () => {
    const original = "a\n1\n";
    const up = await upload(original, "data.csv");
    const messageId = id("msg");
    const done = await alice.run({
      messageId,
      fileIds: [up.id],
      code: "open('/mnt/data/data.csv', 'a').write('2\\n')",
    });
    expectCompleted(done);
    expect(done.files).toHaveLength(1);
    expect(done.files[0]).toMatchObject({ path: "data.csv", derivedFromId: up.id });
    expect(done.files[0].id).not.toBe(up.id);
    expect((await bytesOf(done.files[0].url)).text).toBe("a\n1\n2\n");
    const again = await bytesOf(`/v1/files/${up.id}/content`);
    expect(again.text).toBe(original);
    expect((await alice.get(`/v1/files/${up.id}`)).body.sha256).toBe(up.sha256);

    // The model now finds the changed copy at that path.
    const ctx = await alice.get(`/v1/messages/${messageId}/context`);
    expect(ctx.body.files).toEqual([
      expect.objectContaining({ id: done.files[0].id, source: "generated", path: "data.csv", size: 6 }),
    ]);
  });

  it("a symlink planted by code is not registered as a file", async () => {
    const messageId = id("msg");
    const done = await alice.run({
      messageId,
      code: "import os\nos.symlink('/etc/passwd', 'leak.csv')\nopen('fine.txt', 'w').write('ok')",
    });
    expectCompleted(done);
    expect(done.files.map((f: { name: string }) => f.name)).toEqual(["fine.txt"]);
    const listed = await alice.get(`/v1/messages/${messageId}/files`);
    expect(listed.body.files.map((f: { name: string }) => f.name)).not.toContain("leak.csv");
  });

  it("another message's workspace is invisible", async () => {
    const chatId = id("chat");
    const secret = await upload("s3cret\n", "secret.csv");
    const a = await alice.run({
      chatId,
      messageId: id("msg-a"),
      fileIds: [secret.id],
      code: "open('a-output.txt', 'w').write('from a')",
    });
    expectCompleted(a);
    const b = await alice.run({
      chatId,
      messageId: id("msg-b"),
      code: "import os\nprint(sorted(n for n in os.listdir('/mnt/data') if not n.startswith('.')))",
    });
    expectCompleted(b);
    expect(b.result.stdout).toBe("[]\n");
  });
});
