import { createServer, request } from "node:http";
import type { Server } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EgressPolicy, EgressRuleError, isPublicAddress, parseEgressAllowlist } from "../src/egress/allowlist";
import { egressPassword, startEgressProxy } from "../src/egress/proxy";
import type { EgressProxy } from "../src/egress/proxy";
import { silentLog } from "@codeinterp/kernel";

const policy = (text: string) => new EgressPolicy(parseEgressAllowlist(text));

describe("egress allowlist", () => {
  it("allows a listed name on 80 and 443 only where it resolves to a public address", () => {
    const p = policy("pypi.org");
    expect(p.decide("pypi.org", "151.101.0.223", 443)).toEqual({ allowed: true });
    expect(p.decide("pypi.org", "151.101.0.223", 22)).toMatchObject({
      allowed: false,
      reason: "host not in the allowlist",
    });
    expect(p.decide("PyPI.org.", "151.101.0.223", 80)).toEqual({ allowed: true });
    expect(p.decide("evil.org", "151.101.0.223", 443)).toMatchObject({ allowed: false });
  });

  it("refuses a listed name that resolves to a private, loopback or metadata address", () => {
    const p = policy("mirror.example.com:8080");
    for (const address of [
      "10.1.2.3",
      "127.0.0.1",
      "169.254.169.254",
      "192.168.1.1",
      "::1",
      "fd00::5",
      "::ffff:10.0.0.1",
      "100.64.0.1",
    ]) {
      expect(p.decide("mirror.example.com", address, 8080)).toMatchObject({
        allowed: false,
        reason: expect.stringContaining("non-public") as string,
      });
    }
  });

  it("opens a private destination only when its address or range is listed", () => {
    const p = policy("10.20.0.0/16:3141, [fd00::/8], 127.0.0.1:8081");
    expect(p.decide("10.20.5.6", "10.20.5.6", 3141)).toEqual({ allowed: true });
    expect(p.decide("mirror.internal", "10.20.5.6", 3141)).toEqual({ allowed: true });
    expect(p.decide("10.20.5.6", "10.20.5.6", 3142)).toMatchObject({ allowed: false });
    expect(p.decide("10.21.0.1", "10.21.0.1", 3141)).toMatchObject({ allowed: false });
    expect(p.decide("fd00::7", "fd00::7", 443)).toEqual({ allowed: true });
    expect(p.decide("127.0.0.1", "127.0.0.1", 8081)).toEqual({ allowed: true });
    expect(p.decide("127.0.0.1", "127.0.0.1", 6379)).toMatchObject({ allowed: false });
  });

  it("matches wildcard entries on subdomains only", () => {
    const p = policy("*.githubusercontent.com");
    expect(p.decide("raw.githubusercontent.com", "185.199.108.133", 443)).toEqual({ allowed: true });
    expect(p.decide("githubusercontent.com", "185.199.108.133", 443)).toMatchObject({ allowed: false });
    expect(p.decide("xgithubusercontent.com", "185.199.108.133", 443)).toMatchObject({ allowed: false });
  });

  it("rejects malformed entries with the entry in the message", () => {
    expect(() => parseEgressAllowlist("pypi.org:99999")).toThrow(EgressRuleError);
    expect(() => parseEgressAllowlist("fd00::1:443")).toThrow(/bracket/);
    expect(() => parseEgressAllowlist("exa mple..com")).toThrow(EgressRuleError);
    expect(parseEgressAllowlist("")).toEqual([]);
  });

  it("knows public from non-public addresses", () => {
    expect(isPublicAddress("8.8.8.8")).toBe(true);
    expect(isPublicAddress("2606:4700::1111")).toBe(true);
    expect(isPublicAddress("169.254.169.254")).toBe(false);
    expect(isPublicAddress("0.0.0.0")).toBe(false);
  });
});

function portOf(server: Server): number {
  const addr = server.address();
  return typeof addr === "object" && addr ? addr.port : 0;
}

type Answer = { status: number; body: string };

