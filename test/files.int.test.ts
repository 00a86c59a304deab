import { createHash } from "node:crypto";
import { readdir, unlink } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { createDb } from "@codeinterp/db";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Uploads need no worker; a small MAX_UPLOAD_BYTES makes the 413 path cheap to reach.
const MAX = 1024;
let stack: TestStack;
let aliceKey: string;
let bobKey: string;
let api: ReturnType<typeof client>;
let bob: ReturnType<typeof client>;

beforeAll(async () => {
  stack = await startTestStack({ worker: false, env: { MAX_UPLOAD_BYTES: String(MAX) } });
  aliceKey = (await stack.newUser("alice")).key;
  bobKey = (await stack.newUser("bob")).key;
  api = client(stack.url, aliceKey);
  bob = client(stack.url, bobKey);
});
afterAll(async () => {
  await stack?.close();
});

async function upload(
  key: string,
  bytes: Uint8Array | string,
  name: string,
  opts: { type?: string; field?: string; extra?: (f: FormData) => void } = {},
) {
  const form = new FormData();
  opts.extra?.(form);
  form.append(opts.field ?? "file", new Blob([bytes], opts.type !== undefined ? { type: opts.type } : {}), name);
  const res = await fetch(`${stack.url}/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}` },
    body: form,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

/** A hand-written multipart body whose file part has the given Content-Disposition parameters. */
async function rawUpload(dispositionParams: string) {
  const boundary = "----codeinterp-test-boundary";
  const body = Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; ${dispositionParams}\r\nContent-Type: text/plain\r\n\r\n`,
      "utf8",
    ),
    Buffer.from("hello"),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  const res = await fetch(`${stack.url}/v1/files`, {
    method: "POST",
    headers: { authorization: `Bearer ${aliceKey}`, "content-type": `multipart/form-data; boundary=${boundary}` },
    body,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: res.status, body: (await res.json()) as any };
}

async function download(key: string, id: string, init: RequestInit = {}) {
  const res = await fetch(`${stack.url}/v1/files/${id}/content`, {
    ...init,
    headers: { authorization: `Bearer ${key}`, ...init.headers },
  });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

async function countFileRows(): Promise<number> {
  const db = createDb({ url: stack.databaseUrl });
  try {
    return await db.file.count();
  } finally {
    await db.$disconnect();
  }
}

/** Starts a multipart upload announcing more bytes than it sends, writes `chunks`, and drops it after `ms`. */
function sendThenDrop(boundary: string, chunks: string[], ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const req = http.request(`${stack.url}/v1/files`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${aliceKey}`,
        "content-type": `multipart/form-data; boundary=${boundary}`,
        "content-length": "100000",
      },
    });
    req.on("error", () => resolve());
    for (const c of chunks) req.write(c);
    setTimeout(() => {
      req.destroy();
      resolve();
    }, ms);
  });
}

/**
 * Temp files (partial writes, spare copies) are removed once the request they belong to is over. Removal
 * can lag behind the answer on a loaded machine (a write stalled by the disk's writeback), so this waits.
 */
