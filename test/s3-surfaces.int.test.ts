import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import path from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { KernelManager, ServerConnection } from "@jupyterlab/services";
import type { Kernel } from "@jupyterlab/services";
// LibreChat's own client for its Code Interpreter API (the `execute_code` tool).
import { createCodeExecutionTool } from "@librechat/agents";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { libreChatDownload, libreChatUpload, toolCall } from "./helpers/librechat";
import type { CodeEnvFile } from "./helpers/librechat";
import { startS3Server } from "./helpers/s3-server";
import type { S3Server } from "./helpers/s3-server";
import { client, startTestStack, uploadFile } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// The other one-box acceptance surfaces (LibreChat, Jupyter, signed links) with blobs in a real S3 server;
// test/s3-flows.int.test.ts has uploads, attachments and generated files. One Swift start for the file.
// BLOB_CACHE_MB=1: a blob over 1 MB empties a process's local cache, so a later read must come from the bucket.
let s3: S3Server;
let bucket: S3Client;
let stack: TestStack;
let key: string;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  s3 = await startS3Server();
  bucket = s3.client();
  stack = await startTestStack({ s3, env: { BLOB_CACHE_MB: "1", KERNEL_POOL_SIZE: "1" } });
  key = (await stack.newUser("s3-surfaces")).key;
  api = client(stack.url, key);
});
afterAll(async () => {
  await stack?.close();
  bucket?.destroy();
  await s3?.stop();
});

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