/** One request through the proxy's unix socket, as pip/requests send it (absolute URI, or CONNECT then GET). */
function viaProxy(
  socketPath: string,
  target: string,
  opts: { connect: boolean; kernel?: string; password?: string },
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (opts.kernel)
    headers["proxy-authorization"] = `Basic ${Buffer.from(`${opts.kernel}:${opts.password ?? ""}`).toString("base64")}`;
  return new Promise((resolve, reject) => {
    if (!opts.connect) {
      const req = request({ socketPath, method: "GET", path: `http://${target}/hello`, headers }, (res) => {
        let body = "";
        res
          .setEncoding("utf8")
          .on("data", (c: string) => (body += c))
          .on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject).end();
      return;
    }
    const req = request({ socketPath, method: "CONNECT", path: target, headers });
    req.on("error", reject);
    req.on("response", (res) => resolve({ status: res.statusCode ?? 0, body: "" }));
    req.on("connect", (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, body: "" });
        return;
      }
      let raw = "";
      socket.setEncoding("utf8");
      socket.on("data", (c: string) => (raw += c));
      socket.on("end", () => resolve({ status: 200, body: raw.split("\r\n\r\n")[1] ?? "" }));
      socket.write(`GET /hello HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`);
    });
    req.end();
  });
}

describe("egress proxy", () => {
  const secret = "test-secret";
  let dir: string;
  let upstream: Server;
  let port: number;
  let internal: Server;
  let internalPort: number;
  let proxy: EgressProxy;
  const kernel = "4f3c2a10-0000-4000-8000-000000000001";
  const password = egressPassword(secret, kernel);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "egress-"));
    upstream = createServer((_req, res) => res.end("hello from upstream"));
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    port = portOf(upstream);
    // A second service only reachable by a listed *name* that resolves to loopback: it must stay closed.
    internal = createServer((_req, res) => res.end("internal service"));
    await new Promise<void>((r) => internal.listen(0, "127.0.0.1", r));
    internalPort = portOf(internal);
    proxy = await startEgressProxy({
      socketPath: join(dir, "egress.sock"),
      policy: policy(`127.0.0.1:${port}, localhost:${internalPort}, metadata.invalid`),
      secret,
      log: silentLog,
    });
  });
  afterAll(async () => {
    await proxy.close();
    await new Promise((r) => upstream.close(r));
    await new Promise((r) => internal.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it("tunnels to a listed address (CONNECT) and forwards plain HTTP to it", async () => {
    await expect(viaProxy(proxy.socketPath, `127.0.0.1:${port}`, { connect: true, kernel, password })).resolves.toEqual(
      { status: 200, body: "hello from upstream" },
    );
    await expect(
      viaProxy(proxy.socketPath, `127.0.0.1:${port}`, { connect: false, kernel, password }),
    ).resolves.toEqual({ status: 200, body: "hello from upstream" });
  });

  it("asks for kernel credentials, and refuses another kernel's password", async () => {
    expect((await viaProxy(proxy.socketPath, `127.0.0.1:${port}`, { connect: true })).status).toBe(407);
    const other = egressPassword(secret, "another-kernel");
    expect(
      (await viaProxy(proxy.socketPath, `127.0.0.1:${port}`, { connect: true, kernel, password: other })).status,
    ).toBe(407);
  });

  it("refuses an unlisted address, a listed name resolving to loopback, and the metadata address", async () => {
    expect((await viaProxy(proxy.socketPath, `127.0.0.2:${port}`, { connect: true, kernel, password })).status).toBe(
      403,
    );
    expect(
      (await viaProxy(proxy.socketPath, `127.0.0.1:${internalPort}`, { connect: true, kernel, password })).status,
    ).toBe(403);
    expect(
      (await viaProxy(proxy.socketPath, `localhost:${internalPort}`, { connect: true, kernel, password })).status,
    ).toBe(403);
    expect(
      (await viaProxy(proxy.socketPath, `localhost:${internalPort}`, { connect: false, kernel, password })).status,
    ).toBe(403);
    expect((await viaProxy(proxy.socketPath, "169.254.169.254:80", { connect: false, kernel, password })).status).toBe(
      403,
    );
  });

  it("answers a name that does not resolve with 502, not a connection", async () => {
    expect((await viaProxy(proxy.socketPath, "metadata.invalid:443", { connect: true, kernel, password })).status).toBe(
      502,
    );
  });
});
