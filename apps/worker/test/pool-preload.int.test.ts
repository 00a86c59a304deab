import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { createKernelGateway, remoteKernelHost } from "@codeinterp/kernel";
import { createLogger } from "@codeinterp/logger";
import { KernelPool } from "../src/kernels/pool";

// A pool kernel that goes while its preload runs (deleted on the server, or lost with a server restart) never
// answers: the pool gives it up within seconds and starts another, instead of waiting out the preload's 60 s
// timeout with its refill stuck behind it. On the test run's real Jupyter server.
const log = createLogger({ name: "t", level: "silent" });
/** What the pool warns about (a refill that failed, and why). */
const warned: Array<{ msg?: string; err?: { message?: string } }> = [];
const poolLog = createLogger({
  name: "pool",
  level: "warn",
  destination: { write: (line: string) => void warned.push(JSON.parse(line) as (typeof warned)[number]) },
});
const gateway = createKernelGateway({
  baseUrl: inject("jupyterUrl"),
  token: inject("jupyterToken"),
  log,
  kernelName: "python3",
  host: remoteKernelHost,
});
let marks: string | undefined;
let pool: KernelPool | undefined;

afterAll(async () => {
  await pool?.close();
  if (marks) await rm(marks, { recursive: true, force: true });
});

describe("a pool kernel lost during its preload", () => {
  it("is replaced within seconds, not after the preload's timeout", { timeout: 90_000 }, async () => {
    marks = await mkdtemp(path.join(os.tmpdir(), "pool-preload-"));
    const mark = path.join(marks, "first");
    // The first kernel to preload names itself in the mark and then hangs, ignoring interrupts; later ones
    // find the mark and are done at once.
    const preload = [
      "import os, time",
      `if not os.path.exists(${JSON.stringify(mark)}):`,
      "    from ipykernel import get_connection_file",
      `    open(${JSON.stringify(mark)}, "w").write(get_connection_file())`,
      "    while True:",
      "        try:",
      "            time.sleep(3600)",
      "        except KeyboardInterrupt:",
      "            pass",
    ].join("\n");
    const ready: string[] = [];
    let slots = 0;
    pool = new KernelPool({
      gateway,
      size: 1,
      log: poolLog,
      preload,
      onReady: (id) => ready.push(id),
      newSlot: async () => {
        const name = `pool-preload-${process.pid}-${++slots}`;
        const dir = path.join(inject("testRoot"), name);
        await mkdir(dir, { recursive: true });
        return { path: name, dir, disposable: true };
      },
    });
    pool.refill();

    // The first kernel is preloading: it is deleted behind the pool's back, as a server restart loses it.
    const connectionFile = await expect
      .poll(() => readFile(mark, "utf8").catch(() => ""), { timeout: 60_000, interval: 100 })
      .not.toBe("")
      .then(() => readFile(mark, "utf8"));
    const lost = /kernel-([0-9a-f-]{36})\.json$/.exec(connectionFile)?.[1];
    expect(lost, `a kernel id in ${connectionFile}`).toBeDefined();
    const res = await fetch(`${inject("jupyterUrl")}/api/kernels/${lost}`, {
      method: "DELETE",
      headers: { authorization: `token ${inject("jupyterToken")}` },
    });
    expect(res.status).toBe(204);

    // Another kernel is ready well before the lost one's preload would have timed out (60 s).
    await expect.poll(() => ready.length, { timeout: 30_000, interval: 100 }).toBe(1);
    expect(ready[0]).not.toBe(lost);
    expect(pool.available).toBe(1);
    // Given up because a lookup found it gone, not because its websocket or its run said so.
    expect(warned.filter((w) => w.msg === "kernel pool refill failed").map((w) => w.err?.message)).toEqual([
      `pool kernel ${lost} vanished from the server during its preload`,
    ]);
  });
});
