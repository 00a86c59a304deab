import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "@codeinterp/config";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

/**
 * The Open WebUI Tool (integrations/open-webui/codeinterp_tool.py) run by Debian's python3 against the real
 * stack, called the way Open WebUI calls a Tool (test/open-webui/run_tool.py). Only the Open WebUI modules
 * the Tool imports are stood in (test/open-webui/stubs: the file store, shaped like its S3 provider, and the
 * file and chat models); pydantic is Debian's python3-pydantic, codeinterp is real.
 *
 * Argument shapes, from Open WebUI's source (open-webui/open-webui):
 * - __files__ = metadata["files"] (utils/middleware.py: `"__files__": metadata.get("files", [])`), the items
 *   the chat input made on upload (src/lib/components/chat/MessageInput.svelte uploadFileHandler:
 *   `{ type: 'file', file: uploadedFile, id: uploadedFile.id, url: `${uploadedFile.id}`, name,
 *   collection_name, content_type, status: 'uploaded', size, error: '', itemId }`).
 * - __user__ = user.model_dump() (middleware.py), plus "valves" = UserValves(...) (utils/tools.py get_tools).
 * - __chat_id__ / __message_id__ = metadata["chat_id"] / metadata["message_id"] (middleware.py extra_params).
 * - __event_emitter__(event): an async callable taking {type, data} (socket/main.py get_event_emitter).
 * - __request__: the FastAPI request (its app.url_path_for names routers/files.py get_file_content_by_id).
 */

const PYTHON = "/usr/bin/python3";
const TOOL = path.join(repoRoot, "integrations/open-webui/codeinterp_tool.py");
const DRIVER = path.join(repoRoot, "test/open-webui/run_tool.py");
const STUBS = path.join(repoRoot, "test/open-webui/stubs");

interface OwuiEvent {
  type: string;
  data: { description?: string; done?: boolean; files?: Array<Record<string, unknown>> };
}
interface DriverOut {
  calls: Array<{ result: string; events: OwuiEvent[] }>;
  files: Record<
    string,
    {
      id: string;
      user_id: string;
      filename: string;
      path: string;
      meta: { name: string; content_type: string; size: number; data: Record<string, unknown> };
    }
  >;
  message_files: Record<string, Array<{ type: string; id?: string; name: string; url: string }>>;
  minted_users: string[];
}

let stack: TestStack;
let key = "";
let bucket = "";
let cache = "";

/** pydantic is what Open WebUI ships for Valves; Debian packages it. As root (CI) it is installed like Jupyter is. */
async function ensurePydantic() {
  const has = () =>
    promisify(execFile)(PYTHON, ["-c", "import pydantic"]).then(
      () => true,
      () => false,
    );
  if (await has()) return;
  if (process.getuid?.() !== 0) throw new Error(`${PYTHON} lacks pydantic: apt-get install python3-pydantic`);
  const apt = (args: string[]) =>
    promisify(execFile)("/usr/bin/env", ["DEBIAN_FRONTEND=noninteractive", "apt-get", ...args], {
      timeout: 10 * 60_000,
    });
  await apt(["update"]);
  await apt(["install", "-y", "--no-install-recommends", "python3-pydantic"]);
  if (!(await has())) throw new Error("apt-get installed python3-pydantic but it does not import");
}

function runTool(spec: Record<string, unknown>): Promise<DriverOut> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [DRIVER], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin",
        PYTHONPATH: STUBS,
        OWUI_STUB_BUCKET: bucket,
        OWUI_STUB_UPLOAD_DIR: cache,
        PYTHONDONTWRITEBYTECODE: "1",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`tool driver exited ${code}:\n${err}`));
      try {
        resolve(JSON.parse(out) as DriverOut);
      } catch {
        reject(new Error(`tool driver printed no JSON:\n${out}\n${err}`));
      }
    });
    child.stdin.end(JSON.stringify({ tool_path: TOOL, valves: valves(), ...spec }));
  });
}

const owuiUser = (id = "owui-user-1") => ({
  // UserModel.model_dump() (models/users.py), the fields a Tool can rely on.
  id,
  name: "Ada",
  email: `${id}@example.com`,
  role: "user",
  profile_image_url: "/user.png",
  last_active_at: 1764400000,
  updated_at: 1764400000,
  created_at: 1764400000,
});

