import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "@codeinterp/config";
import { workspaceDirFor } from "@codeinterp/workspace";
import { client, startTestStack } from "./helpers/stack";
import type { TestStack } from "./helpers/stack";

// Code written by a model on behalf of a stranger: each attempt must be contained, reported, and must not
// harm other executions. These run against sandboxed kernels (bubblewrap), the default on this machine.
let stack: TestStack;
let api: ReturnType<typeof client>;
let n = 0;
const msg = () => `hostile-${++n}`;
const py = (s: string) => JSON.stringify(s);

beforeAll(async () => {
  stack = await startTestStack({ env: { KERNEL_SANDBOX: "on", MAX_GENERATED_FILES: "50", MAX_STREAM_BYTES: "65536" } });
  api = client(stack.url, (await stack.newUser("mallory")).key);
});
afterAll(async () => stack?.close());

describe("hostile code is contained", () => {
  it("sees only its own workspace: not other workspaces, DATA_DIR, the service's code or its secrets", async () => {
    const victim = await api.run({ messageId: "victim", code: "open('/mnt/data/secret.txt','w').write('s3cret')" });
    expect(victim.status).toBe("completed");
    const victimDir = workspaceDirFor(stack.dataDir, "mallory", "victim");
    const code = `
import os
found = []
for root, dirs, files in os.walk("/"):
    if root.startswith(("/proc", "/sys", "/usr", "/dev")):
        dirs[:] = []
        continue
    found += [os.path.join(root, f) for f in files if f == "secret.txt"]
print(found)
print([os.path.exists(p) for p in (${py(victimDir)}, ${py(stack.dataDir)}, ${py(repoRoot)})])
print(sorted(k for k in os.environ if any(w in k for w in ("DATABASE", "REDIS", "TOKEN", "JUPYTER", "ADMIN"))))
print(os.getuid() != 0, os.listdir("/mnt/data"))
`;
    const done = await api.run({ messageId: msg(), code });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toBe("[]\n[False, False, False]\n[]\nTrue []\n");
  });

  it("symlink and hardlink tricks register nothing that leaks", async () => {
    const code = `
import os
os.symlink("/etc/passwd", "leak.csv")
os.symlink("/", "root")
try:
    os.link("/etc/passwd", "hard.txt")
    print("linked")
except OSError as e:
    print("no hardlink", e.errno)
`;
    const done = await api.run({ messageId: msg(), code });
    expect(done.status).toBe("completed");
    expect(done.result.stdout).toMatch(/^no hardlink \d+\n$/);
    expect(done.files).toEqual([]);
    expect(done.result.skippedFiles).toEqual(
      expect.arrayContaining([
        { path: "leak.csv", reason: "symlink" },
        { path: "root", reason: "symlink" },
      ]),
    );
  });

  it("thousands of files: a capped number is registered and the rest is reported", async () => {
    const done = await api.run({
      messageId: msg(),
      code: "for i in range(3000):\n    open(f'/mnt/data/f{i:05}.txt', 'w').write('x')",
    });
    expect(done.status).toBe("completed");
    expect(done.files).toHaveLength(50);
    const skipped = (done.result.skippedFiles as Array<{ reason: string }>).filter((s) => s.reason === "limit_count");
    expect(skipped.length).toBe(2950);
  });

  it("a huge file stops at the file-size limit", async () => {
    const done = await api.run({
      messageId: msg(),
      code: "with open('/mnt/data/big.bin', 'wb') as f:\n    for _ in range(200):\n        f.write(b'\\0' * 1024 * 1024)",
    });
    expect(done.status).toBe("completed");
    expect(done.result.error.ename).toBe("OSError");
    expect(done.result.error.evalue).toMatch(/File too large/);
  });

  it("a memory bomb gets MemoryError, not the machine's memory", async () => {
    const done = await api.run({ messageId: msg(), code: "x = bytearray(64 * 1024**3)" });
    expect(done.status).toBe("completed");
    expect(done.result.error.ename).toBe("MemoryError");
  });

  it("a fork bomb is limited, stopped at the deadline, and the message and others go on", async () => {
    const m = msg();
    const bomb = api.run(
      {
        messageId: m,
        timeoutMs: 4000,
        code: "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
      },
      60_000,
    );
    const bystander = api.run({ messageId: msg(), code: "print('unharmed')" }, 60_000);
    const [b, ok] = await Promise.all([bomb, bystander]);
    expect(b.status).toBe("timed_out");
    expect(ok.result.stdout).toBe("unharmed\n");
    const after = await api.run({
      messageId: m,
      code: "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]) <= 3)",
    });
    expect(after.status).toBe("completed");
    expect(after.result.stdout).toBe("True\n");
  });

  it("printing without end is capped and stopped at the deadline", async () => {
    const done = await api.run(
      { messageId: msg(), timeoutMs: 3000, code: "while True:\n    print('x' * 10000)" },
      60_000,
    );
    expect(done.status).toBe("timed_out");
    expect(done.result.stdout.length).toBeLessThanOrEqual(65536 + 200);
    expect(done.result.stdout).toMatch(/output truncated: [\d,]+ bytes dropped/);
  });
});
