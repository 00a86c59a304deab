import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient } from "@codeinterp/client";
import { repoRoot } from "@codeinterp/config";
import { resolveInside } from "../apps/cli/src/save";
import { createProgress } from "../apps/cli/src/progress";
import { startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

let stack: TestStack;
let key: string;
let work: string;

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** When each stdout chunk arrived, and when the process ended. */
  chunks: Array<{ at: number; text: string }>;
  endedAt: number;
}

function cli(args: string[], opts: { env?: Record<string, string>; npx?: boolean } = {}): Promise<CliRun> {
  const [cmd, argv] = opts.npx
    ? ["npx", ["--no-install", "codeinterp", ...args]]
    : [process.execPath, [path.join(repoRoot, "apps/cli/bin/codeinterp.mjs"), ...args]];
  const child = spawn(cmd as string, argv as string[], {
    // npx finds the workspace's bin from inside the repo.
    cwd: opts.npx ? repoRoot : work,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      CODEINTERP_URL: stack.url,
      CODEINTERP_API_KEY: key,
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: CliRun = { code: null, stdout: "", stderr: "", chunks: [], endedAt: 0 };
  child.stdout.setEncoding("utf8").on("data", (t: string) => {
    run.stdout += t;
    run.chunks.push({ at: Date.now(), text: t });
  });
  child.stderr.setEncoding("utf8").on("data", (t: string) => (run.stderr += t));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      run.code = code;
      run.endedAt = Date.now();
      resolve(run);
    });
  });
}

beforeAll(async () => {
  stack = await startTestStack();
  key = (await stack.newUser("cli-user")).key;
  work = await mkdtemp(path.join(os.tmpdir(), "codeinterp-cli-"));
  await writeFile(path.join(work, "data.csv"), "city,sales\nOslo,3\nLima,5\nPune,7\n");
});
afterAll(async () => {
  await stack?.close();
});

