import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";

const run = promisify(execFile);
const FIXTURE = fileURLToPath(new URL("./fixtures/prepare-cgroups.mts", import.meta.url));
const ns = `ci-cg-${randomBytes(3).toString("hex")}`;

beforeAll(async () => {
  await run("ip", ["netns", "add", ns]);
});
afterAll(async () => {
  await run("ip", ["netns", "del", ns]).catch(() => undefined);
});

// `ip netns exec` mounts a fresh /sys: /sys/fs/cgroup is there and empty while /proc/self/cgroup still
// names the hierarchies. Node's recursive mkdir never returned there, so a cell's Jupyter server hung at
// start (test/cells). The setup must say why it has no cgroups instead, and the server goes on with rlimits.
it("with the cgroup hierarchy not mounted, says so instead of hanging", async () => {
  const { stdout } = await run("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", FIXTURE], {
    timeout: 30_000,
  });
  const setup = JSON.parse(stdout) as { ok: boolean; reason?: string };
  expect(setup).toMatchObject({ ok: false, reason: expect.stringMatching(/cannot create kernel cgroups/) });
});
