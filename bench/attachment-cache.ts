// `npx tsx bench/attachment-cache.ts`: what a cell's local blob cache saves when a new message brings an
// attachment. The worker's own steps (`blobs.withLocal` around `prepareWorkspace`, as
// apps/worker/src/jobs/execution/prepare-workspace.ts does) place a 20 MB attachment into a fresh workspace,
// cold (cache emptied: GET from a real Swift S3 server, verified into the cache) and warm (a cache hit).
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { createBlobCache, createS3BlobStore } from "@codeinterp/files";
import { prepareWorkspace } from "@codeinterp/workspace";
import { startS3Server } from "../test/helpers/s3-server";
import { now, percentile, round } from "./stats";

const MB = 20;
const RUNS = 7;

const s3 = await startS3Server();
const root = await mkdtemp(path.join(os.tmpdir(), "attachment-cache-"));
const client = s3.client();
try {
  const cache = createBlobCache({ dir: path.join(root, "cache"), maxBytes: 1024 * 1024 * 1024 });
  const blobs = createS3BlobStore({ client, bucket: s3.bucket, prefix: "bench/", cache });
  const put = await blobs.put(Readable.from([randomBytes(MB * 1024 * 1024)]));

  async function prepareNewMessage(i: number, cold: boolean): Promise<number> {
    if (cold) await cache.forget(put.key);
    const dir = path.join(root, `ws-${cold ? "cold" : "warm"}-${i}`);
    const t0 = now();
    await blobs.withLocal([put.key], (pathOf) =>
      prepareWorkspace({
        dir,
        mode: "auto",
        attachments: [{ fileId: "f1", name: "data.bin", sha256: put.sha256, blobPath: pathOf(put.key) }],
      }),
    );
    const ms = now() - t0;
    await rm(dir, { recursive: true, force: true });
    return ms;
  }

  const cold: number[] = [];
  const warm: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    cold.push(await prepareNewMessage(i, true));
    warm.push(await prepareNewMessage(i, false));
  }
  console.log(`${MB} MB attachment, new message's workspace prepared, ${RUNS} runs each`);
  console.log(
    `cold (GET from Swift): p50 ${round(percentile(cold, 50))} ms  [${cold.map((x) => round(x)).join(", ")}]`,
  );
  console.log(
    `warm (cache hit):      p50 ${round(percentile(warm, 50))} ms  [${warm.map((x) => round(x)).join(", ")}]`,
  );
  console.log(`cache ${JSON.stringify(cache.stats())}`);
} finally {
  client.destroy();
  await s3.stop();
  await rm(root, { recursive: true, force: true });
}
