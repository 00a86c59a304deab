import { hostname } from "node:os";
import { request } from "node:http";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KernelAPI, KernelConnection, KernelManager, ServerConnection } from "@jupyterlab/services";
import type { Kernel, KernelMessage } from "@jupyterlab/services";
import { WebSocket } from "ws";
import { startApiServer } from "../apps/api/src/server";
import type { RunningApi } from "../apps/api/src/server";
import { loadApiEnv } from "../apps/api/src/env";
import { createDb } from "@codeinterp/db";
import { createLogger } from "@codeinterp/logger";
import { createRedis, liveKernelsKey, cellKeyPrefix } from "@codeinterp/queue";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// The Jupyter surface at /jupyter driven by @jupyterlab/services 7.6.6, the published client JupyterLab
// uses (it negotiates the v1.kernel.websocket.jupyter.org binary subprotocol).

let stack: TestStack;
let key: string;
let otherKey: string;
let settings: ServerConnection.ISettings;
let manager: KernelManager;

beforeAll(async () => {
  stack = await startTestStack({
    env: { KERNEL_POOL_SIZE: "1", KERNEL_INTERRUPT_GRACE_MS: "1000", JUPYTER_MAX_MESSAGE_BYTES: "65536" },
  });
  key = (await stack.newUser("jane")).key;
  otherKey = (await stack.newUser("mallory")).key;
  settings = settingsFor(key);
  manager = new KernelManager({ serverSettings: settings });
  await manager.ready;
});
afterAll(async () => {
  manager?.dispose();
  await stack?.close();
});

function settingsFor(token: string, url = stack.url): ServerConnection.ISettings {
  const base = `${url}/jupyter/`;
  return ServerConnection.makeSettings({ baseUrl: base, wsUrl: base.replace(/^http/, "ws"), token, appendToken: true });
}

/** Runs code and collects the iopub messages of that request, and its reply. */
async function run(kernel: Kernel.IKernelConnection, code: string) {
  const iopub: KernelMessage.IIOPubMessage[] = [];
  const future = kernel.requestExecute({ code, stop_on_error: true });
  future.onIOPub = (m) => {
    iopub.push(m);
  };
  const reply = (await future.done) as KernelMessage.IExecuteReplyMsg;
  return { iopub, reply, types: iopub.map((m) => m.header.msg_type) };
}

