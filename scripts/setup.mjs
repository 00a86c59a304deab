// Brings a fresh clone to a runnable state: dependencies, Postgres/Redis reachability, the Prisma client,
// migrations, and the Jupyter packages for the embedded kernel gateway. Plain JavaScript on purpose: it
// runs before node_modules exists. Every step is idempotent and fast when there is nothing to do.
import { spawnSync } from "node:child_process";
import { existsSync, statSync, statfsSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const say = (msg) => console.error(`[setup] ${msg}`);

function run(cmd, args, opts = {}) {
  const res = spawnSync(cmd, args, {
    cwd: root,
    stdio: opts.quiet ? "pipe" : "inherit",
    env: { ...process.env, ...opts.env },
  });
  if (res.status !== 0 && !opts.allowFail) {
    if (opts.quiet) process.stderr.write(res.stderr ?? "");
    throw new Error(`${cmd} ${args.join(" ")} exited with ${res.status ?? res.signal}`);
  }
  return res.status === 0;
}

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

function ensureDependencies() {
  const marker = path.join(root, "node_modules/.package-lock.json");
  if (existsSync(marker) && mtime(marker) >= mtime(path.join(root, "package-lock.json"))) return;
  // A fresh clone gets exactly the lockfile (`npm ci` fails loudly if it is out of step with a package.json);
  // an existing tree whose lockfile changed is brought up to it without starting over.
  const fresh = !existsSync(path.join(root, "node_modules"));
  say(`installing dependencies (${fresh ? "npm ci" : "npm install"} from package-lock.json)`);
  run("npm", [fresh ? "ci" : "install", "--no-audit", "--no-fund", "--loglevel=error"]);
}

function reachable(host, port, timeoutMs = 1500) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

async function waitReachable(host, port, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await reachable(host, port)) return true;
    await new Promise((r) => setTimeout(r, 300));
  }
  return false;
}

const isLocal = (host) => ["127.0.0.1", "localhost", "::1", "[::1]"].includes(host);

/** Starts the machine's own Postgres or Redis when the configured local one is down (Debian layout). */
async function ensureService(name, url, startCmd) {
  const u = new URL(url);
  const port = Number(u.port || (name === "postgres" ? 5432 : 6379));
  if (await reachable(u.hostname, port)) return;
  if (!isLocal(u.hostname) || !startCmd) {
    throw new Error(
      `${name} is not reachable at ${u.hostname}:${port}; start it or set ${name === "postgres" ? "DATABASE_URL" : "REDIS_URL"}`,
    );
  }
  say(`${name} is down on ${u.hostname}:${port}; starting the local one`);
  run("sh", ["-c", startCmd], { allowFail: true });
  if (!(await waitReachable(u.hostname, port, 15_000))) {
    throw new Error(
      `${name} is not reachable at ${u.hostname}:${port} and could not be started; start it or set its URL`,
    );
  }
}

function ensurePrismaClient() {
  const generated = path.join(root, "packages/db/src/generated/client.ts");
  if (mtime(generated) >= mtime(path.join(root, "prisma/schema.prisma")) && existsSync(generated)) return;
  say("generating the Prisma client");
  run("npx", ["prisma", "generate"], { quiet: true });
}

/**
 * Debian's aiohttp and websockets: the Jupyter-surface tests drive codeinterp with Open WebUI's Jupyter
 * client flow, which is written with them. Installed only where apt can (root); the tests say so otherwise.
 */