async function objectsInBucket(): Promise<string[]> {
  const prefix = new URL(stack.env.BLOB_STORE_URL!).pathname.slice(1);
  const listed = await bucket.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/` }));
  return (listed.Contents ?? []).map((o) => path.basename(o.Key ?? ""));
}

/** The blob keys a process's local cache holds now (DATA_DIR/blob-cache/<role>, keys as file names). */
async function cached(role: "api" | "worker"): Promise<string[]> {
  const names = await readdir(path.join(stack.dataDir, "blob-cache", role), { recursive: true }).catch(() => []);
  return names.map((n) => path.basename(n));
}

/** The bucket is the store: the blob is there, and nothing went to the local blob directory. */
async function expectInBucketOnly(...contents: Array<Buffer | string>) {
  expect(await objectsInBucket()).toEqual(expect.arrayContaining(contents.map(sha)));
  expect(await readdir(path.join(stack.dataDir, "blobs")).catch(() => [])).toEqual([]);
}

async function upload(bytes: Buffer, name: string): Promise<string> {
  const res = await uploadFile(stack.url, key, bytes, name, { type: "text/csv" });
  expect(res.status).toBe(201);
  return (res.body as { id: string }).id;
}

/** Opens a URL as a browser given the link would: no Authorization header. */
async function open(url: string) {
  const res = await fetch(url);
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

/** Uploads a blob bigger than the 1 MB cache bound: every older entry of the API's cache is evicted. */
async function flushApiCache() {
  await upload(randomBytes(1536 * 1024), "filler.bin");
}

describe("LibreChat with blobs in S3", () => {
  it("a file uploaded as LibreChat uploads it is read at /mnt/data; the file the code wrote downloads byte-exact", async () => {
    const base = `${stack.url}/librechat/v1`;
    const auth = { Authorization: `Bearer ${key}` };
    const csv = "region,amount\nnorth,10\nsouth,32\n";
    const up = await libreChatUpload(base, { userId: "alice", auth, files: [{ name: "sales.csv", bytes: csv }] });
    expect(up.status).toBe(200);
    const ref = {
      id: up.body.files[0].fileId,
      resource_id: up.body.files[0].fileId,
      name: "sales.csv",
      storage_session_id: up.body.storage_session_id,
      kind: "user",
    };
    const tool = createCodeExecutionTool({ baseUrl: base, user_id: "alice", authHeaders: auth, files: [ref] });
    const code = [
      "import pandas as pd",
      "df = pd.read_csv('/mnt/data/sales.csv')",
      "df['double'] = df.amount * 2",
      "df.to_csv('/mnt/data/doubled.csv', index=False)",
      "print('total', df['amount'].sum())",
    ].join("\n");
    const msg = (await tool.invoke(toolCall({ lang: "py", code }))) as unknown as {
      content: string;
      artifact: { session_id: string; files?: CodeEnvFile[] };
    };
    expect(msg.content).toContain("total 42");
    const out = (msg.artifact.files ?? []).find((f) => f.name === "doubled.csv");
    expect(out).toBeDefined();
    const got = await libreChatDownload(
      base,
      out!.storage_session_id ?? msg.artifact.session_id,
      out!.id,
      "?kind=user&id=alice",
      auth,
    );
    expect(got.status).toBe(200);
    const expected = "region,amount,double\nnorth,10,20\nsouth,32,64\n";
    expect(got.bytes.toString()).toBe(expected);
    await expectInBucketOnly(csv, expected);
  });
});

describe("the Jupyter surface with blobs in S3", () => {
  let manager: KernelManager;
  afterAll(() => manager?.dispose());

  it("a file the code wrote is reported with a signed link that downloads its bytes without a key", async () => {
    const base = `${stack.url}/jupyter/`;
    const serverSettings = ServerConnection.makeSettings({
      baseUrl: base,
      wsUrl: base.replace(/^http/, "ws"),
      token: key,
      appendToken: true,
    });
    manager = new KernelManager({ serverSettings });
    await manager.ready;
    const kernel: Kernel.IKernelConnection = await manager.startNew({ name: "python3" });
    const content = `a,b\n1,${randomBytes(8).toString("hex")}\n`;
    let printed = "";
    const future = kernel.requestExecute({
      code: `open('/mnt/data/report.csv', 'w').write(${JSON.stringify(content)})`,
    });
    future.onIOPub = (m) => {
      if (m.header.msg_type === "stream") printed += (m.content as { text: string }).text;
    };
    expect((await future.done).content.status).toBe("ok");
    const link = /report\.csv: (http\S+)/.exec(printed)?.[1];
    expect(link).toMatch(/\/links\/[0-9a-f-]+\?expires=\d+&signature=/);
    const got = await open(link!);
    expect(got.status).toBe(200);
    expect(got.bytes.toString()).toBe(content);
    await expectInBucketOnly(content);
    await kernel.shutdown();
  });
});

describe("signed links with blobs in S3", () => {
  it("links to an uploaded and a generated file download the right bytes without a key, also once evicted from the API's cache", async () => {
    const csv = Buffer.from(`id,name\n1,${randomBytes(300).toString("base64")}\n`);
    const uploaded = await upload(csv, "upload.csv");
    const messageId = `s3-links-${randomBytes(4).toString("hex")}`;
    const done = await api.run({
      messageId,
      fileIds: [uploaded],
      code: "open('/mnt/data/made.txt', 'w').write(open('/mnt/data/upload.csv').read().upper())",
    });
    expect(done.status).toBe("completed");
    const generated = (done.files as Array<{ id: string; name: string }>).find((f) => f.name === "made.txt");
    expect(generated).toBeDefined();
    const made = csv.toString().toUpperCase();

    const links: Array<{ url: string; bytes: Buffer | string }> = [];
    for (const [id, bytes] of [
      [uploaded, csv],
      [generated!.id, made],
    ] as const) {
      const res = await api.post(`/v1/files/${id}/links`, { expiresIn: 600 });
      expect(res.status).toBe(201);
      links.push({ url: res.body.url as string, bytes });
    }
    for (const l of links) expect((await open(l.url)).bytes.toString()).toBe(l.bytes.toString());
    // The upload went through the API's cache; the worker's file never did (the API streamed it from the
    // bucket). Empty the cache: from here on both links' bytes can only come from the bucket.
    expect(await cached("api")).toContain(sha(csv));
    expect(await cached("api")).not.toContain(sha(made));
    await flushApiCache();
    expect(await cached("api")).not.toContain(sha(csv));
    expect(await cached("api")).not.toContain(sha(made));
    for (const l of links) {
      const got = await open(l.url);
      expect(got.status).toBe(200);
      expect(got.bytes.toString()).toBe(l.bytes.toString());
    }
    await expectInBucketOnly(csv, made);
  });
});
