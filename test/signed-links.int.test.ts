import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { client, startTestStack, uploadFile } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Signed links: made with the API key, opened without one. The stack runs without SIGNED_LINK_SECRET, as
// `npm start` does, so the secret it signs with is the one it generated in DATA_DIR.
let stack: TestStack;
let alice: ReturnType<typeof client>;
let bob: ReturnType<typeof client>;
const CSV = Buffer.from(`id,name\n1,${randomBytes(300).toString("base64")}\n`);

async function upload(key: string, bytes: Buffer, name: string): Promise<string> {
  const res = await uploadFile(stack.url, key, bytes, name, { type: "text/csv" });
  expect(res.status).toBe(201);
  return (res.body as { id: string }).id;
}

function parseJson(bytes: Buffer): { error?: { code: string; message: string } } | null {
  try {
    return JSON.parse(bytes.toString("utf8")) as { error?: { code: string; message: string } };
  } catch {
    return null; // not JSON: the file
  }
}

/** Fetches a URL the way a browser given the link would: no Authorization header. */
async function open(url: string, init: RequestInit = {}) {
  const res = await fetch(url, init);
  const bytes = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, bytes, json: parseJson(bytes) };
}

let aliceKey = "";
let bobKey = "";
beforeAll(async () => {
  stack = await startTestStack({ env: { SIGNED_LINK_MAX_TTL_S: "3600" } });
  aliceKey = (await stack.newUser("alice-links")).key;
  alice = client(stack.url, aliceKey);
  bobKey = (await stack.newUser("bob-links")).key;
  bob = client(stack.url, bobKey);
});
afterAll(async () => {
  await stack?.close();
});

describe("signed download links", () => {
  it("a valid link downloads the exact bytes with the file's name and type, without an API key", async () => {
    expect(existsSync(path.join(stack.dataDir, "signing-secret"))).toBe(true);
    const id = await upload(aliceKey, CSV, "sales report.csv");
    const made = await alice.post(`/v1/files/${id}/links`, { expiresIn: 600 });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ fileId: id, name: "sales report.csv" });
    expect(made.body.url).toMatch(new RegExp(`^${stack.url}/links/${id}\\?expires=\\d+&signature=[\\w-]{43}$`));
    const ttl = Date.parse(made.body.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);

    const got = await open(made.body.url);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(CSV)).toBe(true);
    expect(got.headers.get("content-type")).toContain("text/csv");
    expect(got.headers.get("content-disposition")).toContain('filename="sales report.csv"');
    const head = await fetch(made.body.url, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(CSV.length));

    // No body: the server's default lifetime. Over the configured maximum: a clear 400, no link.
    const dflt = await alice.post(`/v1/files/${id}/links`);
    expect(dflt.status).toBe(201);
    expect(Date.parse(dflt.body.expiresAt) - Date.now()).toBeGreaterThan(3_500_000);
    const tooLong = await alice.post(`/v1/files/${id}/links`, { expiresIn: 3601 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.code).toBe("validation_error");
  });

  it("an expired link answers 403 link_expired", async () => {
    const id = await upload(aliceKey, CSV, "a.csv");
    const made = await alice.post(`/v1/files/${id}/links`, { expiresIn: 1 });
    expect(made.status).toBe(201);
    // Expiry has one-second resolution: wait until the server says so (at most ~2 s).
    await expect.poll(async () => (await open(made.body.url)).status, { timeout: 5000, interval: 200 }).toBe(403);
    const got = await open(made.body.url);
    expect(got.json?.error?.code).toBe("link_expired");
    expect(got.bytes.includes(CSV.subarray(0, 20))).toBe(false);
  });

  it("a tampered link (signature, expiry, or file id changed) answers 403 invalid_signature", async () => {
    const id = await upload(aliceKey, CSV, "t.csv");
    const other = await upload(aliceKey, Buffer.from("secret,2\n"), "other.csv");
    const { url } = (await alice.post(`/v1/files/${id}/links`, { expiresIn: 60 })).body as { url: string };
    const u = new URL(url);
    const sig = u.searchParams.get("signature")!;
    const variants = [
      url.replace(sig, sig.slice(0, -1) + (sig.endsWith("A") ? "B" : "A")),
      url.replace(/expires=(\d+)/, (_m, e: string) => `expires=${Number(e) + 86_400}`),
      url.replace(id, other),
      url.replace(/&signature=[^&]+/, ""),
      `${stack.url}/links/${id}`,
    ];
    for (const v of variants) {
      const got = await open(v);
      expect({ v, status: got.status }).toEqual({ v, status: 403 });
      expect(got.json?.error?.code).toBe("invalid_signature");
      expect(got.bytes.toString()).not.toContain("secret,2");
    }
    // A path that is not a file id at all: 404 JSON.
    const junk = await open(`${stack.url}/links/not-a-uuid?expires=1&signature=x`);
    expect(junk.status).toBe(404);
    expect(junk.json?.error?.code).toBe("not_found");
  });

  it("another user's file: no link can be made for it (404 as for a missing one), nor reached from one's own", async () => {
    const id = await upload(aliceKey, CSV, "mine.csv");
    const theirs = await bob.post(`/v1/files/${id}/links`, {});
    const missing = await bob.post(`/v1/files/00000000-0000-4000-8000-000000000000/links`, {});
    expect(theirs.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(theirs.body.error.code).toBe(missing.body.error.code);
    const nokey = await fetch(`${stack.url}/v1/files/${id}/links`, { method: "POST" });
    expect(nokey.status).toBe(401);

    // Bob's valid link to his own file, pointed at Alice's file: refused, none of her bytes.
    const own = await upload(bobKey, Buffer.from("bob,1\n"), "bob.csv");
    const { url } = (await bob.post(`/v1/files/${own}/links`, {})).body as { url: string };
    expect((await open(url)).bytes.toString()).toBe("bob,1\n");
    const swapped = await open(url.replace(own, id));
    expect(swapped.status).toBe(403);
    expect(swapped.json?.error?.code).toBe("invalid_signature");
    expect(swapped.bytes.includes(CSV.subarray(0, 20))).toBe(false);
  });

  it("deleting a file ends its links: 404", async () => {
    const id = await upload(aliceKey, CSV, "gone.csv");
    const { url } = (await alice.post(`/v1/files/${id}/links`, {})).body as { url: string };
    expect((await open(url)).status).toBe(200);
    expect((await alice.del(`/v1/files/${id}`)).status).toBe(204);
    const got = await open(url);
    expect(got.status).toBe(404);
    expect(got.json?.error?.code).toBe("not_found");
  });
});

