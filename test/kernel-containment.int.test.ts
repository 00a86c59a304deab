import { readdir } from "node:fs/promises";
import { createServer } from "node:net";
import type { Server } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { TEST_KERNEL_MEMORY_MB } from "./global-setup";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Sandboxed kernels have no network and hard caps (issue 11): each case is what a user running hostile
// code, or sharing the machine with someone who does, would notice. The run's Jupyter server gives every
// kernel a TEST_KERNEL_MEMORY_MB cap (test/global-setup.ts).
let stack: TestStack;
let mallory: ReturnType<typeof client>;
let alice: ReturnType<typeof client>;
let n = 0;
const msg = () => `contain-${++n}`;
const py = (s: unknown) => JSON.stringify(s);

/** A listener on every address of this machine, and one on an abstract unix socket: nothing may reach them. */
let tcpTrap: Server;
let abstractTrap: Server;
let trapConnections = 0;
const abstractName = `\0codeinterp-test-${process.pid}`;

beforeAll(async () => {
  stack = await startTestStack({ env: { KERNEL_SANDBOX: "on", KERNEL_POOL_SIZE: "1" } });
  mallory = client(stack.url, (await stack.newUser("mallory")).key);
  alice = client(stack.url, (await stack.newUser("alice")).key);
  const count = () => void trapConnections++;
  tcpTrap = createServer(count);
  abstractTrap = createServer(count);
  await new Promise<void>((r) => tcpTrap.listen(0, "0.0.0.0", r));
  await new Promise<void>((r) => abstractTrap.listen(abstractName, r));
});
afterAll(async () => {
  tcpTrap?.close();
  abstractTrap?.close();
  await stack?.close();
});

const hostAddresses = () =>
  Object.values(os.networkInterfaces())
    .flat()
    .filter((a) => a && a.family === "IPv4")
    .map((a) => a!.address);

const CONNECT = `
import socket
def attempt(family, address):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(address)
        return "CONNECTED"
    except OSError as e:
        return type(e).__name__
    finally:
        s.close()
`;

describe("a sandboxed kernel has no network", () => {
  it("cannot connect over TCP to Redis, Postgres, the API, the Jupyter server or any port on this machine's addresses", async () => {
    const ports = [
      6379,
      5432,
      Number(new URL(stack.url).port),
      Number(new URL(inject("jupyterUrl")).port),
      (tcpTrap.address() as { port: number }).port,
    ];
    const targets = hostAddresses().flatMap((host) => ports.map((port) => [host, port]));
    const code = `${CONNECT}
print(sorted({attempt(socket.AF_INET, (h, p)) for h, p in ${py(targets)}}))`;
    const done = await mallory.run({ messageId: msg(), code });
    expect({ stdout: done.result.stdout, trapped: trapConnections }).toEqual({
      stdout: expect.not.stringContaining("CONNECTED"),
      trapped: 0,
    });
  });

  it("cannot reach host unix sockets by path (Postgres, other kernels' channels) or abstract sockets", async () => {
    // Another user's kernel, alive while mallory looks for its sockets.
    await alice.run({ messageId: msg(), code: "x = 1" });
    const state = path.join(inject("testRoot"), "jupyter-state");
    const kernelSockets = [
      ...(await readdir(path.join(state, "ipc"))).flatMap((k) =>
        [1, 2, 3, 4, 5].map((i) => path.join(state, "ipc", k, `k-${i}`)),
      ),
      ...(await readdir(path.join(state, "runtime")))
        .filter((f) => f.includes("-ipc-"))
        .map((f) => path.join(state, "runtime", f)),
    ];
    expect(kernelSockets.length).toBeGreaterThanOrEqual(10);
    const code = `${CONNECT}
paths = ${py(["/var/run/postgresql/.s.PGSQL.5432", ...kernelSockets])}
print(sorted({attempt(socket.AF_UNIX, p) for p in paths}), attempt(socket.AF_UNIX, ${py(abstractName)}))`;
    const done = await mallory.run({ messageId: msg(), code });
    expect({ stdout: done.result.stdout, trapped: trapConnections }).toEqual({
      stdout: "['FileNotFoundError'] ConnectionRefusedError\n",
      trapped: 0,
    });
  });

  it("cannot resolve names", async () => {
    const done = await mallory.run({
      messageId: msg(),
      code: "import socket\ntry:\n    socket.getaddrinfo('example.com', 443)\n    print('resolved')\nexcept OSError as e:\n    print(type(e).__name__)",
    });
    expect(done.result.stdout).toBe("gaierror\n");
  });

  it("cannot read another kernel's output by subscribing to its channels", async () => {
    // With TCP on a shared loopback (the old design) this finds alice's iopub port in /proc/net/tcp and reads
    // her output: ZMQ PUB sockets accept any subscriber, and the HMAC key signs messages, it does not hide them.
    const secret = `alice-secret-${Date.now()}`;
    const victim = await alice.post("/v1/executions", {
      chatId: "c",
      messageId: msg(),
      code: `import time\nfor _ in range(60):\n    print(${py(secret)}, flush=True)\n    time.sleep(0.25)`,
    });
    await alice.waitForStatus(victim.body.id, "running", 30_000);
    const code = `
import os, time, zmq
ctx = zmq.Context.instance()
subs = []
def listen(endpoint):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(endpoint)
    subs.append(s)
for name in ("tcp", "tcp6"):
    for line in open("/proc/net/" + name).read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":
            listen(("tcp://127.0.0.1:%d" if name == "tcp" else "tcp://[::1]:%d") % int(local.split(":")[-1], 16))
for line in open("/proc/net/unix").read().splitlines()[1:]:
    parts = line.split()
    if len(parts) > 7 and parts[7].startswith("/"):
        listen("ipc://" + parts[7])
seen = b""
deadline = time.time() + 5
while time.time() < deadline:
    for s in subs:
        try:
            seen += b"".join(s.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            pass
    time.sleep(0.01)
# Reversed in the code: this cell's own text goes out on its own iopub, which it subscribes to as well.
print(${py([...secret].reverse().join(""))}[::-1].encode() in seen)
`;
    const spy = await mallory.run({ messageId: msg(), code }, 60_000);
    expect(spy.result.stdout).toBe("False\n");
  });
});