const PYTHON_TEST_CLIENT_PACKAGES = ["python3-aiohttp", "python3-websockets"];
function ensurePythonTestClients() {
  if (run("/usr/bin/python3", ["-c", "import aiohttp, websockets"], { quiet: true, allowFail: true })) return;
  if (typeof process.getuid !== "function" || process.getuid() !== 0 || !existsSync("/usr/bin/apt-get")) return;
  say(`installing ${PYTHON_TEST_CLIENT_PACKAGES.join(" ")} with apt-get`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  if (!run("apt-get", ["install", "-y", ...PYTHON_TEST_CLIENT_PACKAGES], { quiet: true, allowFail: true, env })) {
    run("apt-get", ["update"], { quiet: true, allowFail: true, env });
    run("apt-get", ["install", "-y", ...PYTHON_TEST_CLIENT_PACKAGES], { quiet: true, allowFail: true, env });
  }
}

const BTRFS_SUPER_MAGIC = 0x9123683e;
function onBtrfs(dir) {
  try {
    return statfsSync(dir).type === BTRFS_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * btrfs-progs: workspaces get a disk budget (a subvolume with a qgroup limit each) where DATA_DIR is on
 * btrfs, and the disk-budget test makes a btrfs image of its own. Installed only when one of them needs it,
 * and only where apt can (root); the worker's start log and that test say so otherwise.
 */
function ensureBtrfsProgs({ forTests }) {
  if (existsSync("/usr/bin/btrfs") || existsSync("/sbin/btrfs") || existsSync("/usr/sbin/btrfs")) return;
  if (!forTests && !onBtrfs(process.env.DATA_DIR ?? path.join(root, ".data"))) return;
  if (typeof process.getuid !== "function" || process.getuid() !== 0 || !existsSync("/usr/bin/apt-get")) return;
  say("installing btrfs-progs with apt-get");
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  if (!run("apt-get", ["install", "-y", "btrfs-progs"], { quiet: true, allowFail: true, env })) {
    run("apt-get", ["update"], { quiet: true, allowFail: true, env });
    run("apt-get", ["install", "-y", "btrfs-progs"], { quiet: true, allowFail: true, env });
  }
}

/**
 * Debian's OpenStack Swift with its s3api middleware: the real S3 server the object-storage tests start
 * (test/helpers/s3-server.ts, which installs the same list itself when run alone). Only for tests, and only
 * where apt can (root); those tests say so otherwise.
 */
const SWIFT_PACKAGES = ["swift", "swift-proxy", "swift-object", "swift-container", "swift-account", "python3-swift"];
function ensureSwift() {
  if (existsSync("/usr/bin/swift-proxy-server") && existsSync("/usr/bin/swift-object-server")) return;
  if (typeof process.getuid !== "function" || process.getuid() !== 0 || !existsSync("/usr/bin/apt-get")) return;
  say(`installing ${SWIFT_PACKAGES.join(" ")} with apt-get`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const args = ["install", "-y", "--no-install-recommends", ...SWIFT_PACKAGES];
  if (!run("apt-get", args, { quiet: true, allowFail: true, env })) {
    run("apt-get", ["update"], { quiet: true, allowFail: true, env });
    run("apt-get", args, { quiet: true, allowFail: true, env });
  }
}

export async function setup({ databaseUrl, jupyter = true, testClients = false } = {}) {
  ensureDependencies();
  const dbUrl = databaseUrl ?? process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/codeinterp";
  const pgStart = existsSync("/etc/postgresql")
    ? "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -1) main start"
    : null;
  const redisStart = existsSync("/usr/bin/redis-server")
    ? 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
    : null;
  await ensureService("postgres", dbUrl, pgStart);
  await ensureService("redis", process.env.REDIS_URL ?? "redis://127.0.0.1:6379", redisStart);
  ensurePrismaClient();
  run("npx", ["tsx", "packages/db/src/migrate-cli.ts"], { quiet: true, env: { DATABASE_URL: dbUrl } });
  if (jupyter && !process.env.JUPYTER_URL) {
    run("npx", ["tsx", "scripts/ensure-jupyter.ts"]);
  }
  if (testClients && existsSync("/usr/bin/python3")) ensurePythonTestClients();
  ensureBtrfsProgs({ forTests: testClients });
  if (testClients) ensureSwift();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await setup().catch((err) => {
    say(err.message);
    process.exit(1);
  });
}
