import { mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { createLogger } from "@codeinterp/logger";
import type { KernelGateway, KernelSession } from "@codeinterp/kernel";
import { KernelPool } from "../src/kernels/pool";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "pool-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

// A gateway whose kernel start finishes only when the test says so: the pool logic alone is under test.
function slowGateway() {
  let finish: () => void = () => undefined;
  let onStart: () => void = () => undefined;
  const started = new Promise<void>((r) => (onStart = r));
  const shutdowns: string[] = [];
  const session = {
    id: "k1",
    isDead: false,
    status: "idle",
    connection: { connectionStatus: "connected" },
    shutdown: async () => void shutdowns.push("k1"),
  } as unknown as KernelSession;
  const gateway = {
    startKernel: () =>
      new Promise<KernelSession>((resolve) => {
        finish = () => resolve(session);
        onStart();
      }),
  } as unknown as KernelGateway;
  return { gateway, shutdowns, started, finish: () => finish() };
}

it("close waits for a kernel start under way, then shuts that kernel down and removes its directory", async () => {
  const g = slowGateway();
  const slot = { dir: path.join(dir, "slot"), path: "slot", disposable: true };
  await mkdir(slot.dir);
  const pool = new KernelPool({
    gateway: g.gateway,
    size: 1,
    log: createLogger({ name: "test", level: "silent" }),
    newSlot: async () => slot,
  });
  pool.refill();
  await g.started;
  let closed = false;
  const closing = pool.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 50));
  expect(closed).toBe(false);
  g.finish();
  await closing;
  expect(g.shutdowns).toEqual(["k1"]);
  await expect(stat(slot.dir)).rejects.toThrow(/ENOENT/);
  expect(pool.available).toBe(0);
});

it("a kernel start that fails removes the directory it was to wait in", async () => {
  const slot = { dir: path.join(dir, "failed-slot"), path: "failed-slot", disposable: true };
  await mkdir(slot.dir);
  let failed: () => void = () => undefined;
  const attempted = new Promise<void>((r) => (failed = r));
  const gateway = {
    startKernel: async () => {
      setImmediate(failed);
      throw new Error("gateway down");
    },
  } as unknown as KernelGateway;
  const pool = new KernelPool({
    gateway,
    size: 1,
    log: createLogger({ name: "test", level: "silent" }),
    newSlot: async () => slot,
  });
  pool.refill();
  await attempted;
  await expect
    .poll(() =>
      stat(slot.dir).then(
        () => "there",
        () => "gone",
      ),
    )
    .toBe("gone");
  await pool.close();
});

it("at the live-kernel ceiling the pool starts no kernel, and fills once a place is free", async () => {
  const g = slowGateway();
  const slot = { dir: path.join(dir, "ceiling-slot"), path: "ceiling-slot", disposable: false };
  await mkdir(slot.dir);
  let free = false;
  let asked = 0;
  const bound: string[] = [];
  const pool = new KernelPool({
    gateway: g.gateway,
    size: 1,
    log: createLogger({ name: "test", level: "silent" }),
    newSlot: async () => slot,
    reservePlace: async () => {
      asked++;
      return free ? { bind: async (id) => void bound.push(id), drop: async () => undefined } : null;
    },
  });
  let started = false;
  void g.started.then(() => (started = true));
  pool.refill();
  await expect.poll(() => asked).toBe(1);
  expect(started).toBe(false);
  free = true;
  // The pool asks again by itself (every 2 s) rather than waiting for the next take.
  await expect.poll(() => started, { timeout: 5000 }).toBe(true);
  g.finish();
  await expect.poll(() => pool.available).toBe(1);
  expect(bound).toEqual(["k1"]);
  await pool.close();
});

it("a kernel the pool cannot shut down is named in a warning, and closing goes on", async () => {
  const slot = { dir: path.join(dir, "stuck-slot"), path: "stuck-slot", disposable: true };
  await mkdir(slot.dir);
  const session = {
    id: "k-stuck",
    isDead: false,
    status: "idle",
    connection: { connectionStatus: "connected" },
    shutdown: () => Promise.reject(new Error("gateway unreachable")),
  } as unknown as KernelSession;
  const gateway = { startKernel: async () => session } as unknown as KernelGateway;
  const logged: Record<string, unknown>[] = [];
  const log = createLogger({
    name: "test",
    level: "warn",
    destination: { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const pool = new KernelPool({ gateway, size: 1, log, newSlot: async () => slot });
  pool.refill();
  await expect.poll(() => pool.available).toBe(1);
  await pool.close();
  expect(logged).toContainEqual(
    expect.objectContaining({ level: 40, kernelId: "k-stuck", err: "gateway unreachable" }),
  );
  // The rest of closing still ran: the kernel's directory is removed.
  await expect(stat(slot.dir)).rejects.toThrow(/ENOENT/);
});
