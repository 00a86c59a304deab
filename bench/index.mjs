// `npm run bench [-- --quick] [-- --json FILE] [-- --svg FILE]`: the same set-up as `npm test` (dependencies,
// Postgres/Redis, Prisma client, migrations, Jupyter packages), then the benchmark itself under tsx.
// Plain JavaScript so it runs before node_modules exists.
import { spawnSync } from "node:child_process";
import { root, setup } from "../scripts/setup.mjs";

try {
  await setup();
} catch (err) {
  console.error(`[bench] setup failed: ${err.message}`);
  process.exit(1);
}
const res = spawnSync(process.execPath, ["--import", "tsx", "bench/run.ts", ...process.argv.slice(2)], {
  cwd: root,
  stdio: "inherit",
});
process.exit(res.status ?? 1);
