import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  PathEscapeError,
  fromKernelText,
  resolveInside,
  rewriteSandboxLinks,
  toKernelCode,
  workspaceDirFor,
  workspaceId,
  workspaceRelPath,
} from "../src/index";

const REAL = "/srv/codeinterp/workspaces/ab/ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12";

describe("workspace paths", () => {
  it("derives a hashed, fanned-out dir that ids cannot steer", () => {
    const id = workspaceId("alice", "msg-1");
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(workspaceRelPath("alice", "msg-1")).toBe(`workspaces/${id.slice(0, 2)}/${id}`);
    expect(workspaceDirFor("/data", "alice", "msg-1")).toBe(`/data/workspaces/${id.slice(0, 2)}/${id}`);
    const evil = workspaceDirFor("/data", "../../..", "/etc/passwd");
    expect(evil.startsWith("/data/workspaces/")).toBe(true);
    expect(workspaceId("a", "bc")).not.toBe(workspaceId("ab", "c"));
    expect(workspaceId("alice", "msg-1")).not.toBe(workspaceId("bob", "msg-1"));
  });

  it("rejects ids with NUL or empty ids", () => {
    expect(() => workspaceId("a\0b", "c")).toThrow(TypeError);
    expect(() => workspaceId("a", "")).toThrow(TypeError);
  });
});

describe("resolveInside", () => {
  it("resolves inside paths", () => {
    expect(resolveInside("/ws", "a/b.csv")).toBe("/ws/a/b.csv");
    expect(resolveInside("/ws", "a/../b.csv")).toBe("/ws/b.csv");
    expect(resolveInside("/ws", "a\\b.csv")).toBe("/ws/a/b.csv");
    expect(resolveInside("/ws", "")).toBe("/ws");
    expect(resolveInside("/ws", "..foo")).toBe("/ws/..foo");
  });

  it.each(["..", "../x", "a/../../x", "/etc/passwd", "C:\\x", "\\\\server\\share", "a\0b", "..\\x"])(
    "rejects %j",
    (rel) => {
      expect(() => resolveInside("/ws", rel)).toThrow(PathEscapeError);
    },
  );
});