describe("a sandboxed kernel has hard caps", () => {
  it("going over the memory cap fails that execution with memory_limit, the message's next execution works, and another user's run is untouched", async () => {
    const m = msg();
    const [hog, bystander] = await Promise.all([
      mallory.run(
        { messageId: m, code: `x = b"\\x01" * (${2 * TEST_KERNEL_MEMORY_MB} << 20)\nprint("allocated")` },
        60_000,
      ),
      alice.run(
        { messageId: msg(), code: "import time\ny = [0] * 1000\ntime.sleep(3)\nprint('unharmed', len(y))" },
        60_000,
      ),
    ]);
    const next = await mallory.run({ messageId: m, code: "print('x' in dir())" });
    expect({
      hog: { status: hog.status, failure: hog.failure },
      next: { status: next.status, stdout: next.result.stdout, notes: next.result.notes },
      bystander: { status: bystander.status, stdout: bystander.result.stdout },
    }).toEqual({
      hog: {
        status: "failed",
        failure: {
          code: "memory_limit",
          message: expect.stringContaining(`memory limit of ${TEST_KERNEL_MEMORY_MB} MB`),
        },
      },
      next: {
        status: "completed",
        stdout: "False\n",
        notes: [expect.stringContaining("variables and imports from them were reset")],
      },
      bystander: { status: "completed", stdout: "unharmed 1000\n" },
    });
  });

  it("a fork bomb stops at the kernel's process cap and the kernel keeps its variables", async () => {
    const m = msg();
    await mallory.run({ messageId: m, code: "kept = 42" });
    const bomb = await mallory.run(
      {
        messageId: m,
        code: `
import os, time
children, error = [], None
try:
    for _ in range(100000):
        pid = os.fork()
        if pid == 0:
            # A fork bomb's children are small processes: a sleeping copy of the kernel would hit the memory
            # cap (copy-on-write pages) before the process cap.
            os.execv("/bin/sleep", ["sleep", "60"])
        children.append(pid)
except OSError as e:
    error = e.strerror
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
print(error, len(children) < 256, kept)`,
      },
      60_000,
    );
    expect(bomb.result.stdout).toBe("Resource temporarily unavailable True 42\n");
  });

  it("three messages spinning the CPU do not starve a fourth", async () => {
    const spinners = await Promise.all(
      [0, 1, 2].map(() =>
        mallory.post("/v1/executions", {
          chatId: "c",
          messageId: msg(),
          timeoutMs: 30_000,
          code: "import time\nt = time.time()\nwhile time.time() - t < 20:\n    pass",
        }),
      ),
    );
    for (const s of spinners) await mallory.waitForStatus(s.body.id, "running", 30_000);
    const started = Date.now();
    const fourth = await alice.run({ messageId: msg(), code: "print(sum(range(10**6)))" }, 60_000);
    const tookMs = Date.now() - started;
    for (const s of spinners) await mallory.post(`/v1/executions/${s.body.id}/cancel`);
    expect({ status: fourth.status, beforeSpinnersEnd: tookMs < 15_000 }).toEqual({
      status: "completed",
      beforeSpinnersEnd: true,
    });
  });
});

describe("a sandboxed kernel's CPU quota", () => {
  // numpy's OpenBLAS sizes its pool by the machine's cores; its idle threads spin before they sleep, which
  // under a 1-core quota took half the code's CPU (a matplotlib figure ran ~1.5x as long as unsandboxed).
  it("sizes numpy's BLAS thread pool to the quota's cores (KERNEL_CPUS, 1 here)", async () => {
    const code = [
      "import ctypes, numpy",
      "lib = next(l.split()[-1] for l in open('/proc/self/maps') if 'libopenblas' in l)",
      "print(ctypes.CDLL(lib).openblas_get_num_threads())",
    ].join("\n");
    const done = await alice.run({ messageId: msg(), code });
    expect({ status: done.status, stdout: done.result?.stdout, error: done.result?.error ?? null }).toEqual({
      status: "completed",
      stdout: "1\n",
      error: null,
    });
  });
});
