import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, registerExecutionFiles } from "@codeinterp/db";
import type { Db } from "@codeinterp/db";
import { createBlobStore } from "@codeinterp/workspace";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

let stack: TestStack;
let api: ReturnType<typeof client>;
let key: string;
let db: Db;
let n = 0;
const msg = () => `cap-${++n}-${Date.now()}`;

beforeAll(async () => {
  stack = await startTestStack({ env: { MAX_GENERATED_FILES: "4" } });
  key = (await stack.newUser("carol")).key;
  api = client(stack.url, key);
  db = createDb({ url: stack.databaseUrl });
});
afterAll(async () => {
  await db?.$disconnect();
  await stack?.close();
});

async function download(url: string): Promise<Buffer> {
  const res = await fetch(`${stack.url}${url}`, { headers: { authorization: `Bearer ${key}` } });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("generated files", () => {
  it("xlsx, csv, pdf and png written into nested folders come back with exact bytes", async () => {
    const code = `
import hashlib, json, os
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from reportlab.pdfgen import canvas
os.makedirs("/mnt/data/out/deep", exist_ok=True)
df = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
df.to_excel("/mnt/data/out/table.xlsx", index=False)
df.to_csv("out/deep/table.csv", index=False)
c = canvas.Canvas("/mnt/data/report.pdf"); c.drawString(72, 720, "hello"); c.save()
plt.plot([1, 2, 3]); plt.savefig("/mnt/data/out/deep/plot.png")
sums = {}
for root, _, files in os.walk("/mnt/data"):
    for f in files:
        p = os.path.join(root, f)
        sums[os.path.relpath(p, "/mnt/data")] = hashlib.sha256(open(p, "rb").read()).hexdigest()
print(json.dumps(sums, sort_keys=True))
`;
    const done = await api.run({ messageId: msg(), code });
    expect(done.status).toBe("completed");
    expect(done.result.error).toBeNull();
    const sums = JSON.parse(done.result.stdout) as Record<string, string>;
    const paths = done.files.map((f: { path: string }) => f.path).sort();
    expect(paths).toEqual(["out/deep/plot.png", "out/deep/table.csv", "out/table.xlsx", "report.pdf"]);
    for (const f of done.files as Array<{ path: string; url: string; mimeType: string; size: number }>) {
      const bytes = await download(f.url);
      expect(sha(bytes)).toBe(sums[f.path]);
      expect(bytes.length).toBe(f.size);
    }
    const byPath = Object.fromEntries(done.files.map((f: { path: string; mimeType: string }) => [f.path, f.mimeType]));
    expect(byPath["report.pdf"]).toBe("application/pdf");
    expect(byPath["out/deep/plot.png"]).toBe("image/png");
    expect(byPath["out/table.xlsx"]).toBe("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  });

  it("a displayed plot is stored as a file and the result references it by id", async () => {
    const done = await api.run({
      messageId: msg(),
      code: "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\nimport matplotlib.pyplot as plt\nplt.plot([3,1,2])\nplt.show()",
    });
    expect(done.status).toBe("completed");
    const images = done.result.outputs.filter((o: { type: string }) => o.type === "image/png");
    expect(images).toHaveLength(1);
    expect(images[0].data).toBeUndefined();
    const png = await download(`/v1/files/${images[0].fileId}/content`);
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    // Outputs are not workspace files: they are not listed among the message's generated files.
    expect(done.files).toEqual([]);
  });

  it("hidden files and caches are not captured; limits skip the rest and say so", async () => {
    const code = `
import os
os.makedirs("/mnt/data/__pycache__", exist_ok=True)
open("/mnt/data/__pycache__/x.pyc", "w").write("c")
open("/mnt/data/.secret", "w").write("s")
for i in range(6):
    open(f"/mnt/data/f{i}.txt", "w").write(str(i))
`;
    const done = await api.run({ messageId: msg(), code });
    expect(done.files.map((f: { path: string }) => f.path)).toEqual(["f0.txt", "f1.txt", "f2.txt", "f3.txt"]);
    const skipped = done.result.skippedFiles as Array<{ path: string; reason: string }>;
    expect(skipped).toEqual(
      expect.arrayContaining([
        { path: "f4.txt", reason: "limit_count" },
        { path: "f5.txt", reason: "limit_count" },
      ]),
    );
    expect(skipped.map((s) => s.path)).not.toContain(".secret");
  });

  it("a file changed by a later execution is registered again for that execution; unchanged files are not", async () => {
    const m = msg();
    const first = await api.run({
      messageId: m,
      code: "open('/mnt/data/a.txt','w').write('v1'); open('/mnt/data/b.txt','w').write('b')",
    });
    expect(first.files).toHaveLength(2);
    const second = await api.run({ messageId: m, code: "open('/mnt/data/a.txt','w').write('v2')" });
    expect(second.files.map((f: { path: string }) => f.path)).toEqual(["a.txt"]);
    expect((await download(second.files[0].url)).toString()).toBe("v2");
    expect((await download(first.files.find((f: { path: string }) => f.path === "a.txt").url)).toString()).toBe("v1");
    const listed = await api.get(`/v1/messages/${m}/files`);
    const a = listed.body.files.find((f: { path: string }) => f.path === "a.txt");
    expect(a.id).toBe(second.files[0].id);
  });

  it("registration is idempotent: registering the same (execution, path) again returns the first row", async () => {
    const done = await api.run({ messageId: msg(), code: "open('/mnt/data/once.txt','w').write('1')" });
    const file = done.files[0];
    const row = await db.file.findUniqueOrThrow({ where: { id: file.id } });
    const again = await registerExecutionFiles(db, done.id, [
      {
        userId: row.userId,
        name: row.name,
        size: Number(row.size),
        sha256: row.sha256,
        mimeType: row.mimeType,
        storageKey: row.storageKey,
        source: "generated",
        path: "once.txt",
      },
    ]);
    expect(again.map((f) => f.id)).toEqual([file.id]);
    expect(await db.file.count({ where: { executionId: done.id } })).toBe(1);
  });

  it("images the code shows become stored files, each where it was shown; registering them again returns the same rows", async () => {
    // Two different 1x1 PNGs around a text output: stored side by side, registered in one statement.
    const red = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==";
    const blue = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/5ncLrgAAAABJRU5ErkJggg==";
    const done = await api.run({
      messageId: msg(),
      code: [
        "import base64",
        "from IPython.display import Image, display",
        `display(Image(data=base64.b64decode("${red}")))`,
        "display('between')",
        `display(Image(data=base64.b64decode("${blue}")))`,
      ].join("\n"),
    });
    expect(done.status).toBe("completed");
    const outputs = done.result.outputs as Array<{ type: string; fileId?: string; data?: string }>;
    expect(outputs.map((o) => o.type)).toEqual(["image/png", "text/plain", "image/png"]);
    expect(outputs[1]?.data).toBe("'between'");
    const [first, , third] = outputs;
    expect(first?.fileId).toBeTruthy();
    expect(third?.fileId).toBeTruthy();
    expect(first?.fileId).not.toBe(third?.fileId);
    expect(await download(`/v1/files/${first?.fileId}/content`)).toEqual(Buffer.from(red, "base64"));
    expect(await download(`/v1/files/${third?.fileId}/content`)).toEqual(Buffer.from(blue, "base64"));
    // A retried capture registers the same paths again: it gets these rows, and no second one.
    const rows = await db.file.findMany({ where: { executionId: done.id }, orderBy: { path: "asc" } });
    expect(rows.map((r) => [r.path, r.source])).toEqual([
      ["/outputs/output-1.png", "output"],
      ["/outputs/output-3.png", "output"],
    ]);
    const again = await registerExecutionFiles(
      db,
      done.id,
      rows.map((r) => ({
        userId: r.userId,
        chatId: r.chatId,
        messageId: r.messageId,
        name: r.name,
        size: Number(r.size),
        sha256: r.sha256,
        mimeType: r.mimeType,
        storageKey: r.storageKey,
        source: r.source,
        path: r.path ?? "",
      })),
    );
    expect(again.map((f) => f.id)).toEqual([first?.fileId, third?.fileId]);
    expect(await db.file.count({ where: { executionId: done.id } })).toBe(2);
  });

  it("a generated file whose content a user's deletion removes meanwhile still downloads", async () => {
    const content = `made twice ${Date.now()}`;
    const form = new FormData();
    form.append("file", new Blob([content]), "first.txt");
    const up = (await (
      await fetch(`${stack.url}/v1/files`, { method: "POST", headers: { authorization: `Bearer ${key}` }, body: form })
    ).json()) as { id: string; sha256: string };
    // The deletion of first.txt, caught half-way: lock taken, no live reference seen, and the blob unlinked
    // only once the capture of the same content waits for that lock (its registering statement takes it).
    const deleter = new pg.Client({ connectionString: stack.databaseUrl });
    await deleter.connect();
    try {
      await deleter.query("BEGIN");
      await deleter.query("SELECT pg_advisory_xact_lock(('x' || substr($1::text, 1, 16))::bit(64)::bigint)", [
        up.sha256,
      ]);
      await deleter.query("UPDATE files SET deleted_at = now() WHERE id = $1", [up.id]);
      const run = api.run({
        messageId: msg(),
        code: `open('/mnt/data/again.txt', 'w').write(${JSON.stringify(content)})`,
      });
      const waiting = async () =>
        (
          await deleter.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database
             WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted`,
          )
        ).rows[0]?.n;
      await expect.poll(waiting, { timeout: 20_000 }).toBe(1);
      await rm(createBlobStore(stack.dataDir).pathOf(up.sha256));
      await deleter.query("COMMIT");
      const done = await run;
      expect(done.status).toBe("completed");
      expect((await download(`/v1/files/${done.files[0].id}/content`)).toString()).toBe(content);
    } finally {
      await deleter.end();
    }
  });

  it("an attachment whose stored content is missing is noted, and the code still runs", async () => {
    const form = new FormData();
    form.append("file", new Blob(["x,y\n"]), "gone.csv");
    const up = await fetch(`${stack.url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
      body: form,
    });
    const uploaded = (await up.json()) as { id: string; sha256: string };
    await rm(createBlobStore(stack.dataDir).pathOf(uploaded.sha256), { force: true });
    const done = await api.run({
      messageId: msg(),
      fileIds: [uploaded.id],
      code: "import os; print(os.path.exists('/mnt/data/gone.csv'))",
    });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toBe("False\n");
    expect(done.result.notes.join("\n")).toContain("gone.csv");
  });

  it("tracebacks and printed paths show /mnt/data, never the real workspace", async () => {
    const done = await api.run({
      messageId: msg(),
      code: "import os\nprint(os.path.abspath('x.csv'))\nopen('/mnt/data/missing.csv')",
    });
    expect(done.result.stdout).toBe("/mnt/data/x.csv\n");
    expect(done.result.error.ename).toBe("FileNotFoundError");
    expect(done.result.error.evalue).toContain("/mnt/data/missing.csv");
    expect(JSON.stringify(done.result)).not.toContain(stack.dataDir);
  });
});
