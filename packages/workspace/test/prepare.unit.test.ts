import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  lastUsedMarkerFor,
  createBlobStore,
  prepareWorkspace,
  removeIdleWorkspaces,
  touchWorkspace,
  workspaceDirFor,
} from "../src/index";
import type { Attachment, LocalBlobStore } from "../src/index";

let dataDir: string;
let store: LocalBlobStore;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "ws-prep-"));
  store = createBlobStore(dataDir);
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function blob(fileId: string, name: string, content: string): Promise<Attachment & { blobPath: string }> {
  const r = await store.put(Readable.from([Buffer.from(content)]));
  return { fileId, name, blobPath: store.pathOf(r.key), sha256: r.sha256 };
}
const sha = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");
const visible = async (dir: string): Promise<string[]> => (await readdir(dir)).filter((n) => !n.startsWith(".")).sort();

describe("prepareWorkspace", () => {
  it("places attachments under unique sanitised names with the right bytes", async () => {
    const dir = workspaceDirFor(dataDir, "alice", "m1");
    const a = await blob("f1", "data.csv", "a,b\n1,2\n");
    const b = await blob("f2", "../data.csv", "x,y\n3,4\n");
    const c = await blob("f3", "DATA.csv", "z\n");
    const r = await prepareWorkspace({ dir, attachments: [a, b, a, c], mode: "auto" });
    expect(r.placed.map((p) => [p.fileId, p.name, p.existing])).toEqual([
      ["f1", "data.csv", false],
      ["f2", "data (2).csv", false],
      ["f3", "DATA (3).csv", false],
    ]);
    expect(r.placed[0]!.path).toBe(path.join(dir, "data.csv"));
    expect(r).toMatchObject({ missing: [], conflicts: [], reused: 0 });
    expect(await readFile(path.join(dir, "data.csv"), "utf8")).toBe("a,b\n1,2\n");
    expect(await readFile(path.join(dir, "data (2).csv"), "utf8")).toBe("x,y\n3,4\n");
    expect(await visible(dir)).toEqual(["DATA (3).csv", "data (2).csv", "data.csv"]);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    // workspace copies are their own inodes and writable; blobs are read-only
    const placed = await stat(path.join(dir, "data.csv"));
    expect(placed.ino).not.toBe((await stat(a.blobPath)).ino);
    // ...and the result names that inode, so a snapshot can trust the blob's hash for it
    expect(r.placed[0]!.ino).toBe(placed.ino);
    expect(r.knownHashes.get("data.csv")).toEqual({ ino: placed.ino, sha256: a.sha256 });
    expect(placed.mode & 0o777).toBe(0o600);
    expect((await stat(a.blobPath)).mode & 0o777).toBe(0o444);
    expect((await readdir(dir)).filter((n) => n.endsWith(".part"))).toEqual([]);
  });

  it("is idempotent and never overwrites a copy the code changed; the blob stays intact", async () => {
    const dir = workspaceDirFor(dataDir, "alice", "m2");
    const a = await blob("f1", "data.csv", "original");
    await prepareWorkspace({ dir, attachments: [a], mode: "copy" });
    await writeFile(path.join(dir, "data.csv"), "changed by code");

    const again = await prepareWorkspace({ dir, attachments: [a], mode: "copy" });
    expect(again.reused).toBe(1);
    expect(again.placed[0]!.ino).toBeUndefined(); // not placed now: its content is the code's, not the blob's
    expect(again.placed).toEqual([
      { fileId: "f1", name: "data.csv", path: path.join(dir, "data.csv"), existing: true },
    ]);
    expect(await readFile(path.join(dir, "data.csv"), "utf8")).toBe("changed by code");
    expect(await readFile(a.blobPath, "utf8")).toBe("original");
    expect(sha(await readFile(a.blobPath))).toBe(a.sha256);
    expect(await visible(dir)).toEqual(["data.csv"]);

    // a later attachment of the same message is added without renaming earlier ones
    const b = await blob("f2", "data.csv", "second");
    const third = await prepareWorkspace({ dir, attachments: [a, b], mode: "copy" });
    expect(third.placed.map((p) => [p.name, p.existing])).toEqual([
      ["data.csv", true],
      ["data (2).csv", false],
    ]);
    expect(await readFile(path.join(dir, "data (2).csv"), "utf8")).toBe("second");
  });

  it("re-places a file the code deleted", async () => {
    const dir = workspaceDirFor(dataDir, "alice", "m3");
    const a = await blob("f1", "x.txt", "x");
    await prepareWorkspace({ dir, attachments: [a] });
    await rm(path.join(dir, "x.txt"));
    const r = await prepareWorkspace({ dir, attachments: [a] });
    expect(r.reused).toBe(0);
    expect(await readFile(path.join(dir, "x.txt"), "utf8")).toBe("x");
  });

  it("reports missing blobs instead of throwing", async () => {
    const dir = workspaceDirFor(dataDir, "alice", "m4");
    const a = await blob("f1", "ok.txt", "ok");
    const gone = { fileId: "f2", name: "gone.txt", blobPath: path.join(dataDir, "blobs", "nope"), sha256: sha("") };
    // What a store's withLocal gives for content it does not have (a remote store's missing object).
    const absent = { fileId: "f3", name: "absent.txt", blobPath: null, sha256: sha("") };
    const r = await prepareWorkspace({ dir, attachments: [a, gone, absent] });
    expect(r.missing).toEqual([
      { fileId: "f2", name: "gone.txt" },
      { fileId: "f3", name: "absent.txt" },
    ]);
    expect(r.placed.map((p) => p.name)).toEqual(["ok.txt"]);
  });

  it("refuses to write through a symlink or over a directory in the workspace", async () => {
    const dir = workspaceDirFor(dataDir, "alice", "m5");
    await mkdir(dir, { recursive: true });
    const victim = path.join(dataDir, "victim.txt");
    await writeFile(victim, "do not touch");
    await symlink(victim, path.join(dir, "data.csv"));
    await mkdir(path.join(dir, "report.pdf"));
    const a = await blob("f1", "data.csv", "payload");
    const b = await blob("f2", "report.pdf", "pdf");
    const r = await prepareWorkspace({ dir, attachments: [a, b] });
    expect(r.conflicts).toEqual([
      { fileId: "f1", name: "data.csv", reason: "symlink" },
      { fileId: "f2", name: "report.pdf", reason: "not_a_file" },
    ]);
    expect(r.placed).toEqual([]);
    expect(await readFile(victim, "utf8")).toBe("do not touch");
    expect(await readlink(path.join(dir, "data.csv"))).toBe(victim);
  });

  it("offers no hardlink mode", async () => {
    const dir = workspaceDirFor(dataDir, "alice", "m6");
    // @ts-expect-error hardlink is deliberately not a LinkMode
    await expect(prepareWorkspace({ dir, attachments: [], mode: "hardlink" })).rejects.toThrow(TypeError);
  });
});

