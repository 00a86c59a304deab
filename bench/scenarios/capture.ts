// Capture of 1 / 100 / 1,000 generated files through the worker, and the same steps timed outside it.
import { randomBytes } from "node:crypto";
import { mkdir, open, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import pMap from "p-map";
import { createBlobStore, diffSnapshots, snapshotWorkspace } from "@codeinterp/workspace";
import { createEventPublisher, createRedis, registerExecutionFilesForBench } from "../bench-deps";
import { sum } from "../context";
import type { Json } from "../context";
import { now, round, summarize } from "../stats";
import type { Bench } from "../context";

export async function capture(b: Bench): Promise<void> {
  const { ci, db, env, P, results, target, log, msg, metricsOf, root } = b;
  log("capture: 1 / 100 / 1,000 generated files");
  const cap: Json = {};
  for (const n of [1, 100, 1000]) {
    const e2e: number[] = [];
    const capMs: number[] = [];
    const runMs: number[] = [];
    let captured = 0;
    for (let rep = 0; rep < P.captureReps; rep++) {
      const code = `for i in range(${n}):\n    with open(f'/mnt/data/out_{i:04d}.txt', 'w') as f:\n        f.write('row %d ${randomBytes(4).toString("hex")}\\n' % i * 20)\n`;
      const r = await ci.run({ messageId: msg(`cap${n}`), code });
      if (r.exec.status !== "completed")
        throw new Error(`capture run ended ${r.exec.status}: ${JSON.stringify(r.exec.result)}`);
      const mm = (await metricsOf([r.exec.id])).get(r.exec.id)!;
      e2e.push(r.ms);
      capMs.push(Number(mm.captureMs));
      runMs.push(Number(mm.runMs));
      captured = Number(mm.filesCaptured);
    }
    cap[String(n)] = {
      files_captured: captured,
      captureMs: sum(summarize(capMs)),
      runMs: sum(summarize(runMs)),
      e2e_ms: sum(summarize(e2e)),
    };
  }
  // Where capture time goes, for 1,000 files: walk+diff, blob copy (each fsynced; one by one and 4 at a time),
  // fsync alone, registration (one INSERT per file vs one batched INSERT), one publish per file.
  const capDir = path.join(root, "capture-direct");
  const ws = path.join(capDir, "ws");
  await mkdir(ws, { recursive: true });
  const before = await snapshotWorkspace(ws);
  for (let i = 0; i < 1000; i++)
    await writeFile(path.join(ws, `out_${i}.txt`), `row ${i} ${randomBytes(8).toString("hex")}\n`.repeat(20));
  let a = now();
  const after = await snapshotWorkspace(ws, { previous: before });
  const diff = diffSnapshots(before, after);
  const snapMs = now() - a;
  const store = createBlobStore(path.join(capDir, "data"));
  a = now();
  for (const e of diff.created) await store.putFile(path.join(ws, e.path), { expect: { ino: e.ino } });
  const putMs = now() - a;
  // As the worker copies them now (apps/worker/src/capture.ts): 8 at a time, into an empty store (this
  // process has the default 4 libuv threads; the worker runs with UV_THREADPOOL_SIZE=16).
  const store8 = createBlobStore(path.join(capDir, "data8"));
  a = now();
  await pMap(diff.created, (e) => store8.putFile(path.join(ws, e.path), { expect: { ino: e.ino } }), {
    concurrency: 8,
  });
  const put8Ms = now() - a;
  a = now();
  for (let i = 0; i < 1000; i++) {
    const fh = await open(path.join(ws, `out_${i}.txt`), "r");
    await fh.sync();
    await fh.close();
  }
  const fsyncMs = now() - a;
  // one DB insert per file and one Redis publish per file, as the worker once did
  const anyExec = await db.execution.findFirst({
    select: { id: true, userId: true, chatId: true, messageId: true },
  });
  let registerMs = NaN;
  let registerBatchMs = NaN;
  let publishMs = NaN;
  if (anyExec) {
    a = now();
    for (const e of diff.created) {
      await registerExecutionFilesForBench(db, anyExec.id, [
        {
          userId: anyExec.userId,
          chatId: anyExec.chatId,
          messageId: anyExec.messageId,
          path: `direct/${e.path}`,
          name: e.path,
          size: e.size,
          sha256: "0".repeat(64),
          storageKey: "0".repeat(64),
          mimeType: "text/plain",
          source: "generated",
          derivedFromId: null,
        },
      ]);
    }
    registerMs = now() - a;
    // As the worker registers them now: one INSERT over unnest() arrays (+ one SELECT returning the rows).
    a = now();
    await registerExecutionFilesForBench(
      db,
      anyExec.id,
      diff.created.map((e) => ({
        userId: anyExec.userId,
        chatId: anyExec.chatId,
        messageId: anyExec.messageId,
        path: `batch/${e.path}`,
        name: e.path,
        size: e.size,
        sha256: "0".repeat(64),
        storageKey: "0".repeat(64),
        mimeType: "text/plain",
        source: "generated" as const,
        derivedFromId: null,
      })),
    );
    registerBatchMs = now() - a;
    const redis = createRedis(env.REDIS_URL!, { name: "bench" });
    const pub = createEventPublisher(redis, env.QUEUE_PREFIX!, `direct-${randomBytes(4).toString("hex")}`);
    a = now();
    for (const e of diff.created)
      await pub.publish({
        type: "file",
        file: { id: e.path, name: e.path, path: e.path, size: e.size, mimeType: "text/plain" },
      });
    publishMs = now() - a;
    redis.disconnect();
  }
  cap.direct_1000 = {
    snapshot_after_and_diff_ms: round(snapMs, 1),
    blob_putFile_x1000_sequential_ms: round(putMs, 1),
    blob_putFile_x1000_concurrency8_ms: round(put8Ms, 1),
    fsync_only_x1000_ms: round(fsyncMs, 1),
    db_registerExecutionFile_one_by_one_x1000_ms: round(registerMs, 1),
    db_registerExecutionFiles_batch_1000_ms: round(registerBatchMs, 1),
    redis_publish_x1000_ms: round(publishMs, 1),
  };
  await rm(capDir, { recursive: true, force: true });
  results.capture = cap;
  const c1000 = cap["1000"] as { captureMs: { p50: number }; files_captured: number };
  target(
    "1,000 generated files registered ≤ 2 s",
    "≤ 2000 ms",
    `${round(c1000.captureMs.p50, 0)} ms (${c1000.files_captured} files)`,
    c1000.captureMs.p50 <= 2000 && c1000.files_captured === 1000,
  );
}
