import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "@codeinterp/config";
import { createDb } from "@codeinterp/db";
import { observeStack } from "./helpers/observe";
import { startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Open WebUI's Jupyter engine against codeinterp: test/helpers/openwebui_jupyter_client.py follows
// open-webui backend/open_webui/utils/code_interpreter.py step for step with Debian's aiohttp and
// websockets (scripts/setup.mjs installs them for `npm test`). The settings an Open WebUI admin changes:
// CODE_INTERPRETER_JUPYTER_URL=<codeinterp>/jupyter and the key as token or as password.

const run = promisify(execFile);
const CLIENT = path.join(repoRoot, "test/helpers/openwebui_jupyter_client.py");

let stack: TestStack;
let key: string;

beforeAll(async () => {
  // Run directly (not through `npm test`), nothing installed them: say what is missing rather than failing
  // every test with an ImportError.
  await run("/usr/bin/python3", ["-c", "import aiohttp, websockets"]).catch(() => {
    throw new Error(
      "Open WebUI's client flow needs Debian's python3-aiohttp and python3-websockets: `npm test` installs them as root, or apt-get install them",
    );
  });
  // An idle TTL long enough that only the retirement of a deleted kernel explains it going within the test.
  stack = await startTestStack({ env: { KERNEL_POOL_SIZE: "1", KERNEL_IDLE_TTL_MS: "40000" } });
  key = (await stack.newUser("owui")).key;
});
afterAll(async () => {
  await stack?.close();
});

interface OpenWebUiResult {
  stdout: string;
  stderr: string;
  result: string;
  kernel_id: string;
  deleted: number | null;
}

async function openWebUi(code: string, auth: { token?: string; password?: string }): Promise<OpenWebUiResult> {
  // By host name, as Open WebUI deployments name their Jupyter server: aiohttp's cookie jar ignores cookies
  // that an IP address sets on a redirect, with Jupyter Server as with codeinterp.
  const url = `${stack.url.replace("127.0.0.1", "localhost")}/jupyter`;
  const { stdout } = await run("/usr/bin/python3", [CLIENT, url, code, auth.token ?? "", auth.password ?? "", "60"], {
    timeout: 90_000,
  });
  return JSON.parse(stdout) as OpenWebUiResult;
}

const PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()";

describe.each([
  ["token", () => ({ token: key })],
  ["password", () => ({ password: key })],
])("Open WebUI's Jupyter client in %s mode", (_mode, auth) => {
  it("shows stdout, and the kernel it started is deleted afterwards", async () => {
    const out = await openWebUi("print('hello from open webui')", auth());
    expect(out.stderr).toBe("");
    expect(out.stdout).toBe("hello from open webui");
    expect(out.deleted).toBe(204);
    const left = await fetch(`${stack.url}/jupyter/api/kernels/${out.kernel_id}?token=${key}`);
    expect(left.status).toBe(404);
  });

  it("shows a plot as a base64 PNG", async () => {
    const out = await openWebUi(PLOT, auth());
    expect(out.stderr).toBe("");
    expect(out.result).toMatch(/^data:image\/png;base64,/);
    const png = Buffer.from(out.result.slice("data:image/png;base64,".length), "base64");
    expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
  });

  it("shows an error's traceback, after the output printed before it", async () => {
    const out = await openWebUi("print('before')\n{}['missing']", auth());
    expect(out.stdout).toBe("before");
    expect(out.stderr).toContain("KeyError");
    expect(out.stderr).toContain("missing");
  });
});

describe("the kernels Open WebUI starts and deletes for every run", () => {
  it("each run is a recorded execution of the user's on a pre-started pool kernel, shut down soon after the DELETE", async () => {
    // The pool refills after the runs above took its kernel: wait until it holds one again.
    const observer = observeStack(stack);
    const db = createDb({ url: stack.databaseUrl });
    try {
      await expect.poll(() => observer.poolKernels(), { timeout: 30_000 }).toBeGreaterThan(0);
      const out = await openWebUi("print(6 * 7)", { token: key });
      expect(out.stdout).toBe("42");
      const execution = await db.execution.findFirstOrThrow({ where: { messageId: `jupyter-${out.kernel_id}` } });
      expect(execution).toMatchObject({ userId: "owui", chatId: "jupyter", status: "completed" });
      expect(execution.metrics).toMatchObject({ pooledKernel: true });
      const gatewayKernel = `${stack.env.JUPYTER_URL}/api/kernels/${execution.kernelId}?token=${stack.env.JUPYTER_TOKEN}`;
      // Before the 40 s idle TTL could: the workers' sweep (every 10 s here) retires it.
      await expect.poll(async () => (await fetch(gatewayKernel)).status, { timeout: 25_000, interval: 200 }).toBe(404);
    } finally {
      observer.close();
      await db.$disconnect();
    }
  });
});

describe("with JUPYTER_FILE_LINKS=false", () => {
  it("the output has no file list, and the file is still recorded", async () => {
    const quiet = await startTestStack({ env: { JUPYTER_FILE_LINKS: "false" } });
    try {
      const user = await quiet.newUser("owui-quiet");
      const url = `${quiet.url.replace("127.0.0.1", "localhost")}/jupyter`;
      const code = "open('/mnt/data/out.txt', 'w').write('x')\nprint('done')";
      const { stdout } = await run("/usr/bin/python3", [CLIENT, url, code, user.key, "", "60"], { timeout: 90_000 });
      expect((JSON.parse(stdout) as OpenWebUiResult).stdout).toBe("done");
      const files = await fetch(`${quiet.url}/v1/chats/jupyter/files`, {
        headers: { authorization: `Bearer ${user.key}` },
      });
      expect(JSON.stringify(await files.json())).toContain("out.txt");
    } finally {
      await quiet.close();
    }
    // With the default, the same run lists the file with its link.
    const out = await openWebUi("open('/mnt/data/out.txt', 'w').write('x')\nprint('done')", { token: key });
    // A signed link: the Open WebUI user who clicks it has no codeinterp key.
    expect(out.stdout).toMatch(
      /^done\n\nFiles written to \/mnt\/data.*\n- out\.txt: http:\/\/localhost:\d+\/links\/[\w-]+\?expires=\d+&signature=[\w-]+$/s,
    );
  });
});

describe("Open WebUI's Jupyter client with bad credentials", () => {
  it("a wrong token or password runs nothing and reports the refusal", async () => {
    const byToken = await openWebUi("print(1)", { token: "not-a-key" });
    expect(byToken.stderr).toMatch(/^Error: 401/);
    expect(byToken.kernel_id).toBe("");
    const byPassword = await openWebUi("print(1)", { password: "not-a-key" });
    expect(byPassword.stderr).toMatch(/^Error: 401/);
  });

  it("a login without the _xsrf cookie is refused (Jupyter Server's XSRF rule)", async () => {
    const res = await fetch(`${stack.url}/jupyter/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ password: key }).toString(),
      redirect: "manual",
    });
    expect(res.status).toBe(403);
    expect(res.headers.get("set-cookie") ?? "").not.toContain("codeinterp-jupyter=");
  });
});
