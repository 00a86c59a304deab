import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "@codeinterp/config";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

/**
 * Hostile input, property-based: filenames, ids in paths, JSON bodies and multipart bodies. The API must
 * answer 2xx for valid input and a 4xx JSON error `{ error: { code, message } }` otherwise: never a 5xx,
 * never a row for rejected input, never a stored name with `/` or NUL, never a file outside DATA_DIR.
 */

/** Every generated filename carries this marker, so any file that lands on disk can be found by name. */
const MARK = `zqmark${process.pid}`;

const SPECIAL_NAMES = [
  "..",
  ".",
  "../../../../etc/passwd",
  "..\\..\\windows\\win.ini",
  "/etc/shadow",
  "CON",
  "nul.txt",
  "COM1.tar.gz",
  "a\u0000b.txt",
  "\u202Etxt.exe",
  ".hidden",
  "x".repeat(300),
  "é".repeat(200),
  "🙂".repeat(80),
  "a/b/c.csv",
  " .. ",
  "\ud800lone.txt",
  "name\r\nContent-Type: text/html",
  "%2e%2e%2fx",
];

const filenameArb = fc.oneof(
  fc.constantFrom(...SPECIAL_NAMES),
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.string({ unit: "grapheme", maxLength: 120 }),
  fc
    .array(fc.constantFrom("..", ".", "/", "\\", "\u0000", "\n", "CON", "a", "é", "\u202e", " "), { maxLength: 30 })
    .map((a) => a.join("")),
);

const encoder = new TextEncoder();

function multipart(parts: Array<{ headers: string; body: Buffer }>, boundary: string): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts)
    chunks.push(Buffer.from(`--${boundary}\r\n${p.headers}\r\n\r\n`, "utf8"), p.body, Buffer.from("\r\n"));
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

/** A file part whose filename is sent raw (quoted, as browsers do) or as RFC 5987 `filename*`. */
function filePart(name: string, style: "raw" | "ext", content: Buffer): { headers: string; body: Buffer } {
  const disposition =
    style === "raw"
      ? `form-data; name="file"; filename="${name.replace(/"/g, "%22")}"`
      : `form-data; name="file"; filename*=UTF-8''${[...encoder.encode(name)].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("")}`;
  return { headers: `Content-Disposition: ${disposition}\r\nContent-Type: application/octet-stream`, body: content };
}

/** Files whose name contains MARK anywhere on this machine's writable places, outside DATA_DIR. */
function markedFilesOutside(dataDir: string): string[] {
  const roots = [path.dirname(dataDir), repoRoot, "/tmp", "/root", "/mnt", "/etc"];
  const found = new Set<string>();
  for (const r of roots) {
    try {
      const out = execFileSync(
        "find",
        [
          r,
          "-xdev",
          "-name",
          `*${MARK}*`,
          "-not",
          "-path",
          `${dataDir}/*`,
          "-not",
          "-path",
          `${repoRoot}/node_modules/*`,
        ],
        {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
        },
      );
      for (const l of out.split("\n")) if (l) found.add(l);
    } catch (err) {
      // find exits 1 when some directory could not be read; its stdout is still valid.
      const out = String((err as { stdout?: string }).stdout ?? "");
      for (const l of out.split("\n")) if (l) found.add(l);
    }
  }
  return [...found];
}

