import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createBudgetedDir, removeWorkspaceDir, startStaleBudgetSweep } from "@codeinterp/workspace";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// A disk budget per workspace: DATA_DIR on a btrfs file system with simple quotas (a loop image this file
// makes), each workspace a subvolume with a qgroup limit. This machine and CI run as root with loop devices:
// where that is missing the file fails with the reason instead of skipping.
const BUDGET_MB = 32;
let imageDir = "";
let mnt = "";
let loop = "";
let stack: TestStack;

const sh = (cmd: string, args: string[]) =>
  execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();

/** Simple quotas: `btrfs quota enable --simple` (btrfs-progs 6.7+), else the ioctl itself (Debian 12 ships 6.2). */
function enableSimpleQuotas(dir: string): void {
  try {
    sh("btrfs", ["quota", "enable", "--simple", dir]);
  } catch {
    // BTRFS_IOC_QUOTA_CTL with BTRFS_QUOTA_CTL_ENABLE_SIMPLE_QUOTA (4)
    sh("/usr/bin/python3", [
      "-c",
      "import fcntl,os,struct,sys; fcntl.ioctl(os.open(sys.argv[1], os.O_RDONLY), 0xC0109428, struct.pack('QQ', 4, 0))",
      dir,
    ]);
  }
}

beforeAll(async () => {
  if (process.getuid?.() !== 0)
    throw new Error("the workspace disk budget test needs root (mount, losetup, qgroup limits)");
  if (!existsSync("/dev/loop-control"))
    throw new Error("the workspace disk budget test needs loop devices (/dev/loop-control is missing)");
  for (const tool of ["mkfs.btrfs", "btrfs", "losetup"]) {
    try {
      sh("sh", ["-c", `command -v ${tool}`]);
    } catch {
      throw new Error(
        `the workspace disk budget test needs ${tool}: install btrfs-progs (node scripts/setup.mjs does as root)`,
      );
    }
  }
  imageDir = await mkdtemp(path.join(os.tmpdir(), "codeinterp-btrfs-"));
  const image = path.join(imageDir, "data.img");
  await writeFile(image, "");
  await truncate(image, 1024 ** 3); // sparse: costs only what is written
  sh("mkfs.btrfs", ["-q", image]);
  loop = sh("losetup", ["-f", "--show", image]);
  // Under the test root: the gateway's root_dir, which the workspaces must lie in.
  mnt = path.join(inject("testRoot"), `btrfs-${randomBytes(4).toString("hex")}`);
  await mkdir(mnt);
  sh("mount", [loop, mnt]);
  enableSimpleQuotas(mnt);
  // reflink, not copy: attachments must still be cloned from DATA_DIR/blobs into a workspace's subvolume.
  stack = await startTestStack({
    dataDir: mnt,
    env: { KERNEL_SANDBOX: "on", WORKSPACE_DISK_MB: String(BUDGET_MB), ATTACHMENT_LINK_MODE: "reflink" },
  });
}, 120_000);

afterAll(async () => {
  await stack?.close();
  // Kernels of this file may still hold the file system through their mount namespaces: detach lazily.
  if (mnt) sh("umount", ["-l", mnt]);
  if (loop) sh("losetup", ["-d", loop]);
  if (mnt) await rm(mnt, { recursive: true, force: true });
  if (imageDir) await rm(imageDir, { recursive: true, force: true });
});

