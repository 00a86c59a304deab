import { createServer } from "node:http";
import type { Server } from "node:http";
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { GatewayUnavailableError } from "../src/errors";
import { remoteKernelHost } from "../src/host";
import { createKernelGateway } from "../src/gateway";
import { probeGateway, watchGateway } from "../src/liveness";
import { silentLog } from "../src/log";
import { withTimeout } from "../src/session";

/**
 * An HTTP server that behaves like jupyter_server's status routes, and can freeze: it keeps accepting
 * connections and never answers, which is what a SIGSTOPped or wedged server looks like on the wire.
 */
async function fakeGateway(opts: { statusRoute?: boolean } = {}) {
  let frozen = false;
  let started = "2026-11-29T10:00:00.000000Z";
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    if (frozen) return;
    if (req.headers.authorization !== "token t0k") return void res.writeHead(403).end();
    if (req.url === "/api/status" && opts.statusRoute !== false)
      return void res.end(JSON.stringify({ started, kernels: 0 }));
    if (req.url === "/api") return void res.end(JSON.stringify({ version: "x" }));
    if (req.url?.startsWith("/api/kernels")) return void res.end("[]");
    res.writeHead(404).end();
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    freeze: (on: boolean) => (frozen = on),
    restart: () => (started = new Date().toISOString()),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

describe("probeGateway", () => {
  it("reads the server's start time, and falls back to /api on gateways without /api/status", async () => {
    const gw = await fakeGateway();
    const old = await fakeGateway({ statusRoute: false });
    closers.push(gw.close, old.close);
    expect(await probeGateway(gw.url, "t0k", 1000)).toEqual({ ok: true, started: "2026-11-29T10:00:00.000000Z" });
    expect(await probeGateway(old.url, "t0k", 1000)).toEqual({ ok: true, started: null });
    expect(await probeGateway(gw.url, "wrong", 1000)).toEqual({ ok: false, error: "HTTP 403" });
  });

  it("gives up on a server that accepts and never answers at its deadline", async () => {
    const gw = await fakeGateway();
    closers.push(gw.close);
    gw.freeze(true);
    const t0 = Date.now();
    expect(await probeGateway(gw.url, "t0k", 300)).toEqual({ ok: false, error: "no answer within 300 ms" });
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe("watchGateway", () => {
  it("declares a frozen gateway unresponsive after the window, ends waits on it at once, and sees it come back restarted", async () => {
    const gw = await fakeGateway();
    closers.push(gw.close);
    const changes: boolean[] = [];
    const monitor = watchGateway({
      baseUrl: gw.url,
      token: "t0k",
      log: silentLog,
      intervalMs: 100,
      probeTimeoutMs: 200,
      unresponsiveMs: 800,
      onChange: (h) => changes.push(h.reachable),
    });
    closers.push(() => monitor.stop());
    expect(await monitor.whenAnswered(2000)).toBe(true);
    expect(monitor.signal.aborted).toBe(false);

    // A request through the gateway client would wait its 30 s deadline; the monitor ends it instead.
    const gateway = createKernelGateway({
      baseUrl: gw.url,
      token: "t0k",
      log: silentLog,
      monitor,
      host: remoteKernelHost,
    });
    gw.freeze(true);
    const frozenAt = Date.now();
    const pending = gateway.listKernels();
    await expect(pending).rejects.toBeInstanceOf(GatewayUnavailableError);
    const endedAfter = Date.now() - frozenAt;
    expect(endedAfter).toBeGreaterThanOrEqual(700);
    expect(endedAfter).toBeLessThan(5000);
    expect(monitor.health().reachable).toBe(false);
    expect(monitor.signal.aborted).toBe(true);
    // While it is down, new calls fail at once instead of waiting.
    const t1 = Date.now();
    await expect(gateway.listKernels()).rejects.toBeInstanceOf(GatewayUnavailableError);
    expect(Date.now() - t1).toBeLessThan(1500);

    gw.restart();
    gw.freeze(false);
    expect(await monitor.whenAnswered(3000)).toBe(true);
    const health = monitor.health();
    expect(health).toMatchObject({ reachable: true, restarts: 1, lastError: null });
    expect(monitor.signal.aborted).toBe(false);
    expect(await gateway.listKernels()).toEqual([]);
    expect(changes).toEqual([false, true]);
  });

  it("one slow answer is not an outage", async () => {
    const gw = await fakeGateway();
    closers.push(gw.close);
    const monitor = watchGateway({
      baseUrl: gw.url,
      token: "t0k",
      log: silentLog,
      intervalMs: 100,
      probeTimeoutMs: 200,
      unresponsiveMs: 2000,
    });
    closers.push(() => monitor.stop());
    await monitor.whenAnswered(2000);
    gw.freeze(true);
    // A probe went unanswered (it waited past its 200 ms timeout), and that alone did not declare an outage.
    await expect.poll(() => monitor.health().lastError, { timeout: 1500 }).toMatch(/no answer/);
    expect(monitor.health().reachable).toBe(true);
    gw.freeze(false);
    expect(await monitor.whenAnswered(2000)).toBe(true);
    expect(monitor.health().reachable).toBe(true);
    expect(monitor.signal.aborted).toBe(false);
  });
});

describe("withTimeout", () => {
  it("ends a wait when the gateway is declared down, well before its deadline", async () => {
    const down = new AbortController();
    const wait = withTimeout(new Promise(() => undefined), 60_000, "kernel start", down.signal);
    setTimeout(() => down.abort(), 50);
    await expect(wait).rejects.toThrow(/kernel start abandoned: the kernel gateway is unresponsive/);
    await expect(withTimeout(new Promise(() => undefined), 50, "kernel start")).rejects.toThrow(
      /did not finish within 50 ms/,
    );
  });
});
