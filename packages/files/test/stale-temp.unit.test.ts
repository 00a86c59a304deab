import { access, mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { createLogger } from "@codeinterp/logger";
import { createBlobStore } from "@codeinterp/workspace";
import { startStaleTempSweep } from "../src/index";

let dir: string;
let tmp: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "ci-stale-temp-"));
  tmp = path.join(dir, "blobs", "tmp");
  await mkdir(tmp, { recursive: true });
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const exists = (f: string) =>
  access(f).then(
    () => true,
    () => false,
  );
/** A temp file last written two days ago: what a process stopped mid-put leaves. */
async function leftBehind(name: string): Promise<string> {
  const f = path.join(tmp, name);
  await writeFile(f, "partial");
  const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
  await utimes(f, twoDaysAgo, twoDaysAgo);
  return f;
}

it("removes temp files left behind at once and on each later round, and keeps one being written", async () => {
  const first = await leftBehind("spare-of-a-stopped-api");
  const writing = path.join(tmp, "upload-under-way");
  await writeFile(writing, "bytes so far");
  const sweep = startStaleTempSweep(createBlobStore(dir), createLogger({ name: "test", level: "silent" }), {
    everyMs: 50,
  });
  try {
    await expect.poll(() => exists(first), { timeout: 5_000 }).toBe(false);
    const later = await leftBehind("left-after-the-first-round");
    await expect.poll(() => exists(later), { timeout: 5_000 }).toBe(false);
    expect(await exists(writing)).toBe(true);
  } finally {
    sweep.stop();
  }
});