describe("a disk budget per workspace (DATA_DIR on btrfs with quotas)", () => {
  it("/readyz names the budget", async () => {
    await expect
      .poll(
        async () =>
          ((await (await fetch(`${stack.url}/readyz`)).json()) as { kernels: { diskBudgetMb?: number } }).kernels
            .diskBudgetMb,
        { timeout: 30_000 },
      )
      .toBe(BUDGET_MB);
  });

  it("writing past the disk budget stops with a clear error; another user's workspace and the message's next execution work", async () => {
    const hog = client(stack.url, (await stack.newUser("hog")).key);
    const bystanderKey = (await stack.newUser("bystander")).key;
    const other = client(stack.url, bystanderKey);
    // Three times the budget, in files well below the per-file size limit.
    const write = `
chunk = b"x" * (1024 * 1024)
for i in range(${(3 * BUDGET_MB) / 8}):
    with open(f"/mnt/data/fill{i}.bin", "wb") as f:
        for _ in range(8):
            f.write(chunk)
`;
    const done = await hog.run({ messageId: "filler", code: write });
    expect(done.status).toBe("completed");
    expect(done.result.error.ename).toBe("OSError");
    expect(done.result.error.evalue).toMatch(/Disk quota exceeded/);

    const form = new FormData();
    form.append("file", new Blob(["a,b\n1,2\n"]), "in.csv");
    const up = (await (
      await fetch(`${stack.url}/v1/files`, {
        method: "POST",
        headers: { authorization: `Bearer ${bystanderKey}` },
        body: form,
      })
    ).json()) as { id: string };
    const bystander = await other.run({
      messageId: "small",
      fileIds: [up.id],
      code: "open('/mnt/data/note.txt', 'w').write('fine' * 1000)\nprint(open('/mnt/data/note.txt').read()[:4], open('/mnt/data/in.csv').read().count(','))",
    });
    expect(bystander.status).toBe("completed");
    expect(bystander.result.stdout).toBe("fine 2\n");

    const next = await hog.run({
      messageId: "filler",
      code: "import glob, os\nfor p in glob.glob('/mnt/data/fill*.bin'):\n    os.remove(p)\nopen('/mnt/data/after.txt', 'w').write('ok')\nprint(open('/mnt/data/after.txt').read())",
    });
    expect(next.status).toBe("completed");
    expect(next.result.stdout).toBe("ok\n");
  }, 120_000);

  it("a subvolume the code creates inside its workspace stays within the budget", async () => {
    const hog = client(stack.url, (await stack.newUser("nester")).key);
    const code = `
import fcntl, os, struct
# BTRFS_IOC_SUBVOL_CREATE: any user may create a subvolume where they can write
args = bytearray(struct.pack("q4088s", 0, b"nested"))
fd = os.open("/mnt/data", os.O_RDONLY)
fcntl.ioctl(fd, 0x5000940e, args)
chunk = b"x" * (1024 * 1024)
for i in range(${(3 * BUDGET_MB) / 8}):
    with open(f"/mnt/data/nested/fill{i}.bin", "wb") as f:
        for _ in range(8):
            f.write(chunk)
`;
    const done = await hog.run({ messageId: "nester", code });
    expect(done.status).toBe("completed");
    expect(done.result.error?.evalue).toMatch(/Disk quota exceeded/);
  }, 120_000);

  it("a removed workspace leaves no subvolume or qgroup behind", async () => {
    const dir = path.join(mnt, "workspaces", "removal-probe");
    await createBudgetedDir(dir, BUDGET_MB * 1024 * 1024);
    const id = sh("btrfs", ["inspect-internal", "rootid", dir]);
    const group = sh("btrfs", ["qgroup", "show", "-p", "--raw", mnt])
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .find((r) => r[0] === `0/${id}`)?.[3];
    expect(group).toMatch(/^1\/\d+$/);
    await removeWorkspaceDir(dir);
    expect(existsSync(dir)).toBe(false);
    const sweeper = startStaleBudgetSweep(mnt);
    const groups = () =>
      sh("btrfs", ["qgroup", "show", "--raw", mnt])
        .split("\n")
        .map((l) => l.trim().split(/\s+/)[0]);
    // The kernel drops the subvolume in the background; the cleanup job's sweeps then destroy its group.
    await expect
      .poll(async () => (await sweeper.sweep(), groups().includes(group!)), { timeout: 60_000, interval: 2000 })
      .toBe(false);
  }, 90_000);
});