/** A file in Open WebUI's store, and the item the chat input sends for it (MessageInput.svelte). */
function owuiFile(name: string, content: Buffer, contentType: string, userId = "owui-user-1") {
  const id = randomUUID();
  const seed = { id, user_id: userId, name, content_type: contentType, content_b64: content.toString("base64") };
  const uploaded = {
    id,
    user_id: userId,
    hash: null,
    filename: name,
    data: { status: "completed" },
    meta: { name, content_type: contentType, size: content.length, data: {} },
    created_at: 1764400000,
    updated_at: 1764400000,
  };
  const item = {
    type: "file",
    file: uploaded,
    id,
    url: id,
    name,
    collection_name: `file-${id}`,
    content_type: contentType,
    status: "uploaded",
    size: content.length,
    error: "",
    itemId: randomUUID(),
  };
  return { seed, item };
}

/** The codeinterp user the Tool acts as for an Open WebUI user: the tenant key naming that user. */
const asOwui = (id = "owui-user-1") => ({ "x-end-user": id });
const valves = () => ({ CODEINTERP_URL: stack.url, CODEINTERP_API_KEY: key, EXECUTION_TIMEOUT_S: 60 });
const statuses = (events: OwuiEvent[]) =>
  events.filter((e) => e.type === "status").map((e) => e.data.description ?? "");

beforeAll(async () => {
  await ensurePydantic();
  stack = await startTestStack();
  // The install the README gives: one tenant key for the whole Open WebUI.
  key = (await stack.newUser("openwebui", "tenant")).key;
  bucket = path.join(stack.dataDir, "owui-bucket");
  cache = path.join(stack.dataDir, "owui-cache");
  await mkdir(bucket, { recursive: true });
  await mkdir(cache, { recursive: true });
}, 15 * 60_000);

afterAll(async () => {
  await stack?.close();
});

