import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, openSync, closeSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort, waitFor } from "../faults/harness";

/**
 * A real S3 server for tests: Debian's OpenStack Swift (proxy, account, container and object servers, one
 * replica on a plain directory) with the s3api middleware and tempauth's static credentials, in a temp dir
 * on free ports. See ../shared research (s3-swift.md) for what each setting is for. Not a fake: requests go
 * through Swift's real S3 implementation and land on disk.
 */
export interface S3Server {
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** From nothing to a created bucket, in ms. */
  startMs: number;
  /** What an app's env needs to keep its blobs in this server's bucket (under `prefix`). */
  env(prefix?: string): Record<string, string>;
  /** A client of this server with the settings the apps use. */
  client(): S3Client;
  /** Stops the proxy only: every S3 request is refused until `startProxy` (the backends keep their data). */
  stopProxy(): Promise<void>;
  startProxy(): Promise<void>;
  stop(): Promise<void>;
}

export const SWIFT_PACKAGES = [
  "swift",
  "swift-proxy",
  "swift-object",
  "swift-container",
  "swift-account",
  "python3-swift",
];
const KINDS = ["account", "container", "object"] as const;
type Kind = (typeof KINDS)[number] | "proxy";

/** Installs Swift with apt where it is missing (CI from a clean machine, as root); scripts/setup.mjs does the same. */
export function ensureSwiftInstalled(): void {
  if (existsSync("/usr/bin/swift-proxy-server") && existsSync("/usr/bin/swift-object-server")) return;
  if (process.getuid?.() !== 0 || !existsSync("/usr/bin/apt-get"))
    throw new Error(`OpenStack Swift is not installed: apt-get install ${SWIFT_PACKAGES.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "--no-install-recommends", ...SWIFT_PACKAGES], { env, stdio: "pipe" })
      .status === 0;
  if (install()) return;
  spawnSync("apt-get", ["update"], { env, stdio: "pipe" });
  if (!install()) throw new Error(`apt-get install ${SWIFT_PACKAGES.join(" ")} failed`);
}

function serverConf(kind: (typeof KINDS)[number], state: string, port: number): string {
  return `[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${port}
devices = ${state}/srv
mount_check = false
swift_dir = ${state}/etc
workers = 0
user = ${os.userInfo().username}
log_level = WARNING

[pipeline:main]
pipeline = ${kind}-server

[app:${kind}-server]
use = egg:swift#${kind}
`;
}

function proxyConf(state: string, port: number, deadPort: number, host: string): string {
  const filters = ["catch_errors", "gatekeeper", "healthcheck", "listing_formats", "copy", "slo", "dlo"];
  return `[DEFAULT]
bind_ip = ${host}
bind_port = ${port}
swift_dir = ${state}/etc
workers = 0
user = ${os.userInfo().username}
log_level = WARNING

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

${filters.map((f) => `[filter:${f}]\nuse = egg:swift#${f}\n`).join("\n")}
[filter:proxy-logging]
use = egg:swift#proxy_logging

# tempauth insists on a cache; S3 requests need no memcached, so it points where nothing listens, quietly.
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${deadPort}
set log_level = CRITICAL

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
`;
}

const RINGS = `
import sys
from swift.common.ring import RingBuilder
etc = sys.argv[1]
for name, port in zip(("account", "container", "object"), sys.argv[2:5]):
    b = RingBuilder(10, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port), "device": "d1", "weight": 100})
    b.rebalance()
    b.get_ring().save(f"{etc}/{name}.ring.gz")
`;

async function answersHttp(port: number, p = "/", host = "127.0.0.1"): Promise<number | false> {
  try {
    const res = await fetch(`http://${host}:${port}${p}`, { signal: AbortSignal.timeout(2000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return false;
  }
}

