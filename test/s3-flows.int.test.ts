import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createDb } from "@codeinterp/db";
import type { Db } from "@codeinterp/db";
import { waitFor } from "./faults/harness";
import { startS3Server } from "./helpers/s3-server";
import type { S3Server } from "./helpers/s3-server";
import { client, startTestStack, uploadFile } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// The one-box acceptance flows with blobs in a real S3 server (Swift with s3api) instead of DATA_DIR/blobs.
let s3: S3Server;
let bucket: S3Client;
let stack: TestStack;
let key: string;
let api: ReturnType<typeof client>;
let db: Db;

beforeAll(async () => {
  s3 = await startS3Server();
  console.log(`swift s3 server ready in ${s3.startMs} ms`);
  bucket = s3.client();
  stack = await startTestStack({ s3 });
  key = (await stack.newUser("s3-user")).key;
  api = client(stack.url, key);
  db = createDb({ url: stack.databaseUrl });
});
afterAll(async () => {
  await db?.$disconnect();
  await stack?.close();
  bucket?.destroy();
  await s3?.stop();
});

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

const upload = (bytes: Buffer, name: string) => uploadFile(stack.url, key, bytes, name);

async function download(id: string): Promise<Buffer> {
  const res = await fetch(`${stack.url}/v1/files/${id}/content`, { headers: { authorization: `Bearer ${key}` } });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

async function objectsInBucket(): Promise<string[]> {
  const prefix = new URL(stack.env.BLOB_STORE_URL!).pathname.slice(1);
  const listed = await bucket.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/` }));
  return (listed.Contents ?? []).map((o) => path.basename(o.Key ?? ""));
}

describe("blobs in S3", () => {
  it("an upload is read by code at /mnt/data, its new file is captured, and both download with their bytes", async () => {
    const csv = Buffer.from("x,y\n1,2\n3,4\n");
    const up = await upload(csv, "data.csv");
    expect(up.status).toBe(201);
    expect(await objectsInBucket()).toContain(sha(csv));

    const done = await api.run({
      messageId: `s3-msg-${Date.now()}`,
      fileIds: [up.body.id],
      code: [
        "import pandas as pd",
        "df = pd.read_csv('/mnt/data/data.csv')",
        "df['z'] = df.x + df.y",
        "df.to_csv('/mnt/data/out.csv', index=False)",
        "print(int(df.z.sum()))",
      ].join("\n"),
    });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toBe("10\n");
    const out = (done.files as Array<{ id: string; name: string }>).find((f) => f.name === "out.csv");
    expect(out).toBeDefined();

    const expected = "x,y,z\n1,2,3\n3,4,7\n";
    expect((await download(out!.id)).toString()).toBe(expected);
    expect((await download(up.body.id)).equals(csv)).toBe(true);
    expect(await objectsInBucket()).toEqual(expect.arrayContaining([sha(csv), sha(expected)]));
    // Nothing went to the local blob directory: the bucket is the store, DATA_DIR holds only caches.
    expect(await readdir(path.join(stack.dataDir, "blobs")).catch(() => [])).toEqual([]);
  });

  it("with S3 down an upload gets 503 blob_store_unavailable and registers nothing; back up, it works", async () => {
    const rowsBefore = await db.file.count();
    const bytes = Buffer.from(`while the bucket is away ${Date.now()}`);
    await s3.stopProxy();
    try {
      const down = await upload(bytes, "away.txt");
      expect(down.status).toBe(503);
      expect(down.body.error.code).toBe("blob_store_unavailable");
    } finally {
      await s3.startProxy();
    }
    expect(await db.file.count()).toBe(rowsBefore);
    expect(await objectsInBucket()).not.toContain(sha(bytes));

    const up = await upload(bytes, "away.txt");
    expect(up.status).toBe(201);
    expect((await download(up.body.id)).equals(bytes)).toBe(true);
  });

  it("code that writes a file while S3 is down: capture is retried, and the file is registered once when it is back", async () => {
    const messageId = `s3-away-${Date.now()}`;
    const content = `written while away ${Date.now()}`;
    const log = path.join(inject("testRoot"), "logs", `stack-${stack.queuePrefix.replace(/^citest-/, "")}.log`);
    await s3.stopProxy();
    let id: string;
    try {
      const created = await api.post("/v1/executions", {
        chatId: "chat-1",
        messageId,
        code: `open('/mnt/data/away.txt', 'w').write(${JSON.stringify(content)})`,
      });
      expect(created.status).toBe(202);
      id = created.body.id as string;
      // The code has run and storing its file failed at least once (the worker says so as it retries).
      await waitFor(
        async () => (await readFile(log, "utf8")).includes("recording the outcome failed; retrying"),
        60_000,
        "a capture retried while S3 is down",
      );
    } finally {
      await s3.startProxy();
    }
    await api.waitForStatus(id, "completed", 60_000);
    const done = (await api.get(`/v1/executions/${id}`)).body;
    const files = (done.files as Array<{ id: string; name: string }>).filter((f) => f.name === "away.txt");
    expect(files).toHaveLength(1);
    expect((await download(files[0]!.id)).toString()).toBe(content);
    expect(await db.file.count({ where: { messageId, name: "away.txt", deletedAt: null } })).toBe(1);
  });
});