describe("Open WebUI Tool", () => {
  it(
    "reads an attached CSV at /mnt/data/<name>, streams status and output in order, returns stdout",
    { timeout: 120_000 },
    async () => {
      const csv = owuiFile("sales.csv", Buffer.from("month,revenue\nJan,120\nFeb,150\nMar,90\n"), "text/csv");
      const code = [
        "import time, pandas as pd",
        "df = pd.read_csv('/mnt/data/sales.csv')",
        "print('rows', len(df), flush=True)",
        "time.sleep(1.5)",
        "print('total', df.revenue.sum())",
      ].join("\n");
      const out = await runTool({
        seed_files: [csv.seed],
        calls: [{ user: owuiUser(), chat_id: "chat-1", message_id: "msg-1", files: [csv.item], code }],
      });
      const { result, events } = out.calls[0]!;
      const answer = JSON.parse(result) as { status: string; stdout: string; stderr: string; error?: unknown };
      expect(answer.status).toBe("completed");
      expect(answer.stdout).toBe("rows 3\ntotal 360\n");
      expect(answer.error).toBeUndefined();

      const seen = statuses(events);
      expect(seen[0]).toBe("Attaching 1 file(s)…");
      const running = seen.indexOf("Running…");
      const rows = seen.indexOf("Output: rows 3");
      const waiting = seen.findIndex((s) => /^(Queued|Preparing)/.test(s));
      expect(waiting).toBeGreaterThan(0);
      expect(running).toBeGreaterThan(waiting);
      // "rows 3" was shown while the code still slept, before the final status.
      expect(rows).toBeGreaterThan(running);
      expect(seen.indexOf("Output: total 360")).toBeGreaterThan(rows);
      const last = events.at(-1)!;
      expect(last).toMatchObject({ type: "status", data: { done: true } });
      expect(last.data.description).toMatch(/^Ran in \d+\.\d s$/);
      expect(events.filter((e) => e.data.done === true)).toHaveLength(1);

      // The execution belongs to that chat and message in codeinterp.
      const ctx = await client(stack.url, key, asOwui()).get("/v1/messages/msg-1/context");
      expect(ctx.body.files.map((f: { path: string }) => f.path)).toEqual(["sales.csv"]);
    },
  );

  it(
    "two attachments with the same name are both readable; each content is uploaded once across calls",
    { timeout: 120_000 },
    async () => {
      const a = owuiFile("data.csv", Buffer.from("v\n1\n2\n"), "text/csv");
      const b = owuiFile("data.csv", Buffer.from("v\n10\n20\n30\n"), "text/csv");
      const code =
        "import pandas as pd\nprint(pd.read_csv('/mnt/data/data.csv').v.sum(), pd.read_csv('/mnt/data/data (2).csv').v.sum())";
      const call = (message_id: string) => ({
        user: owuiUser(),
        chat_id: "chat-2",
        message_id,
        files: [a.item, b.item],
        code,
      });
      const out = await runTool({
        seed_files: [a.seed, b.seed],
        calls: [call("msg-2a"), call("msg-2a"), call("msg-2b")],
      });
      for (const c of out.calls) expect(JSON.parse(c.result)).toMatchObject({ status: "completed", stdout: "3 60\n" });
      // Three calls, two messages: one codeinterp upload per content.
      const api = client(stack.url, key, asOwui());
      for (const content of ["v\n1\n2\n", "v\n10\n20\n30\n"]) {
        const sha = createHash("sha256").update(content).digest("hex");
        expect((await api.get(`/v1/files?sha256=${sha}`)).body.files).toHaveLength(1);
      }
    },
  );

  it(
    "generated xlsx, PNG and an inline chart become the user's files in Open WebUI, shown in the message, byte-exact",
    { timeout: 120_000 },
    async () => {
      const code = [
        "%matplotlib inline",
        "import pandas as pd, matplotlib.pyplot as plt",
        "df = pd.DataFrame({'month': ['Jan', 'Feb'], 'revenue': [120, 150]})",
        "df.to_excel('/mnt/data/summary.xlsx', index=False)",
        "fig, ax = plt.subplots()",
        "ax.bar(df.month, df.revenue)",
        "fig.savefig('/mnt/data/chart.png')",
        "plt.show()",
        "import hashlib",
        "for n in ['summary.xlsx', 'chart.png']:",
        "    print(n, hashlib.sha256(open('/mnt/data/' + n, 'rb').read()).hexdigest())",
      ].join("\n");
      const out = await runTool({
        calls: [{ user: owuiUser(), chat_id: "chat-3", message_id: "msg-3", files: [], code }],
      });
      const { result, events } = out.calls[0]!;
      const answer = JSON.parse(result) as {
        status: string;
        stdout: string;
        files: Array<{ name: string; path: string | null; id: string; url: string; mime_type: string; size: number }>;
      };
      expect(answer.status).toBe("completed");
      // The sha256 of each file as the code wrote it, computed inside the kernel.
      const written = new Map(
        answer.stdout
          .trim()
          .split("\n")
          .map((l) => l.split(" ") as [string, string]),
      );
      const byName = new Map(answer.files.map((f) => [f.name, f]));
      expect([...byName.keys()].sort()).toEqual(["chart-1.png", "chart.png", "summary.xlsx"]);

      const api = client(stack.url, key, asOwui());
      for (const name of ["summary.xlsx", "chart.png"]) {
        const f = byName.get(name)!;
        expect(f.path).toBe(name);
        // Open WebUI serves it from its own route; no codeinterp link was handed out for a stored copy.
        expect(f.url).toBe(`/api/v1/files/${f.id}/content`);
        const row = out.files[f.id]!;
        const cid = row.meta.data.codeinterp_file_id as string;
        // What codeinterp stored and what Open WebUI now stores for the user: the same bytes.
        const original = Buffer.from(
          await (
            await fetch(`${stack.url}/v1/files/${cid}/content`, {
              headers: { authorization: `Bearer ${key}`, ...asOwui() },
            })
          ).arrayBuffer(),
        );
        expect(row).toMatchObject({ user_id: "owui-user-1", filename: name, meta: { name, size: original.length } });
        expect(row.path).toBe(`s3://stub-bucket/${f.id}_${name}`);
        const stored = await readFile(path.join(bucket, `${f.id}_${name}`));
        expect(stored.equals(original)).toBe(true);
        expect(createHash("sha256").update(stored).digest("hex")).toBe(written.get(name));
        expect(original.length).toBe(f.size);
        expect((await api.get(`/v1/files/${cid}`)).body.messageId).toBe("msg-3");
      }
      expect(out.files[byName.get("summary.xlsx")!.id]!.meta.content_type).toBe(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
      );
      const xlsx = await readFile(path.join(bucket, `${byName.get("summary.xlsx")!.id}_summary.xlsx`));
      expect(xlsx.subarray(0, 4)).toEqual(Buffer.from([0x50, 0x4b, 0x03, 0x04]));
      const chart = await readFile(path.join(bucket, `${byName.get("chart-1.png")!.id}_chart-1.png`));
      expect(chart.subarray(1, 4).toString()).toBe("PNG");

      // The message shows them: images inline, the workbook as a file; the same list was emitted to the page.
      const shown = out.message_files["chat-3/msg-3"]!;
      expect(shown.map((e) => [e.type, e.name]).sort()).toEqual([
        ["file", "summary.xlsx"],
        ["image", "chart-1.png"],
        ["image", "chart.png"],
      ]);
      const filesEvent = events.findIndex((e) => e.type === "chat:message:files");
      expect(filesEvent).toBeGreaterThan(0);
      expect(events[filesEvent]!.data.files).toEqual(shown);
      expect(filesEvent).toBeLessThan(events.length - 1);
    },
  );

  it(
    "without Open WebUI's file store the user gets codeinterp signed links that download byte-exact; a pasted image is attached",
    { timeout: 120_000 },
    async () => {
      const png = Buffer.from(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
        "base64",
      );
      // A pasted image stays a data URL in the chat input (MessageInput.svelte on:paste: `{ type: 'image', url }`).
      const pasted = { type: "image", url: `data:image/png;base64,${png.toString("base64")}` };
      const code =
        "import os\nprint(os.path.getsize('/mnt/data/image-1.png'))\nopen('/mnt/data/out.bin','wb').write(bytes(range(256)) * 10)";
      const out = await runTool({
        without_store: true,
        calls: [{ user: owuiUser(), chat_id: "chat-7", message_id: "msg-7", files: [pasted], code }],
      });
      const { result, events } = out.calls[0]!;
      const answer = JSON.parse(result) as {
        status: string;
        stdout: string;
        files: Array<{ name: string; url: string; expires_at: string }>;
      };
      expect(answer).toMatchObject({ status: "completed", stdout: `${png.length}\n` });
      const bin = answer.files.find((f) => f.name === "out.bin")!;
      expect(bin.url).toMatch(new RegExp(`^${stack.url}/links/`));
      expect(Date.parse(bin.expires_at)).toBeGreaterThan(Date.now());
      const got = Buffer.from(await (await fetch(bin.url)).arrayBuffer());
      expect(got.equals(Buffer.from(Array.from({ length: 2560 }, (_v, i) => i % 256)))).toBe(true);
      // Shown in the message from the page's events; nothing was written to Open WebUI.
      const shown = events.find((e) => e.type === "chat:message:files")!.data.files!;
      expect(shown).toEqual([
        { type: "file", name: "out.bin", url: bin.url, content_type: "application/octet-stream" },
      ]);
      expect(out.files).toEqual({});
    },
  );

  it(
    "fast output is shown at most twice a second in the status line, ending with the last line",
    { timeout: 120_000 },
    async () => {
      const code = "import time\nfor i in range(300):\n    print(i, flush=True)\n    time.sleep(0.005)";
      const out = await runTool({ calls: [{ user: owuiUser(), chat_id: "chat-9", message_id: "msg-9", code }] });
      const { result, events } = out.calls[0]!;
      expect((JSON.parse(result) as { stdout: string }).stdout.split("\n")).toHaveLength(301);
      const outputs = statuses(events).filter((d) => d.startsWith("Output: "));
      expect(outputs.at(-1)).toBe("Output: 299");
      // ~1.5 s of output: a handful of lines, not one per print.
      expect(outputs.length).toBeGreaterThanOrEqual(1);
      expect(outputs.length).toBeLessThanOrEqual(10);
    },
  );

  it(
    "a Python error reaches the model with its traceback, and stderr apart from stdout",
    { timeout: 120_000 },
    async () => {
      const out = await runTool({
        calls: [
          {
            user: owuiUser(),
            chat_id: "chat-4",
            message_id: "msg-4",
            code: "import sys\n\ndef f(x):\n    return 1 / x\n\nprint('before')\nprint('careful', file=sys.stderr)\nf(0)",
          },
        ],
      });
      const { result, events } = out.calls[0]!;
      const answer = JSON.parse(result) as {
        status: string;
        stdout: string;
        stderr: string;
        error: { ename: string; evalue: string; traceback: string };
      };
      expect(answer.status).toBe("completed");
      expect(answer.stdout).toBe("before\n");
      expect(answer.stderr).toBe("careful\n");
      expect(answer.error.ename).toBe("ZeroDivisionError");
      expect(answer.error.evalue).toBe("division by zero");
      expect(answer.error.traceback).toContain("return 1 / x");
      expect(answer.error.traceback).not.toContain("\u001b[");
      expect(events.at(-1)!.data).toEqual({ description: "The code raised ZeroDivisionError", done: true });
    },
  );

  it(
    "an attachment of another Open WebUI user, or one whose stored object is gone, is not sent; the model is told",
    { timeout: 60_000 },
    async () => {
      const theirs = owuiFile("theirs.csv", Buffer.from("t\n1\n"), "text/csv", "someone-else");
      const gone = { ...owuiFile("gone.csv", Buffer.from("g\n1\n"), "text/csv").item, id: randomUUID() };
      const out = await runTool({
        seed_files: [theirs.seed],
        calls: [
          {
            user: owuiUser(),
            chat_id: "chat-8",
            message_id: "msg-8",
            files: [theirs.item, gone],
            code: "import os\nprint(os.listdir('/mnt/data'))",
          },
        ],
      });
      const answer = JSON.parse(out.calls[0]!.result) as { status: string; stdout: string; warnings: string[] };
      expect(answer).toMatchObject({ status: "completed", stdout: "[]\n" });
      expect(answer.warnings).toEqual([
        `not attached: attached file ${theirs.seed.id} belongs to another user`,
        `not attached: attached file ${gone.id} is not in Open WebUI's file store`,
      ]);
    },
  );

  it("a wrong key is a clear message for the model and the user, not a crash", { timeout: 60_000 }, async () => {
    const csv = owuiFile("x.csv", Buffer.from("a\n1\n"), "text/csv");
    const out = await runTool({
      valves: { ...valves(), CODEINTERP_API_KEY: "ci_wrong" },
      seed_files: [csv.seed],
      calls: [{ user: owuiUser(), chat_id: "chat-5", message_id: "msg-5", files: [csv.item], code: "print(1)" }],
    });
    const { result, events } = out.calls[0]!;
    const answer = JSON.parse(result) as { status: string; error: string };
    expect(answer.status).toBe("error");
    expect(answer.error).toMatch(/rejected the API key/);
    expect(events.at(-1)!.data.done).toBe(true);
    expect(events.at(-1)!.data.description).toMatch(/rejected the API key/);
    // Nothing was stored in Open WebUI besides the user's own attachment.
    expect(Object.keys(out.files)).toEqual([csv.seed.id]);
  });

  it(
    "the deprecated ADMIN_TOKEN mode still gives each Open WebUI user a codeinterp user of their own; a user's own key wins",
    { timeout: 120_000 },
    async () => {
      const mk = (user: string, msg: string, extra: Record<string, unknown> = {}) => ({
        user: owuiUser(user),
        chat_id: "chat-6",
        message_id: msg,
        code: "import os\nprint(sorted(os.listdir('/mnt/data')))",
        ...extra,
      });
      const secret = owuiFile("secret.csv", Buffer.from(`s\n${randomBytes(8).toString("hex")}\n`), "text/csv", "ann");
      const own = (await stack.newUser("own-key-user")).key;
      const out = await runTool({
        valves: { CODEINTERP_URL: stack.url, CODEINTERP_API_KEY: "", ADMIN_TOKEN: stack.adminToken },
        seed_files: [secret.seed],
        calls: [
          mk("ann", "msg-6", { files: [secret.item] }),
          mk("bob", "msg-6"),
          mk("cat", "msg-6c", { user_valves: { CODEINTERP_API_KEY: own } }),
        ],
      });
      expect(out.minted_users).toEqual(["openwebui:ann", "openwebui:bob"]);
      // Same chat and message ids, different users: Bob does not see Ann's /mnt/data.
      expect(JSON.parse(out.calls[0]!.result)).toMatchObject({ status: "completed", stdout: "['secret.csv']\n" });
      expect(JSON.parse(out.calls[1]!.result)).toMatchObject({ status: "completed", stdout: "[]\n" });
      expect(JSON.parse(out.calls[2]!.result)).toMatchObject({ status: "completed" });
      expect((await client(stack.url, own).get("/v1/messages/msg-6c/context")).status).toBe(200);
      expect((await client(stack.url, own).get("/v1/chats/chat-6/files")).status).toBe(200);
    },
  );

  it(
    "two Open WebUI users on one tenant key: a chat cloned by the other user and a forged message id reach neither variables nor files",
    { timeout: 180_000 },
    async () => {
      // Issue 20's leak: alice's kernel and /mnt/data were reached by bob through a cloned chat (Open WebUI
      // keeps message ids when a shared chat is cloned: a message id is no secret) and by naming the id.
      const notes = owuiFile(
        "notes.txt",
        Buffer.from(`alice's notes ${randomBytes(6).toString("hex")}`),
        "text/plain",
        "alice",
      );
      const msg = randomUUID();
      const peek = "import os, json\nprint(json.dumps([sorted(os.listdir('/mnt/data')), globals().get('secret')]))";
      const out = await runTool({
        seed_files: [notes.seed],
        calls: [
          {
            user: owuiUser("alice"),
            chat_id: "chat-alice",
            message_id: msg,
            files: [notes.item],
            code: "secret = 'alice-42'\nopen('/mnt/data/chart.png', 'wb').write(b'png')\nprint(secret)",
          },
          // Bob cloned alice's shared chat (new chat id, same message ids) and pressed Continue.
          { user: owuiUser("bob"), chat_id: "chat-bob-clone", message_id: msg, code: peek },
          // Bob forges alice's chat and message ids.
          { user: owuiUser("bob"), chat_id: "chat-alice", message_id: msg, code: peek },
          // Alice goes on in her chat: everything of hers is still there.
          { user: owuiUser("alice"), chat_id: "chat-alice", message_id: msg, code: peek },
          // Alice clones her own chat and continues there: a fresh workspace, not an error.
          { user: owuiUser("alice"), chat_id: "chat-alice-copy", message_id: msg, code: peek },
        ],
      });
      const answers = out.calls.map((c) => JSON.parse(c.result) as { status: string; stdout: string });
      expect(answers[0]).toMatchObject({ status: "completed", stdout: "alice-42\n" });
      expect(answers[1]).toMatchObject({ status: "completed", stdout: "[[], null]\n" });
      expect(answers[2]).toMatchObject({ status: "completed", stdout: "[[], null]\n" });
      expect(answers[3]).toMatchObject({ status: "completed", stdout: '[["chart.png", "notes.txt"], "alice-42"]\n' });
      expect(answers[4]).toMatchObject({ status: "completed", stdout: "[[], null]\n" });
      // Through the API too: bob's codeinterp user has none of alice's files.
      const bob = client(stack.url, key, asOwui("bob"));
      expect((await bob.get(`/v1/messages/${msg}/files`)).body.files).toEqual([]);
      expect((await bob.get("/v1/chats/chat-alice/files")).body.totalFiles).toBe(0);
      const aliceFiles = (await client(stack.url, key, asOwui("alice")).get(`/v1/messages/${msg}/files`)).body
        .files as Array<{ id: string; name: string }>;
      expect(aliceFiles.map((f) => f.name)).toEqual(["chart.png"]);
      expect((await bob.get(`/v1/files/${aliceFiles[0]!.id}`)).status).toBe(404);
    },
  );

  it(
    "a shared user key (the old default install) is refused with a clear message, never shared between users",
    { timeout: 60_000 },
    async () => {
      const shared = (await stack.newUser("owui-shared-user-key")).key;
      const out = await runTool({
        valves: { ...valves(), CODEINTERP_API_KEY: shared },
        calls: [{ user: owuiUser("alice"), chat_id: "chat-u", message_id: "msg-u", code: "secret = 1" }],
      });
      const answer = JSON.parse(out.calls[0]!.result) as { status: string; error: string };
      expect(answer.status).toBe("error");
      expect(answer.error).toMatch(/is a user key.*tenant key/);
      expect((await client(stack.url, shared).get("/v1/messages/msg-u/context")).body.files).toEqual([]);
    },
  );

  it(
    "images pasted into the message (image_url parts of __messages__: a data URL and an Open WebUI file URL) arrive at /mnt/data byte-exact",
    { timeout: 120_000 },
    async () => {
      const png = Buffer.from(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
        "base64",
      );
      const jpeg = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), randomBytes(300), Buffer.from([0xff, 0xd9])]);
      const uploaded = owuiFile("Screenshot 2026-12-06.jpg", jpeg, "image/jpeg");
      const theirs = owuiFile("theirs.png", png, "image/png", "someone-else");
      const csv = owuiFile("data.csv", Buffer.from("a\n1\n"), "text/csv");
      // Open WebUI's chat payload (utils/middleware.py): the user message's content as OpenAI parts; the
      // pasted image travels only here, not in __files__.
      const messages = [
        { role: "user", content: "earlier question" },
        { role: "assistant", content: "earlier answer" },
        {
          role: "user",
          content: [
            { type: "text", text: "what is in these images?" },
            { type: "image_url", image_url: { url: `data:image/png;base64,${png.toString("base64")}` } },
            { type: "image_url", image_url: { url: `/api/v1/files/${uploaded.seed.id}/content` } },
            { type: "image_url", image_url: { url: `http://owui.local/api/v1/files/${theirs.seed.id}/content` } },
          ],
        },
      ];
      const code = [
        "import os, hashlib, json",
        "print(json.dumps({n: hashlib.sha256(open('/mnt/data/' + n, 'rb').read()).hexdigest() for n in sorted(os.listdir('/mnt/data'))}))",
      ].join("\n");
      const out = await runTool({
        seed_files: [uploaded.seed, theirs.seed, csv.seed],
        calls: [{ user: owuiUser(), chat_id: "chat-img", message_id: "msg-img", files: [csv.item], messages, code }],
      });
      const answer = JSON.parse(out.calls[0]!.result) as { status: string; stdout: string; warnings?: string[] };
      expect(answer.status).toBe("completed");
      const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");
      expect(JSON.parse(answer.stdout)).toEqual({
        "data.csv": digest(Buffer.from("a\n1\n")),
        "image-1.png": digest(png),
        "image-2.jpg": digest(jpeg),
      });
      // Another user's file named by URL is not attached; the model is told.
      expect(answer.warnings).toEqual([`not attached: attached file ${theirs.seed.id} belongs to another user`]);
    },
  );

  it("the Tool file is one self-contained module: standard library, pydantic, and Open WebUI's own modules only", async () => {
    expect(existsSync(TOOL)).toBe(true);
    const src = await readFile(TOOL, "utf8");
    const imports = [...src.matchAll(/^\s*(?:from|import) ([\w.]+)/gm)].map((m) => m[1]!.split(".")[0]!);
    const { stdout } = await promisify(execFile)(PYTHON, [
      "-c",
      "import sys; print(' '.join(sorted(sys.stdlib_module_names)))",
    ]);
    const stdlib = new Set(stdout.trim().split(" "));
    expect([...new Set(imports.filter((m) => !stdlib.has(m)))].sort()).toEqual(["open_webui", "pydantic"]);
    expect(src).toMatch(/^class Tools:/m);
  });
});