describe("the Jupyter surface with @jupyterlab/services", () => {
  it("starts a python3 kernel, runs code with stream, display_data, execute_result and error, and keeps variables", async () => {
    expect(await (await fetch(`${stack.url}/jupyter/api`)).json()).toMatchObject({ version: expect.any(String) });
    const doc = (await (await fetch(`${stack.url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/jupyter/api/kernels", "/jupyter/api/kernels/{id}/channels", "/jupyter/login"]),
    );
    const specs = (await (await fetch(`${stack.url}/jupyter/api/kernelspecs?token=${key}`)).json()) as {
      default: string;
    };
    expect(specs.default).toBe("python3");

    const kernel = await manager.startNew({ name: "python3" });
    expect(kernel.name).toBe("python3");
    const info = await kernel.info;
    expect(info.language_info.name).toBe("python");
    // The server chose the binary subprotocol the client offered.
    expect((kernel as unknown as { _selectedProtocol: string })._selectedProtocol).toBe(
      "v1.kernel.websocket.jupyter.org",
    );

    const printed = await run(kernel, "import sys\nx = 20\nprint('hello', flush=True)\nprint('oops', file=sys.stderr)");
    expect(printed.reply.content.status).toBe("ok");
    expect(printed.types[0]).toBe("status");
    expect((printed.iopub[0]!.content as { execution_state: string }).execution_state).toBe("busy");
    expect(printed.types[1]).toBe("execute_input");
    expect(printed.types.at(-1)).toBe("status");
    expect((printed.iopub.at(-1)!.content as { execution_state: string }).execution_state).toBe("idle");
    const streams = printed.iopub
      .filter((m) => m.header.msg_type === "stream")
      .map((m) => m.content as { name: string; text: string });
    expect(
      streams
        .filter((s) => s.name === "stdout")
        .map((s) => s.text)
        .join(""),
    ).toBe("hello\n");
    expect(
      streams
        .filter((s) => s.name === "stderr")
        .map((s) => s.text)
        .join(""),
    ).toBe("oops\n");
    for (const m of printed.iopub)
      expect(m.parent_header).toMatchObject({ msg_id: printed.reply.parent_header.msg_id });

    const value = await run(kernel, "from IPython.display import display, HTML\ndisplay(HTML('<b>hi</b>'))\nx * 2 + 2");
    const shown = value.iopub.find((m) => m.header.msg_type === "display_data")!;
    expect((shown.content as { data: Record<string, string> }).data["text/html"]).toBe("<b>hi</b>");
    const result = value.iopub.find((m) => m.header.msg_type === "execute_result")!;
    expect((result.content as { data: Record<string, string> }).data["text/plain"]).toBe("42");
    expect(value.reply.content.execution_count).toBe(2);

    const failed = await run(kernel, "1 / 0");
    expect(failed.reply.content.status).toBe("error");
    const error = failed.iopub.find((m) => m.header.msg_type === "error")!.content as {
      ename: string;
      traceback: string[];
    };
    expect(error.ename).toBe("ZeroDivisionError");
    expect(error.traceback.join("\n")).toContain("division by zero");

    // Requests this surface does not serve are answered, not left hanging.
    const completion = await kernel.requestComplete({ code: "x.", cursor_pos: 2 });
    expect(completion.content.status).toBe("ok");
    const inspection = await kernel.requestInspect({ code: "x", cursor_pos: 1, detail_level: 0 });
    expect(inspection.content.status).toBe("ok");
    const history = await kernel.requestHistory({ output: false, raw: true, hist_access_type: "tail", n: 5 });
    expect(history.content.status).toBe("ok");

    await kernel.shutdown();
    expect((await fetch(`${stack.url}/jupyter/api/kernels/${kernel.id}?token=${key}`)).status).toBe(404);
  });

  it("interrupts a `while True` loop, restarts into a fresh kernel (files kept), and lists only the caller's kernels", async () => {
    const kernel = await manager.startNew();
    await run(kernel, "y = 5\nopen('/mnt/data/kept.txt', 'w').write('still here')");
    const looping = run(kernel, "import time\nprint('looping', flush=True)\nwhile True:\n    time.sleep(0.01)");
    await waitFor(async () => (await KernelAPI.getKernelModel(kernel.id, settings))?.execution_state === "busy");
    await kernel.interrupt();
    const interrupted = await looping;
    expect(interrupted.reply.content.status).toBe("error");
    expect(interrupted.iopub.find((m) => m.header.msg_type === "error")!.content).toMatchObject({
      ename: "KeyboardInterrupt",
    });
    // The kernel lives on after an interrupt.
    expect(
      (await run(kernel, "print(y)")).iopub.some(
        (m) => m.header.msg_type === "stream" && (m.content as { text: string }).text === "5\n",
      ),
    ).toBe(true);

    await kernel.restart();
    const after = await run(kernel, "print('y' in globals(), open('/mnt/data/kept.txt').read())");
    const out = after.iopub
      .filter((m) => m.header.msg_type === "stream")
      .map((m) => (m.content as { text: string }).text)
      .join("");
    expect(out).toContain("False still here");

    const mine = await KernelAPI.listRunning(settings);
    expect(mine.map((k) => k.id)).toContain(kernel.id);
    expect((await KernelAPI.listRunning(settingsFor(otherKey))).map((k) => k.id)).not.toContain(kernel.id);
    await kernel.shutdown();
  });

  it("reports the files the code wrote as a stream with signed download links that need no key", async () => {
    const kernel = await manager.startNew();
    const wrote = await run(kernel, "open('/mnt/data/report.csv', 'w').write('a,b\\n1,2\\n')");
    const text = wrote.iopub
      .filter((m) => m.header.msg_type === "stream")
      .map((m) => (m.content as { text: string }).text)
      .join("");
    const link = /report\.csv: (http\S+)/.exec(text)?.[1];
    expect(link).toBeDefined();
    // Signed: the chat user clicking it in Open WebUI has no codeinterp key.
    expect(link).toMatch(/\/links\/[0-9a-f-]+\?expires=\d+&signature=/);
    const download = await fetch(link!);
    expect(await download.text()).toBe("a,b\n1,2\n");
    // The same execution is a normal record of this user's, under the kernel's message.
    const listed = await client(stack.url, key).get("/v1/chats/jupyter/files");
    expect(JSON.stringify(listed.body)).toContain("report.csv");
    await kernel.shutdown();
  });

  it("answers 404 for another user's kernel, over REST and the websocket, and 401 without a key", async () => {
    const kernel = await manager.startNew();
    const base = `${stack.url}/jupyter/api/kernels/${kernel.id}`;
    expect((await fetch(`${base}?token=${otherKey}`)).status).toBe(404);
    expect((await fetch(base, { method: "DELETE", headers: { authorization: `token ${otherKey}` } })).status).toBe(404);
    expect(
      (await fetch(`${base}/interrupt`, { method: "POST", headers: { authorization: `Bearer ${otherKey}` } })).status,
    ).toBe(404);
    expect(
      (await fetch(`${base}/restart`, { method: "POST", headers: { authorization: `Bearer ${otherKey}` } })).status,
    ).toBe(404);
    expect((await fetch(`${stack.url}/jupyter/api/kernels`)).status).toBe(401);
    expect(await upgradeStatus(`${base}/channels?token=${otherKey}`)).toBe(404);
    expect(await upgradeStatus(`${base}/channels`)).toBe(401);
    expect(await upgradeStatus(`${base}/channels?token=${key}`)).toBe(101);
    await kernel.shutdown();
  });

  it("a login session needs X-XSRFToken to change things, and its websocket refuses another site's Origin", async () => {
    const page = await fetch(`${stack.url}/jupyter/login`);
    const xsrf = /_xsrf=([^;]+)/.exec(page.headers.get("set-cookie") ?? "")?.[1];
    expect(xsrf).toBeDefined();
    const login = await fetch(`${stack.url}/jupyter/login`, {
      method: "POST",
      headers: { cookie: `_xsrf=${xsrf}`, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ _xsrf: xsrf!, password: key }).toString(),
      redirect: "manual",
    });
    expect(login.status).toBe(302);
    const session = /codeinterp-jupyter=([^;]+)/.exec(login.headers.get("set-cookie") ?? "")?.[1];
    const cookie = `_xsrf=${xsrf}; codeinterp-jupyter=${session}`;
    expect((await fetch(`${stack.url}/jupyter/api/kernels`, { method: "POST", headers: { cookie } })).status).toBe(403);
    const started = await fetch(`${stack.url}/jupyter/api/kernels`, {
      method: "POST",
      headers: { cookie, "x-xsrftoken": xsrf! },
    });
    expect(started.status).toBe(201);
    const { id } = (await started.json()) as { id: string };
    const channels = `${stack.url}/jupyter/api/kernels/${id}/channels`;
    expect(await upgradeStatus(channels, { cookie, origin: "http://evil.example" })).toBe(403);
    expect(await upgradeStatus(channels, { cookie })).toBe(101);
    expect(
      (
        await fetch(`${stack.url}/jupyter/api/kernels/${id}`, {
          method: "DELETE",
          headers: { cookie, "x-xsrftoken": xsrf! },
        })
      ).status,
    ).toBe(204);
  });

  it("plain JSON frames (no subprotocol): comms, stdin, debug and shutdown requests are answered, never left hanging", async () => {
    const kernel = await KernelAPI.startNew({ name: "python3" }, settings);
    const ws = new WebSocket(
      `${stack.url.replace(/^http/, "ws")}/jupyter/api/kernels/${kernel.id}/channels?token=${key}`,
    );
    await new Promise((resolve) => ws.once("open", resolve));
    expect(ws.protocol).toBe("");
    const got: Array<{
      msg_type: string;
      channel: string;
      parent_header: { msg_id?: string };
      content: Record<string, unknown>;
    }> = [];
    ws.on("message", (data) => got.push(JSON.parse(String(data)) as (typeof got)[number]));
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    const send = (channel: string, type: string, content: Record<string, unknown>) => {
      const id = `${type}-${Math.random()}`;
      ws.send(
        JSON.stringify({
          header: { msg_id: id, msg_type: type, session: "s", username: "u", version: "5.3" },
          parent_header: {},
          metadata: {},
          content,
          channel,
        }),
      );
      return id;
    };
    const answerTo = async (id: string, type: string) => {
      await waitFor(async () => got.some((m) => m.parent_header.msg_id === id && m.msg_type === type));
      return got.find((m) => m.parent_header.msg_id === id && m.msg_type === type)!;
    };
    expect((await answerTo(send("shell", "kernel_info_request", {}), "kernel_info_reply")).content.status).toBe("ok");
    expect(
      (await answerTo(send("control", "debug_request", { command: "initialize" }), "debug_reply")).content.status,
    ).toBe("error");
    expect(
      (
        await answerTo(
          send("shell", "comm_open", { comm_id: "c1", target_name: "jupyter.widget", data: {} }),
          "comm_close",
        )
      ).content.comm_id,
    ).toBe("c1");
    expect((await answerTo(send("shell", "comm_info_request", {}), "comm_info_reply")).content.comms).toEqual({});
    send("stdin", "input_reply", { value: "x" });
    // Code asking for input gets an error at once, even from a client that offers stdin: nobody would answer.
    const asking = send("shell", "execute_request", {
      code: "input('name? ')",
      allow_stdin: true,
      stop_on_error: false,
    });
    expect((await answerTo(asking, "execute_reply")).content).toMatchObject({
      status: "error",
      ename: "StdinNotImplementedError",
    });
    // Source with a NUL is answered as Python answers it, not as a failure to retry.
    const nul = send("shell", "execute_request", { code: "print(1)\0", stop_on_error: false });
    expect((await answerTo(nul, "execute_reply")).content).toMatchObject({ status: "error", ename: "SyntaxError" });
    // stop_on_error: a request queued behind a failing one is aborted; one sent after the failure runs.
    const failing = send("shell", "execute_request", { code: "1 / 0", stop_on_error: true });
    const queuedBehind = send("shell", "execute_request", { code: "print('never')" });
    expect((await answerTo(failing, "execute_reply")).content.status).toBe("error");
    expect((await answerTo(queuedBehind, "execute_reply")).content.status).toBe("aborted");
    const later = send("shell", "execute_request", { code: "print('after')" });
    expect((await answerTo(later, "execute_reply")).content.status).toBe("ok");
    const printed = got.filter((m) => m.msg_type === "stream").map((m) => m.content.text);
    expect(printed).toEqual(["after\n"]);
    const shutdown = await answerTo(send("control", "shutdown_request", { restart: false }), "shutdown_reply");
    expect(shutdown.channel).toBe("control");
    expect(await closed).toBe(1000);
    expect((await fetch(`${stack.url}/jupyter/api/kernels/${kernel.id}?token=${key}`)).status).toBe(404);
  });

  it("closes a websocket that sends malformed or huge frames, and keeps serving", async () => {
    const kernel = await manager.startNew();
    const url = `${stack.url.replace(/^http/, "ws")}/jupyter/api/kernels/${kernel.id}/channels?token=${key}`;
    for (const frame of [
      "not json",
      JSON.stringify({ header: { msg_type: 5 } }),
      "x".repeat(100_000),
      new Uint8Array([1, 2, 3]),
    ]) {
      const ws = new WebSocket(url);
      const closed = new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
      await new Promise((resolve) => ws.addEventListener("open", resolve));
      ws.send(frame);
      expect([1007, 1009]).toContain(await closed);
    }
    // v1 binary frames with a lying offset table.
    const v1 = new WebSocket(url, ["v1.kernel.websocket.jupyter.org"]);
    const v1Closed = new Promise<number>((resolve) => v1.addEventListener("close", (e) => resolve(e.code)));
    await new Promise((resolve) => v1.addEventListener("open", resolve));
    const lying = new DataView(new ArrayBuffer(64));
    lying.setBigUint64(0, 6n, true);
    lying.setBigUint64(8, 1_000_000n, true);
    v1.send(lying.buffer);
    expect(await v1Closed).toBe(1007);
    // A flood of execute_requests: beyond 32 waiting on one connection, each is refused at once.
    const flood = new WebSocket(url);
    await new Promise((resolve) => flood.once("open", resolve));
    const refused: string[] = [];
    flood.on("message", (data) => {
      const m = JSON.parse(String(data)) as { msg_type: string; content: { status?: string; evalue?: string } };
      if (m.msg_type === "execute_reply" && m.content.status === "error" && m.content.evalue?.includes("are waiting"))
        refused.push(m.content.evalue);
    });
    const request = (code: string) =>
      JSON.stringify({
        header: {
          msg_id: `m-${Math.random()}`,
          msg_type: "execute_request",
          session: "s",
          username: "u",
          version: "5.3",
        },
        parent_header: {},
        metadata: {},
        content: { code },
        channel: "shell",
      });
    flood.send(request("import time\ntime.sleep(2)"));
    for (let i = 0; i < 40; i++) flood.send(request("1"));
    await waitFor(async () => refused.length >= 8);
    flood.close();
    // An upgrade whose request target is not a path.
    for (const target of ["http://[::1", "/jupyter/api/kernels/%zz/channels?token=%"]) {
      const answer = await new Promise<string>((resolve) => {
        const raw = connect(Number(new URL(stack.url).port), "127.0.0.1", () =>
          raw.write(
            `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
          ),
        );
        let got = "";
        raw.on("data", (d) => (got += String(d)));
        raw.on("close", () => resolve(got.split("\r\n")[0] ?? ""));
        raw.on("error", () => resolve(got));
      });
      expect(answer).toMatch(/^HTTP\/1\.1 (400|401|404)/);
    }
    // The process is up and the kernel still runs code.
    expect((await fetch(`${stack.url}/healthz`)).status).toBe(200);
    const fresh = manager.connectTo({ model: { id: kernel.id, name: "python3" } });
    const ok = await run(fresh, "print('alive')");
    expect(ok.reply.content.status).toBe("ok");
    await fresh.shutdown();
  });
});