describe("toKernelCode / fromKernelText", () => {
  it("rewrites /mnt/data at path boundaries only", () => {
    const code = [
      `pd.read_csv("/mnt/data/x.csv")`,
      `os.listdir('/mnt/data')`,
      `os.chdir(/mnt/data)`,
      `!ls /mnt/data`,
      `p = "/mnt/database/x"`,
      `q = "/mnt/data2"`,
      `r = "/mnt/data.csv"`,
      `s = "/x/mnt/data/y"`,
      `t = f"/mnt/data/{name}"`,
    ].join("\n");
    const out = toKernelCode(code, REAL + "/");
    expect(out).toContain(`pd.read_csv("${REAL}/x.csv")`);
    expect(out).toContain(`os.listdir('${REAL}')`);
    expect(out).toContain(`os.chdir(${REAL})`);
    expect(out).toContain(`!ls ${REAL}`);
    expect(out).toContain(`"/mnt/database/x"`);
    expect(out).toContain(`"/mnt/data2"`);
    expect(out).toContain(`"/mnt/data.csv"`);
    expect(out).toContain(`"/x/mnt/data/y"`);
    expect(out).toContain(`f"${REAL}/{name}"`);
    expect(
      out.endsWith(
        `!ls ${REAL}\np = "/mnt/database/x"\nq = "/mnt/data2"\nr = "/mnt/data.csv"\ns = "/x/mnt/data/y"\nt = f"${REAL}/{name}"`,
      ),
    ).toBe(true);
  });

  it("rewrites the real dir and its aliases back", () => {
    const alias = "/private" + REAL;
    const text = `FileNotFoundError: [Errno 2] No such file or directory: '${REAL}/y.csv'\n  File "${alias}/s.py", line 1\n${REAL}2/other ${REAL}`;
    expect(fromKernelText(text, [REAL, alias])).toBe(
      `FileNotFoundError: [Errno 2] No such file or directory: '/mnt/data/y.csv'\n  File "/mnt/data/s.py", line 1\n${REAL}2/other /mnt/data`,
    );
  });

  const realDir = fc
    .array(fc.stringMatching(/^[a-z0-9_-]{1,8}$/), { minLength: 1, maxLength: 4 })
    .map((parts) => "/" + parts.join("/") + "/ws0123456789abcdef");
  const codeWithMnt = fc
    .array(
      fc.oneof(
        fc.constantFrom(
          "/mnt/data",
          "/mnt/data/",
          "/mnt/data/x.csv",
          "/mnt/database",
          "/mnt/data2",
          "'",
          '"',
          " ",
          "\n",
          "(",
          ")",
          "/",
          "a",
          ".",
          "é",
          "{",
          "/mnt",
        ),
        fc.string({ maxLength: 6 }),
      ),
      { maxLength: 20 },
    )
    .map((parts) => parts.join(""));

  it("property: round trip restores code that never mentions the real dir", () => {
    fc.assert(
      fc.property(codeWithMnt, realDir, (code, dir) => {
        fc.pre(!code.includes(dir));
        const kernel = toKernelCode(code, dir);
        expect(kernel.includes("/mnt/data") && !code.includes("/mnt/data")).toBe(false);
        expect(fromKernelText(kernel, dir)).toBe(code);
      }),
      { numRuns: 400 },
    );
  });

  it("property: the reverse direction restores text that never mentions /mnt/data", () => {
    fc.assert(
      fc.property(codeWithMnt, realDir, (code, dir) => {
        const text = code.replaceAll("/mnt/data", dir);
        fc.pre(!text.includes("/mnt/data"));
        expect(toKernelCode(fromKernelText(text, dir), dir)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });
});

describe("rewriteSandboxLinks", () => {
  const files = [
    { path: "x.csv", url: "/v1/files/f1/content" },
    { path: "my file (2).csv", url: "/v1/files/f2/content" },
    { path: "/mnt/data/charts/p.png", url: "/v1/files/f3/content" },
  ];

  it("rewrites sandbox: and link-target /mnt/data links", () => {
    const md = [
      "[download](sandbox:/mnt/data/x.csv)",
      "[bare](/mnt/data/x.csv)",
      "![chart](sandbox:/mnt/data/charts/p.png)",
      '<img src="/mnt/data/charts/p.png">',
      "[spaces](sandbox:/mnt/data/my%20file%20(2).csv)",
      "[raw spaces](sandbox:/mnt/data/my file (2).csv)",
      "[angle](</mnt/data/my file (2).csv>)",
      "Saved to sandbox:/mnt/data/x.csv.",
    ].join("\n");
    expect(rewriteSandboxLinks(md, files)).toBe(
      [
        "[download](/v1/files/f1/content)",
        "[bare](/v1/files/f1/content)",
        "![chart](/v1/files/f3/content)",
        '<img src="/v1/files/f3/content">',
        "[spaces](/v1/files/f2/content)",
        "[raw spaces](/v1/files/f2/content)",
        "[angle](</v1/files/f2/content>)",
        "Saved to /v1/files/f1/content.",
      ].join("\n"),
    );
  });

  it("leaves unknown paths, prose and inline code alone", () => {
    const md = [
      "[gone](sandbox:/mnt/data/missing.csv)",
      "[prefix](sandbox:/mnt/data/x.csv.bak)",
      "I wrote `/mnt/data/x.csv` for you, see /mnt/data/x.csv",
      "[other](sandbox:/mnt/database/x.csv)",
    ].join("\n");
    expect(rewriteSandboxLinks(md, files)).toBe(md);
    expect(rewriteSandboxLinks(md, [])).toBe(md);
  });
});
