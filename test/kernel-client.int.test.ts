// The Jupyter client (@codeinterp/kernel) against a real, unsandboxed server of its own: started with the
// host tooling, which the client package itself may not depend on, so this test lives with the cross-package ones.
import { access, mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  createKernelGateway,
  GatewayUnavailableError,
  InvalidKernelPathError,
  KernelDiedError,
  remoteKernelHost,
  silentLog,
} from "@codeinterp/kernel";
import { JUPYTER_PYTHON, startLocalJupyter } from "@codeinterp/kernel-host";
import { waitFor } from "./faults/harness";
import type { KernelEvent, KernelGateway, KernelSession } from "@codeinterp/kernel";
import type { LocalJupyter } from "@codeinterp/kernel-host";

let tmp: string;
let server: LocalJupyter;
let gateway: KernelGateway;
let main: KernelSession;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "kernel-int-"));
  server = await startLocalJupyter({
    rootDir: join(tmp, "root"),
    stateDir: join(tmp, "state"),
    port: 0,
    log: silentLog,
  });
  gateway = createKernelGateway({ baseUrl: server.url, token: server.token, log: silentLog, host: remoteKernelHost });
  main = await gateway.startKernel();
});

afterAll(async () => {
  await main?.shutdown().catch(() => undefined);
  await server?.stop();
  await rm(tmp, { recursive: true, force: true });
});

describe("kernel execution", () => {
  it("captures stdout", async () => {
    const r = await main.execute("print(1+1)");
    expect(r.status).toBe("ok");
    expect(r.stdout).toBe("2\n");
    expect(r.executionCount).toBeGreaterThan(0);
  });

  it("keeps stdout printed before an exception, with an ANSI-free error", async () => {
    const r = await main.execute("print('before')\n1/0");
    expect(r.status).toBe("error");
    expect(r.stdout).toBe("before\n");
    expect(r.error?.ename).toBe("ZeroDivisionError");
    expect(r.error?.evalue).toBe("division by zero");
    expect(r.error?.traceback.length).toBeGreaterThan(0);
    expect(r.error?.traceback.join("\n")).not.toContain("\u001b[");
  });

  it("streams stdout chunks before the run ends", async () => {
    const seen: Array<{ at: number; e: KernelEvent }> = [];
    const r = await main.execute(
      "import time\nfor _ in range(4):\n    print('tick', flush=True)\n    time.sleep(0.2)",
      {
        onEvent: (e) => seen.push({ at: Date.now(), e }),
      },
    );
    const end = Date.now();
    const ticks = seen.filter((s) => s.e.type === "stdout");
    expect(r.stdout).toBe("tick\n".repeat(4));
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(ticks[0]!.at).toBeLessThan(end - 400);
  });

  it("keeps variables across runs on one session", async () => {
    await main.execute("shared_value = 41");
    const r = await main.execute("print(shared_value + 1)");
    expect(r.stdout).toBe("42\n");
  });

  it("lets a second gateway attach to a running kernel and see its variables", async () => {
    const other = createKernelGateway({
      baseUrl: server.url,
      token: server.token,
      log: silentLog,
      host: remoteKernelHost,
    });
    const attached = await other.connectKernel(main.id);
    try {
      const r = await attached.execute("print(shared_value)");
      expect(r.stdout).toBe("41\n");
    } finally {
      attached.dispose();
    }
    expect((await gateway.listKernels()).map((k) => k.id)).toContain(main.id);
  });

  it("times out an endless loop by interrupt and the kernel lives on", async () => {
    const r = await main.execute("while True: pass", { timeoutMs: 1500 });
    expect(r.status).toBe("timeout");
    expect(r.kernelRestarted).toBe(false);
    const next = await main.execute("print(1+1)");
    expect(next.stdout).toBe("2\n");
    expect((await main.execute("print(shared_value)")).stdout).toBe("41\n");
  });

  it("cancels on abort", async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const r = await main.execute("import time\ntime.sleep(30)", { signal: ac.signal, timeoutMs: 20_000 });
    expect(r.status).toBe("cancelled");
    expect(r.durationMs).toBeLessThan(3000);
  });

  it("truncates 10 MB of output with a marker", async () => {
    const r = await main.execute("import sys\nsys.stdout.write('x' * (10 * 1024 * 1024))", { timeoutMs: 20_000 });
    expect(r.status).toBe("ok");
    expect(r.stdout.startsWith("x".repeat(1024 * 1024))).toBe(true);
    expect(r.stdout).toContain("[... output truncated: 9,437,184 bytes dropped ...]");
    expect(r.truncated.stdoutBytesDropped).toBe(9_437_184);
  });

  it("keeps every line of a loop that flushes each one, without tripping the server's rate limit", async () => {
    // 20,000 flushes in a second or two: one IOPub message each would be far over the server's 1,000 a second,
    // and the server would drop most of them (seen: 13-27 KB kept of 109 KB).
    const r = await main.execute("for i in range(20_000): print(i, flush=True)", { timeoutMs: 30_000 });
    expect(r.status).toBe("ok");
    expect(r.stdout).toBe(Array.from({ length: 20_000 }, (_, i) => `${i}\n`).join(""));
    expect(r.stderr).toBe("");
    // Flushes still show output while the code runs.
    const events: KernelEvent[] = [];
    const live = await main.execute("import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)", {
      onEvent: (e) => events.push(e),
    });
    expect(live.stdout).toBe("0\n1\n2\n");
    expect(events.filter((e) => e.type === "stdout").length).toBeGreaterThanOrEqual(3);
  });

  it("lines flushed just before the kernel dies all arrive: pacing leaves a short burst of flushes alone", async () => {
    // The pause lets ZMQ send what the last flush handed it (os._exit right after a flush can lose that one
    // message with or without pacing); it is shorter than ipykernel's 0.2 s timed flush.
    const s = await gateway.startKernel();
    try {
      const r = await s.execute(
        "import os, time\nfor i in range(50): print(i, flush=True)\ntime.sleep(0.05)\nos._exit(1)",
        {
          timeoutMs: 30_000,
        },
      );
      expect(r.status).toBe("died");
      expect(r.stdout).toBe(Array.from({ length: 50 }, (_, i) => `${i}\n`).join(""));
    } finally {
      await s.shutdown().catch(() => undefined);
    }
  });

  it("a run whose end-of-output signal is lost ends when its output stops, not at its deadline", async () => {
    // A flood of output can make the ZMQ queue between kernel and server drop the kernel's `idle` (seen with two
    // flooding kernels at once). Here the kernel is made to drop it, so the loss happens every time.
    const s = await gateway.startKernel();
    try {
      const dropIdle = [
        "k = get_ipython().kernel",
        "publish = k._publish_status",
        "k._publish_status = lambda status, *a, **kw: None if status == 'idle' else publish(status, *a, **kw)",
        "print('ran')",
      ].join("\n");
      const r = await s.execute(dropIdle, { timeoutMs: 30_000 });
      expect(r.status).toBe("ok");
      expect(r.stdout).toBe("ran\n");
      expect(r.outputEndLost).toBe(true);
      expect(r.durationMs).toBeLessThan(10_000);
      const next = await s.execute("k._publish_status = publish\nprint('next')");
      expect(next.status).toBe("ok");
      expect(next.stdout).toBe("next\n");
      expect(next.outputEndLost).toBe(false);
    } finally {
      await s.shutdown().catch(() => undefined);
    }
  });

  it("returns a matplotlib figure once, as image/png", async () => {
    const r = await main.execute(
      "%matplotlib inline\nimport matplotlib.pyplot as plt\nfig = plt.figure()\nplt.plot([1, 2])\nfig",
      {
        timeoutMs: 30_000,
      },
    );
    expect(r.status).toBe("ok");
    const images = r.outputs.filter((o) => o.mimeType === "image/png");
    expect(images).toHaveLength(1);
    expect(Buffer.from(images[0]!.data, "base64").subarray(1, 4).toString()).toBe("PNG");
  });
});