describe("the Jupyter surface behind more than one API instance", () => {
  it("a kernel started through one instance runs over another's websocket, and is interrupted and shut down through the first", async () => {
    // A second API on the same database, Redis and queue: kernel records and executions are shared, not per process.
    const other: RunningApi = await startApiServer(
      loadApiEnv(stack.env),
      createLogger({ name: "test", level: "silent" }),
    );
    let kernel: KernelConnection | undefined;
    try {
      const model = await KernelAPI.startNew({ name: "python3" }, settings);
      kernel = new KernelConnection({ model, serverSettings: settingsFor(key, other.url) });
      const printed = await run(kernel, "z = 7\nprint(z)");
      expect(
        printed.iopub.some((m) => m.header.msg_type === "stream" && (m.content as { text: string }).text === "7\n"),
      ).toBe(true);
      const looping = run(kernel, "import time\nwhile True:\n    time.sleep(0.01)");
      await waitFor(async () => (await KernelAPI.getKernelModel(model.id, settings))?.execution_state === "busy");
      await KernelAPI.interruptKernel(model.id, settings);
      const interrupted = await looping;
      expect(interrupted.iopub.find((m) => m.header.msg_type === "error")?.content).toMatchObject({
        ename: "KeyboardInterrupt",
      });
      await KernelAPI.shutdownKernel(model.id, settings);
      expect((await fetch(`${other.url}/jupyter/api/kernels/${model.id}?token=${key}`)).status).toBe(404);
      // The other instance's open websocket runs nothing more on a kernel shut down elsewhere.
      const late = await run(kernel, "print(z)");
      expect(late.reply.content).toMatchObject({ status: "error", ename: "DeadKernelError" });
    } finally {
      kernel?.dispose();
      await other.close(2000);
    }
  });
});