describe("codeinterp run (CLI as a child process)", () => {
  it("uploads, streams stdout live, and saves generated files under --out keeping their paths (via npx)", async () => {
    await writeFile(
      path.join(work, "report.py"),
      [
        "import time, os",
        "import pandas as pd",
        "import matplotlib",
        "matplotlib.use('Agg')",
        "import matplotlib.pyplot as plt",
        "df = pd.read_csv('/mnt/data/data.csv')",
        "print('rows', len(df), flush=True)",
        "time.sleep(1.5)",
        "os.makedirs('/mnt/data/reports/2024', exist_ok=True)",
        "df.to_csv('/mnt/data/reports/2024/total.csv', index=False)",
        "df.plot.bar(x='city', y='sales').get_figure().savefig('/mnt/data/chart.png')",
        "print('total', df.sales.sum())",
      ].join("\n"),
    );
    const at = (p: string) => path.join(work, p);
    const r = await cli(
      [
        "run",
        at("report.py"),
        "--file",
        at("data.csv"),
        "--out",
        at("out"),
        "--chat",
        "cli-chat",
        "--message",
        "cli-msg-1",
      ],
      { npx: true },
    );
    expect(r.stderr).not.toMatch(/Error|refusing/);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("rows 3\n");
    expect(r.stdout).toContain("total 15\n");
    // Streamed: "rows 3" was printed more than a second before the process ended.
    const first = r.chunks.find((c) => c.text.includes("rows 3"))!;
    expect(r.endedAt - first.at).toBeGreaterThan(1000);
    // Plain progress lines when stderr is not a terminal.
    expect(r.stderr).toContain(`[codeinterp] uploaded ${at("data.csv")} as /mnt/data/data.csv`);
    expect(r.stderr).toMatch(/\[codeinterp\] (queued|preparing|running)\n/);
    expect(r.stderr).not.toContain("\r");
    expect(r.stderr).toContain("[codeinterp] completed");

    const total = await readFile(path.join(work, "out/reports/2024/total.csv"), "utf8");
    expect(total).toBe("city,sales\nOslo,3\nLima,5\nPune,7\n");
    const png = await readFile(path.join(work, "out/chart.png"));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    // The saved bytes are exactly what the server registered.
    const files = await createClient({ baseUrl: stack.url, apiKey: key }).listMessageFiles("cli-msg-1");
    const chart = files.files.find((f) => f.path === "chart.png")!;
    expect(createHash("sha256").update(png).digest("hex")).toBe(
      (await createClient({ baseUrl: stack.url, apiKey: key }).getFile(chart.id)).sha256,
    );
    expect((await readdir(path.join(work, "out"))).sort()).toEqual(["chart.png", "reports"]);
  });

  it("prints the traceback and exits 1 when the code raises", async () => {
    await writeFile(path.join(work, "boom.py"), "print('before')\n1/0\n");
    const r = await cli(["run", "boom.py"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("before\n");
    expect(r.stderr).toContain("ZeroDivisionError");
    expect(r.stderr).toContain("[codeinterp] completed (ZeroDivisionError)");
  });

  it("exits 1 on a timeout, shows the last expression, and lists files without --out", async () => {
    await writeFile(
      path.join(work, "slow.py"),
      "import time\nopen('/mnt/data/partial.txt','w').write('x')\ntime.sleep(20)\n",
    );
    const slow = await cli(["run", "slow.py", "--timeout", "1500"]);
    expect(slow.code).toBe(1);
    expect(slow.stderr).toContain("[codeinterp] timed_out");

    await writeFile(path.join(work, "expr.py"), "open('/mnt/data/a.txt','w').write('hi')\n6*7\n");
    const expr = await cli(["run", "expr.py"]);
    expect(expr.code).toBe(0);
    expect(expr.stdout).toBe("42\n");
    expect(expr.stderr).toMatch(/\/mnt\/data\/a\.txt +2 B +http:\/\/127\.0\.0\.1:\d+\/v1\/files\/[0-9a-f-]+\/content/);
  });

  it("reports configuration and usage errors with exit 2, and a bad key with exit 1", async () => {
    await writeFile(path.join(work, "ok.py"), "print(1)\n");
    const noKey = await cli(["run", "ok.py"], { env: { CODEINTERP_API_KEY: "" } });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("CODEINTERP_API_KEY");
    const noScript = await cli(["run"]);
    expect(noScript.code).toBe(2);
    expect(noScript.stderr).toContain("missing <script.py>");
    const missingFile = await cli(["run", "ok.py", "--file", "nope.csv"]);
    expect(missingFile.code).toBe(2);
    expect(missingFile.stderr).toContain("--file nope.csv: no such file");
    const badKey = await cli(["run", "ok.py"], { env: { CODEINTERP_API_KEY: "wrong-key" } });
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toContain("401");
  });
});

describe("CLI pieces", () => {
  it("refuses generated paths that would escape --out", () => {
    const out = path.join(os.tmpdir(), "out-root");
    expect(resolveInside(out, "a/b.csv")).toBe(path.join(out, "a/b.csv"));
    expect(resolveInside(out, "./x.txt")).toBe(path.join(out, "x.txt"));
    for (const bad of ["../x", "a/../../x", "/etc/passwd", "..\\x", "C:/x", "", ".", "a/..", "a\0b"]) {
      expect(() => resolveInside(out, bad), bad).toThrow(/refusing/);
    }
  });

  it("draws one spinner line on a TTY and erases it around output", () => {
    let written = "";
    const out = { write: (t: string) => (written += t) };
    const p = createProgress(out, { tty: true, now: () => 0 });
    p.setStatus("queued");
    expect(written).toBe("\r\u001b[2K⠋ queued, waiting for a worker 0.0s");
    written = "";
    p.setStatus("running");
    p.print(out, "hello\n");
    expect(written).toBe("\r\u001b[2K⠋ running 0.0s\r\u001b[2Khello\n\r\u001b[2K⠋ running 0.0s");
    written = "";
    p.setStatus("completed");
    expect(written).toBe("\r\u001b[2K");
    p.stop();
  });
});
