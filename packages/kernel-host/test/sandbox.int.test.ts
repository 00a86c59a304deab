import { chmod, chown, mkdir, readdir } from "node:fs/promises";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KernelGateway } from "@codeinterp/kernel";
import type { LocalJupyter } from "../src";
import { AS_CONFIGURED, cellsUnderOurSettings } from "./helpers/kernel-settings";
import { startOwnServer } from "./helpers/own-server";
import type { OwnServer } from "./helpers/own-server";

// The sandbox launcher on its own Jupyter server (needs root and bubblewrap, like the embedded server's
// sandbox): the egress proxy's unix socket is a sandboxed kernel's only way out, and a gone kernel's
// socket directory is collected.
let own: OwnServer;
let tmp: string;
let server: LocalJupyter;
let gateway: KernelGateway;
let proxy: Server;
const requests: string[] = [];

beforeAll(async () => {
  own = await startOwnServer("sandbox-int", async (dir) => {
    // Stands in for the egress proxy: answers every request, and records its first line.
    proxy = createServer((sock) => {
      sock.once("data", (d: Buffer) => {
        requests.push(d.toString().split("\r\n")[0] ?? "");
        sock.end("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\nvia-proxy\r\n");
      });
    });
    await new Promise<void>((r) => proxy.listen(join(dir, "proxy.sock"), r));
    await chmod(join(dir, "proxy.sock"), 0o666);
    return { proxySocket: join(dir, "proxy.sock") };
  });
  ({ tmp, server, gateway } = own);
});

afterAll(async () => {
  await own?.stop();
  proxy?.close();
});

async function workspace(name: string): Promise<string> {
  const dir = join(tmp, "root", name);
  await mkdir(dir);
  await chown(dir, 100_123, 100_123);
  return name;
}

describe("sandboxed kernels (as root, like the embedded server's sandbox)", () => {
  it("reach the configured proxy through HTTP_PROXY, and nothing directly", async () => {
    expect(server.sandbox.available).toBe(true);
    const k = await gateway.startKernel({ path: await workspace("a") });
    try {
      const r = await k.execute(`
import urllib.request, socket
print(urllib.request.urlopen("http://example.com/some/path", timeout=10).read().decode().strip())
try:
    socket.create_connection(("93.184.215.14", 80), timeout=3)
    print("direct")
except OSError as e:
    print(type(e).__name__)`);
      expect({ stdout: r.stdout, requests }).toEqual({
        stdout: "via-proxy\nOSError\n",
        requests: ["GET http://example.com/some/path HTTP/1.1"],
      });
    } finally {
      await k.shutdown();
    }
  });

  it("keep their history in memory only and reply without a pause, with all output (a kernel with a proxy starts the plain way)", async () => {
    const k = await gateway.startKernel({ path: await workspace("history") });
    try {
      expect(await cellsUnderOurSettings(k)).toEqual({ printed: AS_CONFIGURED, counted: 1, lostOutput: 0 });
    } finally {
      await k.shutdown();
    }
  });

  it("a shut-down kernel's socket directory is collected when the next kernel starts", async () => {
    const ipc = join(tmp, "state", "ipc");
    const first = await gateway.startKernel({ path: await workspace("b") });
    await first.shutdown();
    const second = await gateway.startKernel({ path: await workspace("c") });
    try {
      expect(await readdir(ipc)).toEqual([second.id]);
    } finally {
      await second.shutdown();
    }
  });
});