describe("a kernel of the Jupyter surface left unused", () => {
  let idle: TestStack;
  beforeAll(async () => {
    idle = await startTestStack({
      env: { KERNEL_POOL_SIZE: "0", KERNEL_IDLE_TTL_MS: "5000", JUPYTER_KERNEL_IDLE_MS: "5000" },
    });
  });
  afterAll(async () => idle?.close());

  it("holds a place under the live-kernel ceiling while it lives, and is culled when idle", async () => {
    const { key: idleKey } = await idle.newUser("idler");
    const idleSettings = settingsFor(idleKey, idle.url);
    const model = await KernelAPI.startNew({}, idleSettings);
    const kernel = new KernelConnection({ model, serverSettings: idleSettings });
    const redis = createRedis(idle.env.REDIS_URL!, { name: "test" });
    const db = createDb({ url: idle.databaseUrl });
    try {
      expect((await run(kernel, "print('hi')")).reply.content.status).toBe("ok");
      const execution = await db.execution.findFirstOrThrow({ where: { messageId: `jupyter-${model.id}` } });
      const gatewayKernel = `${idle.env.JUPYTER_URL}/api/kernels/${execution.kernelId}?token=${idle.env.JUPYTER_TOKEN}`;
      const lease = () =>
        redis.zscore(liveKernelsKey(cellKeyPrefix(idle.queuePrefix, hostname())), execution.kernelId!);
      // The ceiling counts unexpired leases: the Jupyter kernel's message kernel holds one.
      expect(Number(await lease())).toBeGreaterThan(Date.now());
      expect((await fetch(gatewayKernel)).status).toBe(200);

      await waitFor(
        async () => (await fetch(`${idle.url}/jupyter/api/kernels/${model.id}?token=${idleKey}`)).status === 404,
      );
      await waitFor(async () => (await fetch(gatewayKernel)).status === 404 && (await lease()) === null);
      expect((await KernelAPI.listRunning(idleSettings)).map((k) => k.id)).not.toContain(model.id);
      // A client still connected is told the kernel is gone rather than left waiting.
      const late = await run(kernel, "print('again')");
      expect(late.reply.content).toMatchObject({ status: "error", ename: "DeadKernelError" });
    } finally {
      kernel.dispose();
      redis.disconnect();
      await db.$disconnect();
    }
  });
});

/** The HTTP status of a websocket handshake (101 when it was accepted). */
function upgradeStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      headers: {
        ...headers,
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end();
  });
}

async function waitFor(check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}
