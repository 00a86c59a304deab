import { describe, expect, it } from "vitest";
import { bundlesOf, endsWithExpression } from "../apps/api/src/jupyter/outputs";
import { parseFrame, MalformedFrameError, serialize, reply, V1_PROTOCOL } from "../apps/api/src/jupyter/protocol";

describe("which cells end in a value (execute_result) — the record keeps no message type", () => {
  it.each([
    ["x * 2", true],
    ["import pandas as pd\ndf = pd.DataFrame({'a': [1]})\ndf", true],
    ["df.groupby('a')\\\n  .sum()", true],
    ["result = (1 +\n    2)", false],
    ["x == 1", true],
    ["x += 1", false],
    ["y: int = 3", false],
    ["print('hi')", false],
    ["display(df)", false],
    ["plt.show();", false],
    ["for i in range(3):\n    i", false],
    ["def f():\n    return 1", false],
    ["f(a=1)", true],
    ["# only a comment", false],
    ["x\n# trailing comment\n", true],
  ])("%j → %s", (code, expected) => {
    expect(endsWithExpression(code)).toBe(expected);
  });
});

describe("bundles rebuilt from the result's flat output list", () => {
  it("html + plain are one bundle, an image is its own, a lone plain is its own", () => {
    const bundles = bundlesOf([
      { type: "text/html", data: "<b>x</b>" },
      { type: "text/plain", data: "x" },
      { type: "image/png", fileId: "f1" },
      { type: "text/plain", data: "42" },
    ]);
    expect(bundles.map((b) => b.entries.map((e) => e.type))).toEqual([
      ["text/html", "text/plain"],
      ["image/png"],
      ["text/plain"],
    ]);
  });
});

describe("websocket frames", () => {
  it("round-trips the v1 binary layout and rejects a bad offset table", () => {
    const msg = reply("s", "shell", "execute_request", null, { code: "print(1)" });
    const wire = serialize(msg, V1_PROTOCOL) as Buffer;
    const back = parseFrame(wire, true, V1_PROTOCOL);
    expect(back).toMatchObject({
      channel: "shell",
      header: { msg_type: "execute_request" },
      content: { code: "print(1)" },
    });
    const broken = Buffer.from(wire);
    broken.writeBigUInt64LE(10_000n, 16);
    expect(() => parseFrame(broken, true, V1_PROTOCOL)).toThrow(MalformedFrameError);
  });

  it("JSON frames carry msg_id and msg_type at the top too (Open WebUI reads them there)", () => {
    const text = serialize(
      reply("s", "iopub", "status", { msg_id: "m", msg_type: "execute_request" }, { execution_state: "idle" }),
      "",
    ) as string;
    expect(JSON.parse(text)).toMatchObject({ msg_type: "status", parent_header: { msg_id: "m" }, channel: "iopub" });
    expect(() => parseFrame(Buffer.from('{"header":{}}'), false, "")).toThrow(MalformedFrameError);
  });
});
