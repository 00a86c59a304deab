import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, unlink, utimes, writeFile, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { diffSnapshots, snapshotWorkspace } from "../src/index";
import type { Snapshot, SnapshotEntry } from "../src/index";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "ws-snap-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const w = async (rel: string, content: string | Buffer): Promise<void> => {
  await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
  await writeFile(path.join(root, rel), content);
};
const paths = (entries: SnapshotEntry[]): string[] => entries.map((e) => e.path);

describe("snapshotWorkspace", () => {
  it("records regular files with posix relative paths and skips links, hidden files and caches", async () => {
    await w("a.csv", "1,2\n");
    await w("sub/deep/b.txt", "hello");
    await w(".hidden", "x");
    await w(".config/c.json", "{}");
    await w("__pycache__/m.cpython-312.pyc", "x");
    await w("mod.pyc", "x");
    await w("node_modules/p/index.js", "x");
    await w(".ipynb_checkpoints/n-checkpoint.ipynb", "x");
    await symlink("/etc/passwd", path.join(root, "passwd"));
    await symlink("/etc", path.join(root, "etc"));
    execFileSync("mkfifo", [path.join(root, "fifo")]);

    const snap = await snapshotWorkspace(root);
    expect([...snap.files.keys()].sort()).toEqual(["a.csv", "sub/deep/b.txt"]);
    const a = snap.files.get("a.csv")!;
    expect(a.size).toBe(4);
    expect(a.ino).toBe((await stat(path.join(root, "a.csv"))).ino);
    expect(a.mode).toBe((await stat(path.join(root, "a.csv"))).mode & 0o7777);
    const reasons = Object.fromEntries(snap.skipped.map((s) => [s.path, s.reason]));
    expect(reasons).toMatchObject({
      passwd: "symlink",
      etc: "symlink",
      fifo: "special",
      ".hidden": "excluded",
      ".config": "excluded",
      __pycache__: "excluded",
      "mod.pyc": "excluded",
      node_modules: "excluded",
      ".ipynb_checkpoints": "excluded",
    });
    expect(snap.truncated).toBe(false);
  });

  it("honours include/exclude globs and includeHidden", async () => {
    await w("a.csv", "1");
    await w("b.txt", "2");
    await w("tmp/c.csv", "3");
    await w(".env", "4");
    const snap = await snapshotWorkspace(root, {
      include: ["**/*.csv", ".env"],
      exclude: ["tmp"],
      includeHidden: true,
    });
    expect([...snap.files.keys()].sort()).toEqual([".env", "a.csv"]);
    expect(snap.skipped).toEqual(
      expect.arrayContaining([
        { path: "tmp", reason: "excluded" },
        { path: "b.txt", reason: "excluded" },
      ]),
    );
  });

  it("caps the number of entries walked and reports it", async () => {
    for (let i = 0; i < 50; i++) await w(`d${i % 5}/f${i}.txt`, "x");
    const snap = await snapshotWorkspace(root, { maxEntries: 20 });
    expect(snap.truncated).toBe(true);
    expect(snap.walked).toBe(20);
    expect(snap.files.size).toBeLessThanOrEqual(20);
    expect(snap.skipped.some((s) => s.reason === "limit_count")).toBe(true);
  });

  it("reports a file or folder whose name is not UTF-8 as skipped, not as nothing", async () => {
    await w("ok.txt", "x");
    await writeFile(Buffer.concat([Buffer.from(`${root}/`), Buffer.from([0xff]), Buffer.from(".txt")]), "x");
    await mkdir(Buffer.concat([Buffer.from(`${root}/dir`), Buffer.from([0xfe])]));
    const snap = await snapshotWorkspace(root);
    expect([...snap.files.keys()]).toEqual(["ok.txt"]);
    expect(snap.skipped).toEqual(
      expect.arrayContaining([
        { path: "\uFFFD.txt", reason: "invalid_name" },
        { path: "dir\uFFFD", reason: "invalid_name" },
      ]),
    );
  });

  it("caps depth", async () => {
    await w("a/b/c/d.txt", "x");
    const snap = await snapshotWorkspace(root, { maxDepth: 2 });
    expect(snap.files.size).toBe(0);
    expect(snap.skipped).toContainEqual({ path: "a/b/c", reason: "too_deep" });
  });
});