describe("kernel lifecycle", () => {
  it("starts the kernel in the given folder and refuses escapes", async () => {
    await mkdir(join(server.rootDir, "work", "msg1"), { recursive: true });
    const s = await gateway.startKernel({ path: "work/msg1" });
    try {
      const r = await s.execute("import os\nprint(os.getcwd())");
      expect(r.stdout.trim()).toBe(await realpath(join(server.rootDir, "work", "msg1")));
      // A hung kernel that ignores SIGINT is restarted after the grace period.
      const stuck = await s.execute("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass", {
        timeoutMs: 1000,
        interruptGraceMs: 500,
      });
      expect(stuck.status).toBe("timeout");
      expect(stuck.kernelRestarted).toBe(true);
      expect((await s.execute("print(1+1)")).stdout).toBe("2\n");
      // A crash mid-run is reported as "died" quickly.
      const started = Date.now();
      const died = await s.execute("import os\nos._exit(1)", { timeoutMs: 30_000 });
      expect(died.status).toBe("died");
      expect(Date.now() - started).toBeLessThan(8000);
    } finally {
      await s.shutdown();
    }
    await expect(gateway.startKernel({ path: "../escape" })).rejects.toThrow(InvalidKernelPathError);
    await expect(gateway.startKernel({ path: "/etc" })).rejects.toThrow(InvalidKernelPathError);
    await expect(gateway.startKernel({ path: "no/such/dir" })).rejects.toThrow(InvalidKernelPathError);
  });

  it(
    "a kernel that dies while starting fails the start with KernelDiedError, not at the start timeout",
    { timeout: 60_000 },
    async () => {
      // Exits at once, every time the server restarts it: the server gives it up after its restart limit.
      const spec = join(tmp, "state", "data", "kernels", "dies-at-start");
      await mkdir(spec, { recursive: true });
      await writeFile(
        join(spec, "kernel.json"),
        JSON.stringify({
          argv: ["/bin/sh", "-c", "exit 3", "{connection_file}"],
          display_name: "dies",
          language: "python",
        }),
      );
      const dying = createKernelGateway({
        baseUrl: server.url,
        token: server.token,
        log: silentLog,
        kernelName: "dies-at-start",
        kernelStartTimeoutMs: 600_000,
        host: remoteKernelHost,
      });
      await expect(dying.startKernel()).rejects.toThrow(KernelDiedError);
    },
  );

  it("reports an unreachable gateway with a named error", async () => {
    const dead = createKernelGateway({
      baseUrl: "http://127.0.0.1:9",
      token: "x",
      log: silentLog,
      host: remoteKernelHost,
    });
    await expect(dead.ping()).rejects.toThrow(GatewayUnavailableError);
    await expect(dead.startKernel()).rejects.toThrow(GatewayUnavailableError);
  });
});