describe("rewriting /mnt/data links in model text", () => {
  it("turns sandbox: and /mnt/data link targets into the message's signed links that download the files", async () => {
    const input = await upload(aliceKey, CSV, "data.csv");
    const messageId = `msg-${randomBytes(4).toString("hex")}`;
    const done = await alice.run({
      chatId: "chat-links",
      messageId,
      fileIds: [input],
      code: "import os\nos.makedirs('/mnt/data/out', exist_ok=True)\nopen('/mnt/data/out/my report.txt','w').write('report body')\nprint('ok')",
    });
    expect(done.status).toBe("completed");
    const text = [
      "Here is [the report](sandbox:/mnt/data/out/my%20report.txt) and ![input](/mnt/data/data.csv).",
      "I saved it to `/mnt/data/out/my report.txt`; [missing](sandbox:/mnt/data/nope.txt).",
    ].join("\n");
    const res = await alice.post(`/v1/messages/${messageId}/links`, { text, expiresIn: 120 });
    expect(res.status).toBe(200);
    const links = res.body.links as Array<{ path: string; url: string; fileId: string; name: string }>;
    expect(links.map((l) => l.path).sort()).toEqual(["data.csv", "out/my report.txt"]);
    const report = links.find((l) => l.path === "out/my report.txt")!;
    const data = links.find((l) => l.path === "data.csv")!;
    expect(res.body.text).toBe(
      [
        `Here is [the report](${report.url}) and ![input](${data.url}).`,
        "I saved it to `/mnt/data/out/my report.txt`; [missing](sandbox:/mnt/data/nope.txt).",
      ].join("\n"),
    );
    expect((await open(report.url)).bytes.toString()).toBe("report body");
    expect((await open(data.url)).bytes.equals(CSV)).toBe(true);

    // Someone else's message has no files for them: the text comes back unchanged, no links.
    const theirs = await bob.post(`/v1/messages/${messageId}/links`, { text });
    expect(theirs.status).toBe(200);
    expect(theirs.body).toEqual({ messageId, text, links: [] });
    expect((await alice.post(`/v1/messages/${messageId}/links`, {})).status).toBe(400);
  });
});