async function expectNoTempFiles(): Promise<void> {
  const tmp = path.join(stack.dataDir, "blobs", "tmp");
  await expect.poll(async () => await readdir(tmp).catch(() => []), { timeout: 30_000 }).toEqual([]);
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("upload and download", () => {
  it("stores binary content exactly and gives it back with its metadata", async () => {
    const bytes = new Uint8Array(512);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i % 256;
    const up = await upload(aliceKey, bytes, "all-bytes.bin", { type: "application/octet-stream" });
    expect(up.status).toBe(201);
    expect(up.headers.get("location")).toBe(`/v1/files/${up.body.id}`);
    expect(up.body).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: "all-bytes.bin",
      size: 512,
      sha256: sha256(bytes),
      mimeType: "application/octet-stream",
      createdAt: expect.any(String),
    });
    expect(new Date(up.body.createdAt).toISOString()).toBe(up.body.createdAt);

    const meta = await api.get(`/v1/files/${up.body.id}`);
    expect(meta.status).toBe(200);
    expect(meta.body).toEqual(up.body);

    const got = await download(aliceKey, up.body.id);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(Buffer.from(bytes))).toBe(true);
    expect(got.headers.get("content-type")).toBe("application/octet-stream");
    expect(got.headers.get("content-length")).toBe("512");
    expect(got.headers.get("content-disposition")).toMatch(/^attachment; filename="?all-bytes\.bin"?$/);
    expect(got.headers.get("x-content-type-options")).toBe("nosniff");
    expect(got.headers.get("etag")).toBe(`"${sha256(bytes)}"`);
  });

  it("HEAD gives the headers without a body, and a matching If-None-Match gives 304", async () => {
    const up = await upload(aliceKey, "a,b\n1,2\n", "small.csv");
    expect(up.body.mimeType).toBe("text/csv");
    const head = await fetch(`${stack.url}/v1/files/${up.body.id}/content`, {
      method: "HEAD",
      headers: { authorization: `Bearer ${aliceKey}` },
    });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("8");
    expect(head.headers.get("content-type")).toBe("text/csv");
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    // fetch adds Cache-Control: no-cache to conditional requests, which rightly defeats If-None-Match.
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = http.get(
        `${stack.url}/v1/files/${up.body.id}/content`,
        { headers: { authorization: `Bearer ${aliceKey}`, "if-none-match": `"${up.body.sha256}"` } },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on("error", reject);
    });
    expect(status).toBe(304);
  });

  it("a non-ASCII name comes back in Content-Disposition (RFC 5987 filename*)", async () => {
    const name = "Übersicht März 数据.csv";
    const up = await upload(aliceKey, "x\n", name, { type: "text/csv" });
    expect(up.status).toBe(201);
    expect(up.body.name).toBe(name);
    const got = await download(aliceKey, up.body.id);
    const cd = got.headers.get("content-disposition") ?? "";
    expect(cd).toMatch(/^attachment; filename="[\x20-\x7e]*"; filename\*=UTF-8''/);
    const star = /filename\*=UTF-8''(.+)$/.exec(cd)?.[1] ?? "";
    expect(decodeURIComponent(star)).toBe(name);
  });

  it("sanitises a traversal name to its last part", async () => {
    const up = await upload(aliceKey, "root:x:0:0\n", "../../etc/passwd");
    expect(up.status).toBe(201);
    expect(up.body.name).toBe("passwd");
    // Raw parts, as browsers and other clients may send them: UTF-8 in filename="", RFC 5987 filename*.
    const raw = await rawUpload(`filename*=UTF-8''..%5C..%5Cevil%07name.txt`);
    expect(raw.status).toBe(201);
    expect(raw.body.name).toBe("evilname.txt");
    const utf8 = await rawUpload(`filename="r\u00e9sum\u00e9 \u2014 final.txt"`);
    expect(utf8.body.name).toBe("r\u00e9sum\u00e9 \u2014 final.txt");
  });

  it("picks the MIME type from the part when specific, else from the name", async () => {
    expect((await upload(aliceKey, "{}", "data.json", { type: "application/octet-stream" })).body.mimeType).toBe(
      "application/json",
    );
    expect((await upload(aliceKey, "x", "notes.weird", { type: "application/x-custom" })).body.mimeType).toBe(
      "application/x-custom",
    );
    expect((await upload(aliceKey, "x", "noext", { type: "" })).body.mimeType).toBe("application/octet-stream");
  });

  it("keeps only the first `file` part and ignores other fields", async () => {
    const up = await upload(aliceKey, "first", "one.txt", {
      extra: (f) => {
        f.append("purpose", "assistants");
        f.append("other", new Blob(["ignored"]), "other.txt");
      },
    });
    expect(up.status).toBe(201);
    expect(up.body.name).toBe("one.txt");
    expect((await download(aliceKey, up.body.id)).bytes.toString()).toBe("first");
  });

  it("a file exactly at the limit is stored", async () => {
    const up = await upload(aliceKey, new Uint8Array(MAX).fill(7), "max.bin");
    expect(up.status).toBe(201);
    expect(up.body.size).toBe(MAX);
  });
});