describe("a kernel the server cannot start", () => {
  // jupyter_server answers 500 "Unhandled error" when the kernel process does not come up (here: a kernelspec
  // it does not have; in production: ports taken, the server mid-restart). That is a kernel that died while
  // starting (the worker retries it once), not an unknown internal error.
  it("is reported as KernelDiedError", async () => {
    const broken = createKernelGateway({
      baseUrl: server.url,
      token: server.token,
      log: silentLog,
      kernelName: "no-such-kernelspec",
      host: remoteKernelHost,
    });
    await expect(broken.startKernel()).rejects.toBeInstanceOf(KernelDiedError);
  });
});

describe("a new kernel whose server restarts during its setup", () => {
  // The faults suite saw it: a message's first execution got a kernel that answered kernel_info just before
  // the server restarted. The kernel went with the old server (the new one answers 404 for it) and the
  // websocket only reconnects to nothing, so the setup cell waited out the whole start timeout. The start must
  // fail as a kernel that died (callers retry it once) as soon as the kernel is looked up.
  // Stopped in a hook, which runs even when the test times out (its own finally would not, and the server
  // would outlive the run).
  let dir: string | undefined;
  let jupyter: LocalJupyter | undefined;
  afterEach(async () => {
    await jupyter?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    jupyter = dir = undefined;
  });

  it("fails with KernelDiedError once the kernel is gone, not at the start timeout", async () => {
    dir = await mkdtemp(join(tmpdir(), "kernel-setup-restart-"));
    const opts = { rootDir: join(dir, "root"), stateDir: join(dir, "state"), log: silentLog };
    // A kernel whose first cell (the setup cell) hangs, so the restart lands inside it every time.
    const spec = join(dir, "state", "data", "kernels", "setup-hangs");
    await mkdir(spec, { recursive: true });
    await writeFile(
      join(spec, "kernel.json"),
      JSON.stringify({
        argv: [
          JUPYTER_PYTHON,
          "-m",
          "ipykernel_launcher",
          "-f",
          "{connection_file}",
          // Marks that it runs, and is deaf to the interrupt the server's shutdown sends (a hook that returned
          // would let the cell end "ok").
          `--IPKernelApp.exec_lines=exec("def _hang(*a):\\n open('in-setup', 'w').close()\\n while True:\\n  try: __import__('time').sleep(600)\\n  except KeyboardInterrupt: pass\\nget_ipython().events.register('pre_run_cell', _hang)")`,
        ],
        display_name: "setup hangs",
        language: "python",
      }),
    );
    jupyter = await startLocalJupyter({ ...opts, port: 0 });
    const gw = createKernelGateway({
      baseUrl: jupyter.url,
      token: jupyter.token,
      log: silentLog,
      kernelName: "setup-hangs",
      // Far longer than the test: a start that waited for its timeout would fail the test.
      kernelStartTimeoutMs: 600_000,
      host: remoteKernelHost,
    });
    const starting = gw.startKernel();
    starting.catch(() => undefined);
    // The hook marks that the setup cell runs (the kernel's cwd is the server's root).
    const marker = join(dir, "root", "in-setup");
    await waitFor(
      () =>
        access(marker).then(
          () => true,
          () => false,
        ),
      30_000,
      "setup under way",
    );
    await jupyter.stop();
    jupyter = await startLocalJupyter({ ...opts, port: Number(new URL(jupyter.url).port), token: jupyter.token });
    await expect(starting).rejects.toBeInstanceOf(KernelDiedError);
  }, 60_000);
});
