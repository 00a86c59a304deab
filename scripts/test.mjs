// `npm test` from a fresh clone: the same set-up as `npm start`, then type-check, lint and every test.
// Extra arguments go to vitest (e.g. `npm test -- test/files.int.test.ts`).
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { root, setup } from "./setup.mjs";

const step = (name, cmd, args) => {
  const t0 = Date.now();
  console.error(`[test] ${name}`);
  const res = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  console.error(`[test] ${name}: ${res.status === 0 ? "ok" : "FAILED"} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (res.status !== 0) process.exit(res.status ?? 1);
};

try {
  await setup({ testClients: true });
} catch (err) {
  console.error(`[test] setup failed: ${err.message}`);
  process.exit(1);
}
// The playground's browser test drives Debian's Chromium; install it here rather than inside a test hook.
if (!existsSync("/usr/bin/chromium") && process.getuid?.() === 0 && existsSync("/usr/bin/apt-get")) {
  console.error("[test] installing Debian's chromium for the playground browser test");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  spawnSync("apt-get", ["update"], { stdio: "inherit", env });
  spawnSync("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], { stdio: "inherit", env });
}
const extra = process.argv.slice(2);
if (extra.length === 0) {
  step("typecheck", "npx", ["tsc", "-p", "tsconfig.json"]);
  step("typecheck (playground)", "npx", ["tsc", "-p", "apps/api/public/playground/tsconfig.json"]);
  step("lint", "npx", ["eslint", "--max-warnings=0", "."]);
  step("format", "npx", ["prettier", "--check", "--log-level=warn", "."]);
}
step("tests", "npx", ["vitest", "run", ...extra]);