describe("hostile input", () => {
  let stack: TestStack;
  let key: string;
  let userId: string;
  let sql: pg.Client;
  const uploaded: string[] = [];

  beforeAll(async () => {
    stack = await startTestStack({ env: { MAX_UPLOAD_BYTES: String(64 * 1024), KERNEL_POOL_SIZE: "1" } });
    ({ key, userId } = await stack.newUser("hostile"));
    sql = new pg.Client({ connectionString: stack.databaseUrl });
    await sql.connect();
  });
  afterAll(async () => {
    await sql?.end();
    await stack?.close();
  });

  const post = (p: string, body: Buffer | string, contentType: string | null, auth = key) =>
    fetch(`${stack.url}${p}`, {
      method: "POST",
      headers: { authorization: `Bearer ${auth}`, ...(contentType ? { "content-type": contentType } : {}) },
      body,
      signal: AbortSignal.timeout(20_000),
    });

  async function expectErrorShape(res: Response): Promise<{ code: string }> {
    const text = await res.text();
    let body: { error?: { code?: unknown; message?: unknown } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new Error(`${res.status} is not JSON: ${text.slice(0, 200)}`);
    }
    expect(typeof body.error?.code, text).toBe("string");
    expect(typeof body.error?.message, text).toBe("string");
    return { code: String(body.error?.code) };
  }

  const rowCount = async (table: "executions" | "files") =>
    Number(
      (await sql.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE user_id = $1`, [userId])).rows[0]!.n,
    );

  it("filenames in uploads: stored names are one safe segment; bytes kept exactly", async () => {
    await fc.assert(
      fc.asyncProperty(
        filenameArb,
        fc.constantFrom("raw" as const, "ext" as const),
        fc.uint8Array({ maxLength: 64 }),
        async (raw, style, bytes) => {
          const name = `${raw}${MARK}`;
          const boundary = `b${Math.random().toString(16).slice(2)}`;
          const res = await post(
            "/v1/files",
            multipart([filePart(name, style, Buffer.from(bytes))], boundary),
            `multipart/form-data; boundary=${boundary}`,
          );
          expect(res.status, `name ${JSON.stringify(name)}`).toBeLessThan(500);
          if (res.status !== 201) {
            expect(res.status).toBeGreaterThanOrEqual(400);
            await expectErrorShape(res);
            return;
          }
          const file = (await res.json()) as { id: string; name: string; size: number };
          uploaded.push(file.id);
          expect(file.name).not.toMatch(/[/\\\u0000-\u001f\u007f]/);
          expect(file.name).not.toMatch(/^\.+$/);
          expect(file.name.startsWith(".")).toBe(false);
          expect(Buffer.byteLength(file.name, "utf8")).toBeLessThanOrEqual(255);
          expect(file.size).toBe(bytes.length);
          const content = await fetch(`${stack.url}/v1/files/${file.id}/content`, {
            headers: { authorization: `Bearer ${key}` },
          });
          expect(content.status).toBe(200);
          expect(Buffer.from(await content.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
          // The download header is well-formed for any name (it would throw in fetch otherwise).
          expect(content.headers.get("content-disposition")).toMatch(/^attachment;/);
        },
      ),
      { numRuns: 80 },
    );
    // Every name in the database is one segment without NUL.
    const bad = await sql.query(
      `SELECT id, name FROM files WHERE name ~ '[/\\\\]' OR position(chr(1) in name) > 0 OR name = '' OR name IN ('.', '..')`,
    );
    expect(bad.rows).toEqual([]);
  });

  it("hostile names attached to executions land inside the message's workspace only", async () => {
    expect(uploaded.length).toBeGreaterThan(0);
    const api = client(stack.url, key);
    const listing = "import os, json\nprint(json.dumps(sorted(os.listdir('/mnt/data'))))";
    const names: string[] = [];
    for (let i = 0; i < uploaded.length; i += 20) {
      const done = await api.run(
        { chatId: "hostile", messageId: `hostile-${i}`, fileIds: uploaded.slice(i, i + 20), code: listing },
        60_000,
      );
      expect(done.status).toBe("completed");
      names.push(...(JSON.parse(done.result.stdout) as string[]));
    }
    for (const n of names) {
      expect(n).not.toMatch(/[/\u0000]/);
      expect(Buffer.byteLength(n, "utf8")).toBeLessThanOrEqual(255);
    }
    expect(markedFilesOutside(stack.dataDir)).toEqual([]);
  });

  it("ids in paths: odd unicode, control characters, huge, bad escapes: 4xx JSON or a valid answer, never 5xx", async () => {
    const idArb = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 50 }),
      fc.string({ unit: "binary", maxLength: 50 }),
      fc.string({ maxLength: 5000, minLength: 201 }),
      fc.constantFrom(
        "%",
        "%E0%A4%A",
        "%00",
        "..",
        "../..",
        "%2e%2e",
        "%2F",
        "\u0000",
        "\u202e",
        "a".repeat(100_000),
        "null",
        "undefined",
        "[]",
        "{}",
      ),
    );
    const templates = [
      "/v1/files/:x",
      "/v1/files/:x/content",
      "/v1/executions/:x",
      "/v1/executions/:x/events",
      "/v1/messages/:x/files",
      "/v1/messages/:x/context",
      "/v1/chats/:x/files",
    ];
    const rawEncode = (s: string) => {
      if (/^%|^[.%A-Za-z0-9]+$/.test(s) && s.length < 20) return s; // keep hand-written escapes as they are
      return [...encoder.encode(s.replace(/[\ud800-\udfff]/g, "\ufffd"))]
        .map((b) => `%${b.toString(16).padStart(2, "0")}`)
        .join("");
    };
    await fc.assert(
      fc.asyncProperty(idArb, fc.constantFrom(...templates), async (id, template) => {
        const url = `${stack.url}${template.replace(":x", rawEncode(id))}`;
        const res = await fetch(url, {
          headers: { authorization: `Bearer ${key}` },
          signal: AbortSignal.timeout(10_000),
        }).catch((err: unknown) => ({ status: -1, err }) as const);
        if (!("headers" in res)) throw new Error(`request failed: ${String(res.err)}`);
        expect(res.status, `${template} with ${JSON.stringify(id.slice(0, 80))}`).toBeLessThan(500);
        if (res.status >= 400 && res.status !== 414 && res.status !== 431) await expectErrorShape(res);
        else await res.body?.cancel();
      }),
      { numRuns: 100 },
    );
  });

  it("JSON bodies: random values are 4xx JSON errors, never 5xx, never a row", async () => {
    const valid = (b: unknown) => {
      if (typeof b !== "object" || b === null || Array.isArray(b)) return false;
      const o = b as Record<string, unknown>;
      const idOk = (v: unknown) =>
        typeof v === "string" && v.length >= 1 && v.length <= 200 && !/[\u0000-\u001f\u007f]/.test(v);
      return idOk(o.chatId) && idOk(o.messageId) && typeof o.code === "string";
    };
    const bodyArb = fc.oneof(
      fc.jsonValue(),
      fc.anything(),
      fc.record(
        {
          chatId: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.string({ minLength: 201, maxLength: 300 })),
          messageId: fc.oneof(fc.string({ unit: "binary" }), fc.array(fc.string()), fc.constant({})),
          code: fc.oneof(fc.integer(), fc.constant(null), fc.object()),
          fileIds: fc.oneof(fc.array(fc.string()), fc.string(), fc.array(fc.uuid(), { minLength: 21, maxLength: 25 })),
          timeoutMs: fc.oneof(fc.double(), fc.integer(), fc.string(), fc.constant(-1)),
          __proto__: fc.object(),
          constructor: fc.object(),
        },
        { requiredKeys: [] },
      ),
    );
    const before = await rowCount("executions");
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(bodyArb, async (body) => {
        let text: string;
        try {
          text = JSON.stringify(body) ?? "null";
        } catch {
          text = String(body);
        }
        const res = await post("/v1/executions", text, "application/json");
        expect(res.status, text.slice(0, 200)).toBeLessThan(500);
        if (res.status === 202) {
          expect(valid(JSON.parse(text)), `accepted ${text.slice(0, 200)}`).toBe(true);
          accepted++;
          await res.body?.cancel();
          return;
        }
        expect(res.status).toBeGreaterThanOrEqual(400);
        await expectErrorShape(res);
      }),
      { numRuns: 100 },
    );
    // Raw text that is not JSON, wrong content types, and the admin route with random bodies.
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: "binary", maxLength: 200 }),
        fc.constantFrom("application/json", "text/plain", null, "application/json; charset=latin1"),
        async (s, ct) => {
          const res = await post("/v1/executions", s, ct);
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          await expectErrorShape(res);
        },
      ),
      { numRuns: 50 },
    );
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), async (body) => {
        const res = await post("/v1/admin/api-keys", JSON.stringify(body), "application/json", stack.adminToken);
        expect(res.status).toBeLessThan(500);
        if (res.status !== 201) await expectErrorShape(res);
        else await res.body?.cancel();
      }),
      { numRuns: 50 },
    );
    expect(await rowCount("executions")).toBe(before + accepted);
  });

  it("code with a NUL character is refused with 400 invalid_code, and nothing is created", async () => {
    const before = await rowCount("executions");
    for (const code of ["print(1)\0", "\0", "x = '\0'"]) {
      const res = await post(
        "/v1/executions",
        JSON.stringify({ chatId: "nul", messageId: "nul", code }),
        "application/json",
      );
      expect(res.status).toBe(400);
      expect((await expectErrorShape(res)).code).toBe("invalid_code");
    }
    expect(await rowCount("executions")).toBe(before);
  });

  it("multipart: huge, many parts, missing or wrong boundary, truncated: 4xx JSON, no row, no stray blob", async () => {
    const filesBefore = await rowCount("files");
    const blobsDir = path.join(stack.dataDir, "blobs");
    const countBlobs = (): number => {
      let n = 0;
      const walk = (d: string) => {
        for (const e of readdirSync(d, { withFileTypes: true })) {
          if (e.isDirectory()) walk(path.join(d, e.name));
          else n++;
        }
      };
      try {
        walk(blobsDir);
      } catch {
        // no blobs yet
      }
      return n;
    };
    const blobsBefore = countBlobs();
    const b = "boundary123";
    const cases: Array<{ label: string; body: Buffer; ct: string | null; want: number[] }> = [
      {
        label: "too large",
        body: multipart([filePart("big.bin", "raw", Buffer.alloc(200 * 1024, 1))], b),
        ct: `multipart/form-data; boundary=${b}`,
        want: [413],
      },
      {
        label: "no boundary",
        body: multipart([filePart("a.txt", "raw", Buffer.from("a"))], b),
        ct: "multipart/form-data",
        want: [400],
      },
      {
        label: "wrong boundary",
        body: multipart([filePart("a.txt", "raw", Buffer.from("a"))], b),
        ct: "multipart/form-data; boundary=other",
        want: [400],
      },
      {
        label: "truncated",
        body: multipart([filePart("a.txt", "raw", Buffer.from("abc"))], b).subarray(0, 60),
        ct: `multipart/form-data; boundary=${b}`,
        want: [400],
      },
      { label: "not multipart", body: Buffer.from("{}"), ct: "application/json", want: [400] },
      { label: "no content type", body: Buffer.from("hello"), ct: null, want: [400] },
      {
        label: "500 fields, no file",
        body: multipart(
          Array.from({ length: 500 }, (_, i) => ({
            headers: `Content-Disposition: form-data; name="f${i}"`,
            body: Buffer.from("v"),
          })),
          b,
        ),
        ct: `multipart/form-data; boundary=${b}`,
        want: [400],
      },
      {
        label: "file part named otherwise",
        body: multipart(
          [
            {
              ...filePart("a.txt", "raw", Buffer.from("a")),
              headers: 'Content-Disposition: form-data; name="nope"; filename="a.txt"',
            },
          ],
          b,
        ),
        ct: `multipart/form-data; boundary=${b}`,
        want: [400],
      },
      { label: "empty body", body: Buffer.alloc(0), ct: `multipart/form-data; boundary=${b}`, want: [400] },
      {
        label: "header injection in part",
        body: multipart(
          [
            {
              headers: `Content-Disposition: form-data; name="file"; filename="a.txt"\r\n${"X-Junk: y\r\n".repeat(200)}`,
              body: Buffer.from("a"),
            },
          ],
          b,
        ),
        ct: `multipart/form-data; boundary=${b}`,
        want: [400, 201],
      },
    ];
    const seen: string[] = [];
    let created = 0;
    for (const c of cases) {
      const res = await post("/v1/files", c.body, c.ct);
      seen.push(`${c.label} → ${res.status}`);
      expect(c.want, `${c.label}: ${res.status}`).toContain(res.status);
      if (res.status === 201) {
        created++;
        await res.body?.cancel();
      } else await expectErrorShape(res);
    }
    // Many file parts: only the first `file` part is stored; the rest are read and dropped.
    const many = multipart(
      Array.from({ length: 300 }, (_, i) => filePart(`part-${i}.txt`, "raw", Buffer.from(`p${i}`))),
      b,
    );
    const res = await post("/v1/files", many, `multipart/form-data; boundary=${b}`);
    seen.push(`300 file parts → ${res.status}`);
    expect([201, 400, 413]).toContain(res.status);
    if (res.status === 201) {
      created++;
      expect(((await res.json()) as { name: string }).name).toBe("part-0.txt");
    } else await expectErrorShape(res);
    console.log(`[hostile] multipart: ${seen.join("; ")}`);
    expect(await rowCount("files")).toBe(filesBefore + created);
    expect(countBlobs()).toBeLessThanOrEqual(blobsBefore + created);
  });
});