describe("diffSnapshots", () => {
  it("reports created, changed and deleted files; a symlink to /etc/passwd is skipped, never included", async () => {
    await w("keep.txt", "same");
    await w("edit.txt", "old");
    await w("gone.txt", "bye");
    await w("replaced.txt", "abc");
    const before = await snapshotWorkspace(root);

    await new Promise((r) => setTimeout(r, 5));
    await w("edit.txt", "newer content");
    await unlink(path.join(root, "gone.txt"));
    await unlink(path.join(root, "replaced.txt"));
    await w("replaced.txt", "xyz"); // same size, new inode
    await w("out/chart.png", "png");
    await symlink("/etc/passwd", path.join(root, "leak.txt"));
    const after = await snapshotWorkspace(root, { previous: before });

    const d = diffSnapshots(before, after, {});
    expect(paths(d.created)).toEqual(["out/chart.png"]);
    expect(paths(d.changed)).toEqual(["edit.txt", "replaced.txt"]);
    expect(d.deleted).toEqual(["gone.txt"]);
    expect(d.skipped).toEqual([{ path: "leak.txt", reason: "symlink" }]);
    expect(d.incomplete).toBe(false);
  });

  it("detects a same-size rewrite with the mtime forced back (ctime / content hash)", async () => {
    await w("data.csv", "aaaa");
    const st = await stat(path.join(root, "data.csv"));
    const before = await snapshotWorkspace(root);
    expect(before.files.get("data.csv")!.hash).toBeDefined(); // racy: written just now
    await writeFile(path.join(root, "data.csv"), "bbbb");
    await utimes(path.join(root, "data.csv"), st.atime, st.mtime);
    const after = await snapshotWorkspace(root, { previous: before });
    expect(paths(diffSnapshots(before, after).changed)).toEqual(["data.csv"]);
  });

  it("an after snapshot reads only files its metadata cannot tell apart from the before", async () => {
    await w("data.csv", "aaaa");
    await w("kept.csv", "same");
    const before = await snapshotWorkspace(root);
    expect(before.files.get("kept.csv")!.hash).toBeDefined(); // racy: written just now
    await w("chart.png", "png"); // new: written just now, and not read
    await w("data.csv", "bbbbbb"); // size moved
    const after = await snapshotWorkspace(root, { previous: before });
    expect(after.files.get("chart.png")!.hash).toBeUndefined();
    expect(after.files.get("data.csv")!.hash).toBeUndefined();
    // Untouched, with a hashed before: only its content can tell a rewrite within the same tick.
    expect(after.files.get("kept.csv")!.hash).toBe(before.files.get("kept.csv")!.hash);
    const d = diffSnapshots(before, after);
    expect(paths(d.created)).toEqual(["chart.png"]);
    expect(paths(d.changed)).toEqual(["data.csv"]);
  });

  it("takes a known hash for the same inode instead of reading the file, and reads one that was replaced", async () => {
    await w("kept.csv", "aaaa");
    await w("swapped.csv", "bbbb");
    const { createHash } = await import("node:crypto");
    const sha = (s: string) => createHash("sha256").update(s).digest("hex");
    const ino = async (rel: string) => (await stat(path.join(root, rel))).ino;
    const known = new Map([
      // A value no read of "aaaa" could give: seeing it back shows the file was not read.
      ["kept.csv", { ino: await ino("kept.csv"), sha256: "f".repeat(64) }],
      ["swapped.csv", { ino: (await ino("swapped.csv")) + 1, sha256: "f".repeat(64) }],
    ]);
    const snap = await snapshotWorkspace(root, { known });
    expect(snap.files.get("kept.csv")!.hash).toBe("f".repeat(64));
    expect(snap.files.get("swapped.csv")!.hash).toBe(sha("bbbb"));
  });

  it("content hash decides when all metadata are equal", () => {
    const e = (hash?: string): SnapshotEntry => ({
      path: "a",
      size: 1,
      mtimeMs: 1,
      ctimeMs: 1,
      ino: 1,
      dev: 1,
      mode: 0o644,
      hash,
    });
    const snap = (entry: SnapshotEntry): Snapshot => ({
      root: "/",
      takenAtMs: 0,
      files: new Map([["a", entry]]),
      skipped: [],
      skippedCount: 0,
      walked: 1,
      truncated: false,
    });
    expect(diffSnapshots(snap(e("h1")), snap(e("h2"))).changed).toHaveLength(1);
    expect(diffSnapshots(snap(e("h1")), snap(e("h1"))).changed).toHaveLength(0);
    expect(diffSnapshots(snap(e()), snap(e("h2"))).changed).toHaveLength(0);
  });

  it("leaves untouched files unchanged", async () => {
    await w("a.txt", "a");
    const before = await snapshotWorkspace(root);
    const after = await snapshotWorkspace(root, { previous: before });
    const d = diffSnapshots(before, after);
    expect(d).toMatchObject({ created: [], changed: [], deleted: [], skipped: [] });
  });

  it("applies count, byte and per-file limits deterministically in path order", async () => {
    const before = await snapshotWorkspace(root);
    await w("a.bin", Buffer.alloc(10));
    await w("b.bin", Buffer.alloc(100)); // too large
    await w("c.bin", Buffer.alloc(30));
    await w("d.bin", Buffer.alloc(30)); // exceeds total 50
    await w("e.bin", Buffer.alloc(5));
    await w("f.bin", Buffer.alloc(1)); // beyond count 3
    const after = await snapshotWorkspace(root);
    const d = diffSnapshots(before, after, { maxFiles: 3, maxTotalBytes: 50, maxFileBytes: 50 });
    expect(paths(d.created)).toEqual(["a.bin", "c.bin", "e.bin"]);
    expect(d.skipped).toEqual([
      { path: "b.bin", reason: "too_large" },
      { path: "d.bin", reason: "limit_bytes" },
      { path: "f.bin", reason: "limit_count" },
    ]);
  });

  it("does not report deletions from a truncated snapshot", async () => {
    for (let i = 0; i < 10; i++) await w(`f${i}.txt`, "x");
    const before = await snapshotWorkspace(root);
    const after = await snapshotWorkspace(root, { maxEntries: 3 });
    const d = diffSnapshots(before, after);
    expect(d.incomplete).toBe(true);
    expect(d.deleted).toEqual([]);
  });
});