/** `host`: the address the proxy (the S3 endpoint) listens on (default 127.0.0.1; the cells suite's bridge). */
export async function startS3Server(opts: { bucket?: string; host?: string } = {}): Promise<S3Server> {
  const host = opts.host ?? "127.0.0.1";
  ensureSwiftInstalled();
  const t0 = Date.now();
  const state = await mkdtemp(path.join(os.tmpdir(), "swift-"));
  await mkdir(path.join(state, "etc"), { recursive: true });
  await mkdir(path.join(state, "srv", "d1"), { recursive: true });
  const ports = {
    account: await freePort(),
    container: await freePort(),
    object: await freePort(),
    proxy: await freePort(),
  };
  const deadPort = await freePort();
  for (const kind of KINDS)
    await writeFile(path.join(state, "etc", `${kind}-server.conf`), serverConf(kind, state, ports[kind]));
  await writeFile(path.join(state, "etc", "proxy-server.conf"), proxyConf(state, ports.proxy, deadPort, host));
  // Debian's python (a pyenv python3 may come first on PATH) imports swift.
  const rings = spawnSync(
    "/usr/bin/python3",
    ["-c", RINGS, path.join(state, "etc"), String(ports.account), String(ports.container), String(ports.object)],
    { encoding: "utf8" },
  );
  if (rings.status !== 0) throw new Error(`swift rings: ${rings.stderr}`);

  const procs = new Map<Kind, ChildProcess>();
  const spawnServer = (kind: Kind) => {
    const log = openSync(path.join(state, `${kind}.log`), "a");
    const child = spawn(`/usr/bin/swift-${kind}-server`, [path.join(state, "etc", `${kind}-server.conf`), "-v"], {
      stdio: ["ignore", log, log],
      env: { ...process.env, EVENTLET_NO_GREENDNS: "yes", PATH: `/usr/bin:${process.env.PATH ?? ""}` },
    });
    closeSync(log);
    procs.set(kind, child);
  };
  const alive = (kind: Kind) => {
    const c = procs.get(kind);
    return !!c && c.exitCode === null && c.signalCode === null;
  };
  const stopOne = async (kind: Kind) => {
    const c = procs.get(kind);
    if (!c || !alive(kind)) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGTERM");
    const t = setTimeout(() => c.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  };
  const stop = async () => {
    await Promise.all([...procs.keys()].map(stopOne));
    await rm(state, { recursive: true, force: true });
  };
  const bucket = opts.bucket ?? "codeinterp-test";
  const server: S3Server = {
    endpoint: `http://${host}:${ports.proxy}`,
    bucket,
    accessKeyId: "test:tester",
    secretAccessKey: "testing",
    region: "us-east-1",
    startMs: 0,
    env: (prefix = "") => ({
      BLOB_STORE_URL: `s3://${bucket}${prefix ? `/${prefix}` : ""}`,
      S3_ENDPOINT: `http://${host}:${ports.proxy}`,
      S3_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "test:tester",
      AWS_SECRET_ACCESS_KEY: "testing",
    }),
    client: () =>
      new S3Client({
        region: "us-east-1",
        endpoint: `http://${host}:${ports.proxy}`,
        forcePathStyle: true,
        credentials: { accessKeyId: "test:tester", secretAccessKey: "testing" },
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
      }),
    stopProxy: () => stopOne("proxy"),
    async startProxy() {
      spawnServer("proxy");
      await waitFor(
        async () => {
          if (!alive("proxy")) throw new Error(`swift proxy exited: see ${state}/proxy.log`);
          return (await answersHttp(ports.proxy, "/healthcheck", host)) === 200;
        },
        30_000,
        "swift proxy healthcheck",
      );
    },
    stop,
  };
  try {
    for (const kind of KINDS) spawnServer(kind);
    // The proxy's healthcheck answers before the backends listen: wait for each backend first.
    await waitFor(
      async () => {
        for (const kind of KINDS)
          if (!alive(kind)) throw new Error(`swift ${kind} server exited: see ${state}/${kind}.log`);
        const up = await Promise.all(KINDS.map((k) => answersHttp(ports[k])));
        return up.every((s) => s !== false);
      },
      60_000,
      "swift backends listening",
    );
    await server.startProxy();
    const c = server.client();
    await waitFor(
      async () => {
        try {
          await c.send(new CreateBucketCommand({ Bucket: bucket }));
          return true;
        } catch (err) {
          if ((err as { name?: string }).name === "BucketAlreadyOwnedByYou") return true;
          return false;
        }
      },
      30_000,
      "bucket created",
    );
    c.destroy();
    server.startMs = Date.now() - t0;
    return server;
  } catch (err) {
    await stop();
    throw err;
  }
}
