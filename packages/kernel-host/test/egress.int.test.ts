import { chown, mkdir } from "node:fs/promises";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EgressPolicy, parseEgressAllowlist } from "../src";
import type { KernelGateway } from "@codeinterp/kernel";
import type { LocalJupyter } from "../src";
import { startOwnServer } from "./helpers/own-server";
import type { OwnServer } from "./helpers/own-server";

// KERNEL_EGRESS=allowlist end to end: a sandboxed kernel (no network of its own) reaches what the operator
// listed, through the proxy the embedded server runs, with plain urllib and no code changes; nothing else.
let own: OwnServer;
let tmp: string;
let server: LocalJupyter;
let gateway: KernelGateway;
const servers: Server[] = [];
let port = 0;
let internalPort = 0;

async function listen(host: string, body: string): Promise<number> {
  const s = createServer((_req, res) => res.end(body));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, host, r));
  const addr = s.address();
  return typeof addr === "object" && addr ? addr.port : 0;
}

beforeAll(async () => {
  // The listed service, on a loopback address the kernel's NO_PROXY does not cover, so urllib uses the proxy.
  port = await listen("127.0.0.2", "listed service");
  // A service only a listed *name* (localhost) leads to: the proxy must refuse it, the name resolves to loopback.
  internalPort = await listen("127.0.0.1", "internal service");
  const policy = new EgressPolicy(parseEgressAllowlist(`127.0.0.2:${port}, localhost:${internalPort}`));
  own = await startOwnServer("egress-int", () => ({ egress: { policy } }));
  ({ tmp, server, gateway } = own);
});

afterAll(async () => {
  await own?.stop();
  for (const s of servers) s.close();
});

describe("egress allowlist (KERNEL_EGRESS=allowlist)", () => {
  it("a listed address answers through the proxy; an unlisted one, a listed name resolving to loopback and the metadata address do not", async () => {
    expect(server.sandbox.available).toBe(true);
    const dir = join(tmp, "root", "ws");
    await mkdir(dir);
    await chown(dir, 100_321, 100_321);
    const k = await gateway.startKernel({ path: "ws" });
    try {
      const r = await k.execute(`
import json, os, urllib.error, urllib.request
def get(url):
    try:
        return urllib.request.urlopen(url, timeout=10).read().decode()
    except urllib.error.HTTPError as e:
        return "HTTP %d" % e.code
    except Exception as e:
        return type(e).__name__
answers = {
    "listed": get("http://127.0.0.2:${port}/"),
    "unlisted": get("http://127.0.0.3:${port}/"),
    "metadata": get("http://169.254.169.254/latest/meta-data/"),
}
# NO_PROXY keeps localhost off the proxy (it is the sandbox's own loopback): code that drops it asks the proxy.
os.environ.pop("NO_PROXY", None); os.environ.pop("no_proxy", None)
answers["listed_name_on_loopback"] = get("http://localhost:${internalPort}/")
print(json.dumps(answers))`);
      expect(r.status).toBe("ok");
      expect(JSON.parse(r.stdout)).toEqual({
        listed: "listed service",
        unlisted: "HTTP 403",
        listed_name_on_loopback: "HTTP 403",
        metadata: "HTTP 403",
      });
    } finally {
      await k.shutdown();
    }
  });
});