describe("retention", () => {
  it("touchWorkspace updates the marker and removeIdleWorkspaces deletes only idle workspaces", async () => {
    const idle = workspaceDirFor(dataDir, "alice", "old");
    const fresh = workspaceDirFor(dataDir, "alice", "new");
    await prepareWorkspace({ dir: idle, attachments: [] });
    await prepareWorkspace({ dir: fresh, attachments: [] });
    const now = Date.now();
    const longAgo = new Date(now - 10 * 86_400_000);
    await touchWorkspace(idle, longAgo);
    expect(Math.round((await lstat(lastUsedMarkerFor(idle))).mtimeMs)).toBe(longAgo.getTime());
    await utimes(idle, longAgo, longAgo);
    await mkdir(path.join(dataDir, "workspaces", "zz"), { recursive: true }); // not ours: ignored

    const removed = await removeIdleWorkspaces(dataDir, 86_400_000, now);
    expect(removed).toEqual([idle]);
    await expect(stat(idle)).rejects.toMatchObject({ code: "ENOENT" });
    expect((await stat(fresh)).isDirectory()).toBe(true);
    expect((await stat(path.join(dataDir, "workspaces", "zz"))).isDirectory()).toBe(true);
    expect(await removeIdleWorkspaces(path.join(dataDir, "nothing-here"), 1, now)).toEqual([]);
  });

  it("touchWorkspace never follows a planted symlink", async () => {
    const dir = workspaceDirFor(dataDir, "alice", "m7");
    await mkdir(dir, { recursive: true });
    const victim = path.join(dataDir, "victim");
    await writeFile(victim, "v");
    const before = (await stat(victim)).mtimeMs;
    await symlink(victim, lastUsedMarkerFor(dir));
    await touchWorkspace(dir, new Date(0));
    expect((await stat(victim)).mtimeMs).toBe(before);
    expect((await lstat(lastUsedMarkerFor(dir))).isFile()).toBe(true);
  });
});