describe("refusals", () => {
  it("answers 413 over MAX_UPLOAD_BYTES and stores nothing", async () => {
    const before = await countFileRows();
    const up = await upload(aliceKey, new Uint8Array(MAX + 1).fill(1), "big.bin");
    expect(up.status).toBe(413);
    expect(up.body.error.code).toBe("payload_too_large");
    const big = await upload(aliceKey, new Uint8Array(MAX * 64).fill(2), "bigger.bin");
    expect(big.status).toBe(413);
    expect(await countFileRows()).toBe(before);
    // The connection is still usable afterwards.
    expect((await upload(aliceKey, "ok", "ok.txt")).status).toBe(201);
  });

  it("answers 400 without a `file` part, or when not multipart", async () => {
    const wrongField = await upload(aliceKey, "x", "x.txt", { field: "upload" });
    expect(wrongField.status).toBe(400);
    expect(wrongField.body.error.code).toBe("missing_file");

    const fieldsOnly = new FormData();
    fieldsOnly.append("file", "just text, no filename");
    const res = await fetch(`${stack.url}/v1/files`, {
      method: "POST",
      headers: { authorization: `Bearer ${aliceKey}` },
      body: fieldsOnly,
    });
    expect(res.status).toBe(400);

    const json = await api.post("/v1/files", { file: "x" });
    expect(json.status).toBe(400);
    expect(json.body.error.code).toBe("invalid_multipart");
  });

  it("an upload the client abandons midway leaves no temp file and no row", async () => {
    const before = await countFileRows();
    const boundary = "----abandoned";
    await sendThenDrop(
      boundary,
      [`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="half.bin"\r\n\r\n${"x".repeat(500)}`],
      200,
    );
    await expectNoTempFiles();
    expect(await countFileRows()).toBe(before);
  });

  it("a client that drops the connection after a whole file part leaves no temp file and no row", async () => {
    const before = await countFileRows();
    const boundary = "----dropped-after-file";
    await sendThenDrop(
      boundary,
      [
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="whole.txt"\r\n\r\nall of it\r\n`,
        `--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nmore`,
      ],
      300,
    );
    await expectNoTempFiles();
    expect(await countFileRows()).toBe(before);
  });

  it("answers 401 without a key", async () => {
    const form = new FormData();
    form.append("file", new Blob(["x"]), "x.txt");
    expect((await fetch(`${stack.url}/v1/files`, { method: "POST", body: form })).status).toBe(401);
  });
});

describe("deletion and ownership", () => {
  it("DELETE answers 204, then the file is gone", async () => {
    const up = await upload(aliceKey, "bye", "bye.txt");
    const blob = path.join(
      stack.dataDir,
      "blobs",
      up.body.sha256.slice(0, 2),
      up.body.sha256.slice(2, 4),
      up.body.sha256,
    );
    expect((await readdir(path.dirname(blob))).includes(up.body.sha256)).toBe(true);
    expect((await api.del(`/v1/files/${up.body.id}`)).status).toBe(204);
    // The last file with this content: its stored bytes go too.
    expect((await readdir(path.dirname(blob))).includes(up.body.sha256)).toBe(false);
    expect((await api.get(`/v1/files/${up.body.id}`)).status).toBe(404);
    expect((await download(aliceKey, up.body.id)).status).toBe(404);
    expect((await api.del(`/v1/files/${up.body.id}`)).status).toBe(404);
  });

  it("deleting one of two files with the same content keeps the other's bytes", async () => {
    const a = await upload(aliceKey, "shared content", "a.txt");
    const b = await upload(bobKey, "shared content", "b.txt");
    expect(a.body.sha256).toBe(b.body.sha256);
    expect((await api.del(`/v1/files/${a.body.id}`)).status).toBe(204);
    const got = await download(bobKey, b.body.id);
    expect(got.status).toBe(200);
    expect(got.bytes.toString()).toBe("shared content");
  });

  it("an upload racing the deletion of the same content keeps its bytes, and no spare copy is left", async () => {
    const content = `raced ${Date.now()}`;
    const a = await upload(aliceKey, content, "a.txt");
    const blob = path.join(stack.dataDir, "blobs", a.body.sha256.slice(0, 2), a.body.sha256.slice(2, 4), a.body.sha256);
    // Play the deleter of a.txt half-way: its lock taken, no live reference counted yet (b's row is not
    // there), the blob unlinked only after b's row is committed. Then b must still download.
    const deleter = new pg.Client({ connectionString: stack.databaseUrl });
    await deleter.connect();
    try {
      await deleter.query("BEGIN");
      await deleter.query("SELECT pg_advisory_xact_lock(('x' || substr($1::text, 1, 16))::bit(64)::bigint)", [
        a.body.sha256,
      ]);
      await deleter.query("UPDATE files SET deleted_at = now() WHERE id = $1", [a.body.id]);
      const b = upload(bobKey, content, "b.txt");
      await expect
        .poll(
          async () =>
            (await deleter.query("SELECT 1 FROM files WHERE sha256 = $1 AND deleted_at IS NULL", [a.body.sha256]))
              .rowCount,
          { timeout: 5000 },
        )
        .toBe(1);
      await unlink(blob);
      await deleter.query("COMMIT");
      const up = await b;
      expect(up.status).toBe(201);
      const got = await download(bobKey, up.body.id);
      expect(got.status).toBe(200);
      expect(got.bytes.toString()).toBe(content);
    } finally {
      await deleter.end();
    }
    await expectNoTempFiles();
  });

  it("another user's file answers 404 exactly like a missing one", async () => {
    const up = await upload(aliceKey, "private", "private.txt");
    const missing = "00000000-0000-4000-8000-000000000000";
    for (const p of [`/v1/files/${up.body.id}`, `/v1/files/${up.body.id}/content`]) {
      const theirs = await bob.get(p);
      const none = await bob.get(p.replace(up.body.id, missing));
      expect(theirs.status).toBe(404);
      expect(theirs.body).toEqual(none.body);
    }
    expect((await bob.del(`/v1/files/${up.body.id}`)).status).toBe(404);
    expect((await download(aliceKey, up.body.id)).bytes.toString()).toBe("private");
  });

  it("a non-uuid id answers 404", async () => {
    expect((await api.get("/v1/files/not-a-uuid")).status).toBe(404);
    expect((await api.get("/v1/files/not-a-uuid/content")).status).toBe(404);
    expect((await api.del("/v1/files/not-a-uuid")).status).toBe(404);
  });

  it("GET /v1/files?sha256=&name= finds the caller's own live uploads of that content, nobody else's", async () => {
    const bytes = `lookup,${Date.now()}\n`;
    const sha = createHash("sha256").update(bytes).digest("hex");
    const first = await upload(aliceKey, bytes, "look up.csv");
    const found = await api.get(`/v1/files?sha256=${sha}&name=${encodeURIComponent("look up.csv")}`);
    expect(found.status).toBe(200);
    expect(found.body.files.map((f: { id: string }) => f.id)).toEqual([first.body.id]);
    expect(found.body.files[0]).toMatchObject({ name: "look up.csv", sha256: sha, size: bytes.length });
    // The name is compared after the same sanitising as uploads: a path part does not matter.
    expect(
      (await api.get(`/v1/files?sha256=${sha}&name=${encodeURIComponent("dir/look up.csv")}`)).body.files,
    ).toHaveLength(1);
    expect((await api.get(`/v1/files?sha256=${sha}&name=other.csv`)).body.files).toEqual([]);
    expect((await bob.get(`/v1/files?sha256=${sha}`)).body.files).toEqual([]);
    expect((await api.get("/v1/files?sha256=XYZ")).status).toBe(400);
    expect((await api.get("/v1/files")).status).toBe(400);
    await api.del(`/v1/files/${first.body.id}`);
    expect((await api.get(`/v1/files?sha256=${sha}`)).body.files).toEqual([]);
  });

  it("the files routes are in /openapi.json", async () => {
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/v1/files",
        "/v1/files/{id}",
        "/v1/files/{id}/content",
        "/v1/messages/{messageId}/files",
        "/v1/chats/{chatId}/files",
        "/v1/messages/{messageId}/context",
      ]),
    );
    expect(doc.paths["/v1/files"]?.post).toBeDefined();
    expect(doc.paths["/v1/files/{id}"]?.delete).toBeDefined();
  });
});
