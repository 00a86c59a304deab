import { describe, expect, it } from "vitest";
import { OutputCollector, DEFAULT_LIMITS } from "../src/collector";
import { stripAnsi } from "../src/ansi";
import { selectBundle } from "../src/outputs";
import { StreamCap, truncationMarker } from "../src/stream-cap";
import { normalizeKernelPath } from "../src/gateway";
import { InvalidKernelPathError } from "../src/errors";
import type { KernelEvent } from "../src/types";

const msg = (msg_type: string, content: object) => ({ header: { msg_type }, content });

describe("stripAnsi", () => {
  it("removes colour codes from tracebacks", () => {
    expect(stripAnsi("\u001b[0;31mZeroDivisionError\u001b[0m: division by zero")).toBe(
      "ZeroDivisionError: division by zero",
    );
  });
});

describe("StreamCap", () => {
  it("keeps everything under the cap", () => {
    const cap = new StreamCap(10);
    expect(cap.append("hello")).toBe("hello");
    expect(cap.text()).toBe("hello");
    expect(cap.dropped).toBe(0);
  });

  it("keeps the head and appends a marker with the dropped byte count", () => {
    const cap = new StreamCap(4);
    expect(cap.append("abcdef")).toBe("abcd");
    expect(cap.append("x".repeat(9_437_184))).toBe("");
    expect(cap.dropped).toBe(2 + 9_437_184);
    expect(cap.text()).toBe("abcd" + truncationMarker(9_437_186));
    expect(truncationMarker(9_437_184)).toBe("\n[... output truncated: 9,437,184 bytes dropped ...]");
  });

  it("never splits a multi-byte character", () => {
    const cap = new StreamCap(4);
    cap.append("ab€"); // € is 3 bytes: 5 in all
    expect(cap.text().startsWith("ab")).toBe(true);
    expect(cap.text()).not.toContain("\uFFFD");
    expect(cap.dropped).toBe(3);
  });
});

describe("selectBundle", () => {
  it("keeps only the image of a figure bundle", () => {
    const out = selectBundle(
      { "image/png": "iVBOR\n", "text/plain": "<Figure size 640x480 with 1 Axes>" },
      { "image/png": { width: 640 } },
    );
    expect(out).toEqual([{ mimeType: "image/png", data: "iVBOR", metadata: { width: 640 } }]);
  });

  it("keeps html plus plain text for a DataFrame", () => {
    const out = selectBundle({ "text/html": "<table></table>", "text/plain": "   a\n0  1" });
    expect(out.map((o) => o.mimeType)).toEqual(["text/html", "text/plain"]);
  });

  it("serialises application/json and drops unknown types", () => {
    expect(selectBundle({ "application/json": { a: 1 }, "application/vnd.custom": "x" })).toEqual([
      { mimeType: "application/json", data: '{"a":1}' },
    ]);
  });
});

describe("OutputCollector", () => {
  it("streams kept chunks and records the error without ANSI codes", () => {
    const events: KernelEvent[] = [];
    const c = new OutputCollector(DEFAULT_LIMITS, (e) => events.push(e));
    c.handle(msg("stream", { name: "stdout", text: "before\n" }));
    c.handle(msg("error", { ename: "\u001b[31mValueError", evalue: "bad", traceback: ["\u001b[0;31mline\u001b[0m"] }));
    expect(events).toEqual([{ type: "stdout", text: "before\n" }]);
    expect(c.result().stdout).toBe("before\n");
    expect(c.error).toEqual({ ename: "ValueError", evalue: "bad", traceback: ["line"] });
  });

  it("does not double a figure sent as execute_result and display_data", () => {
    const c = new OutputCollector(DEFAULT_LIMITS);
    const bundle = { data: { "image/png": "AAAA", "text/plain": "<Figure>" }, metadata: {} };
    c.handle(msg("execute_result", { ...bundle, execution_count: 3 }));
    c.handle(msg("display_data", bundle));
    expect(c.result().outputs).toHaveLength(1);
    expect(c.executionCount).toBe(3);
  });

  it("caps the number and size of rich outputs", () => {
    const c = new OutputCollector({ maxStreamBytes: 100, maxOutputs: 2, maxOutputBytes: 10 });
    for (let i = 0; i < 4; i++) c.handle(msg("display_data", { data: { "text/plain": `v${i}` } }));
    c.handle(msg("display_data", { data: { "text/plain": "x".repeat(20) } }));
    expect(c.result().outputs.map((o) => o.data)).toEqual(["v0", "v1"]);
    expect(c.result().truncated.outputsDropped).toBe(3);
  });

  it("caps stdout and stderr separately", () => {
    const c = new OutputCollector({ ...DEFAULT_LIMITS, maxStreamBytes: 3 });
    c.handle(msg("stream", { name: "stdout", text: "12345" }));
    c.handle(msg("stream", { name: "stderr", text: "ab" }));
    const r = c.result();
    expect(r.stdout).toBe("123" + truncationMarker(2));
    expect(r.stderr).toBe("ab");
    expect(r.truncated).toEqual({ stdoutBytesDropped: 2, stderrBytesDropped: 0, outputsDropped: 0 });
  });

  it("honours clear_output, including wait=true", () => {
    const c = new OutputCollector(DEFAULT_LIMITS);
    c.handle(msg("stream", { name: "stdout", text: "old" }));
    c.handle(msg("clear_output", { wait: true }));
    expect(c.result().stdout).toBe("old");
    c.handle(msg("stream", { name: "stdout", text: "new" }));
    expect(c.result().stdout).toBe("new");
  });
});

describe("normalizeKernelPath", () => {
  it("accepts relative folders", () => {
    expect(normalizeKernelPath(undefined)).toBe("");
    expect(normalizeKernelPath("./a//b/")).toBe("a/b");
  });

  it.each(["/etc", "../x", "a/../../b", "a\\..\\b", "C:\\x"])("rejects %s", (p) => {
    expect(() => normalizeKernelPath(p)).toThrow(InvalidKernelPathError);
  });
});
