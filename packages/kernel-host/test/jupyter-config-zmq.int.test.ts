import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKernelGateway, remoteKernelHost, silentLog } from "@codeinterp/kernel";
import { JUPYTER_PYTHON, JUPYTER_ZMQ_SAFETY_CONFIG, startLocalJupyter } from "../src";

/**
 * Runs against the installed jupyter_client / jupyter_server: the sockets the server opens to a kernel,
 * how a send that cannot proceed ends, and what is left of a kernel the server gave up on.
 */
const CHECK = `
import json, sys, time, socket, zmq
from traitlets.config import Config
c = Config()  # what a jupyter_server config file fills in
get_config = lambda: c
if len(sys.argv) > 1:
    exec(open(sys.argv[1]).read())
from jupyter_client import KernelManager
from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
from zmq.eventloop.zmqstream import ZMQStream
def free():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
km = KernelManager(ip="127.0.0.1", shell_port=free(), control_port=free(), iopub_port=free(), stdin_port=free(), hb_port=free())
sock = km.connect_control()
out = {"sndtimeo": sock.getsockopt(zmq.SNDTIMEO), "reconnectIvlMax": sock.getsockopt(zmq.RECONNECT_IVL_MAX), "maxSockets": zmq.Context().get(zmq.MAX_SOCKETS)}
sock.setsockopt(zmq.SNDHWM, 1)
if out["sndtimeo"] < 0:
    sock.setsockopt(zmq.SNDTIMEO, 3000)  # only so this check ends: unpatched, the send would block forever
t = time.time()
try:
    while True:
        sock.send(b"x")
except zmq.Again:
    out["sendGaveUpAfterS"] = round(time.time() - t, 1)
mkm = MappingKernelManager()
stream = ZMQStream(km.connect_shell())
mkm._kernels["k1"] = km
mkm._kernel_buffers["k1"] = {"session_key": "s", "buffer": [], "channels": {"shell": stream}}
mkm._handle_kernel_died("k1")
out["bufferedStreamClosedWithDeadKernel"] = stream.closed()
print(json.dumps(out))
`;

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "zmq-safety-"));
  await writeFile(join(tmp, "check.py"), CHECK);
  await writeFile(join(tmp, "snippet.py"), JUPYTER_ZMQ_SAFETY_CONFIG);
});
afterAll(async () => rm(tmp, { recursive: true, force: true }));

const check = (...args: string[]) => {
  const r = spawnSync(JUPYTER_PYTHON, [join(tmp, "check.py"), ...args], { encoding: "utf8", timeout: 60_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, number | boolean>;
};

describe("the ZMQ safety config for jupyter_server 1.23 / jupyter_client 7.4", () => {
  it("stock: a send can block forever, reconnects never back off, a dead kernel's buffered streams stay open, and ~100 kernels exhaust the sockets", () => {
    expect(check()).toMatchObject({
      sndtimeo: -1,
      reconnectIvlMax: 0,
      bufferedStreamClosedWithDeadKernel: false,
      maxSockets: 1023,
    });
  });

  it("patched: a send that cannot proceed gives up after 1 s, reconnects back off to 5 s, the streams close, and sockets are bounded by file descriptors", () => {
    const r = check(join(tmp, "snippet.py"));
    expect(r).toMatchObject({
      sndtimeo: 1000,
      reconnectIvlMax: 5000,
      bufferedStreamClosedWithDeadKernel: true,
      maxSockets: 65536,
    });
    expect(r.sendGaveUpAfterS).toBeLessThan(2);
  });

  it("the supervised local server runs with it, and starts kernels and runs code", async () => {
    const stateDir = join(tmp, "state");
    const server = await startLocalJupyter({ rootDir: join(tmp, "root"), stateDir, log: silentLog, sandbox: false });
    try {
      expect(check(join(stateDir, "config", "jupyter_server_config.py"))).toMatchObject({
        sndtimeo: 1000,
        reconnectIvlMax: 5000,
        bufferedStreamClosedWithDeadKernel: true,
      });
      const gateway = createKernelGateway({
        baseUrl: server.url,
        token: server.token,
        log: silentLog,
        host: remoteKernelHost,
      });
      const s = await gateway.startKernel();
      expect((await s.execute("print(6 * 7)")).stdout).toBe("42\n");
      await s.interrupt();
      await s.restart();
      expect((await s.execute("print('again')")).stdout).toBe("again\n");
      await s.shutdown();
    } finally {
      await server.stop();
    }
  });
});
