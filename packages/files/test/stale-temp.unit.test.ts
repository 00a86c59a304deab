import { access, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { createLogger } from "@codeinterp/logger";
import { createBlobStore } from "@codeinterp/workspace";
import { startStaleTempSweep } from "../src/index";

// What counts as stale (neither written nor linked for a day) is the blob store's rule, tested beside it
// (packages/workspace/test/blob-store.unit.test.ts). Here every temp file counts (`olderThanMs: 0`): what is
// tested is that the sweep runs at once and then on each round.
let dir: string;
let tmp: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "ci-stale-temp-"));
  tmp = path.join(dir, "blobs", "tmp");
  await mkdir(tmp, { recursive: true });
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const log = createLogger({ name: "test", level: "silent" });
const exists = (f: string) =>
  access(f).then(
    () => true,
    () => false,
  );
const tempFile = async (name: string) => {
  const f = path.join(tmp, name);
  await writeFile(f, "partial");
  return f;
};

it("sweeps at once when it starts, long before its first round", async () => {
  const left = await tempFile("spare-of-a-stopped-api");
  const sweep = startStaleTempSweep(createBlobStore(dir), log, { everyMs: 3600_000, olderThanMs: 0 });
  try {
    await expect.poll(() => exists(left), { timeout: 5_000 }).toBe(false);
  } finally {
    sweep.stop();
  }
});

it("sweeps again on each round", async () => {
  const sweep = startStaleTempSweep(createBlobStore(dir), log, { everyMs: 50, olderThanMs: 0 });
  try {
    const later = await tempFile("left-after-the-first-round");
    await expect.poll(() => exists(later), { timeout: 5_000 }).toBe(false);
  } finally {
    sweep.stop();
  }
});
