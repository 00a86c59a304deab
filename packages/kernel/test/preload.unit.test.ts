import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { DEFAULT_PRELOAD_MODULES, PreloadConfigError, preloadCode } from "../src/preload";

/** The Python the embedded server's kernels run (kernel-host's JUPYTER_PYTHON, which this package cannot import). */
const KERNEL_PYTHON = "/usr/bin/python3";

/** Runs the preload the way a kernel does (top-level exec), then reports what it left behind. */
function runPreload(code: string): { names: string[]; loaded: string[] } {
  const probe = [
    "import json, sys",
    "ns = {}",
    "exec(sys.stdin.read(), ns)",
    "print(json.dumps({'names': sorted(k for k in ns if k != '__builtins__'), 'loaded': sorted(m for m in ('numpy', 'pandas', 'matplotlib.pyplot', 'openpyxl', 'nosuchmodule') if m in sys.modules)}))",
  ].join("\n");
  const out = execFileSync(KERNEL_PYTHON, ["-c", probe], {
    input: code,
    env: { MPLBACKEND: "agg", MPLCONFIGDIR: "/tmp/codeinterp-preload-test" },
  });
  return JSON.parse(out.toString()) as { names: string[]; loaded: string[] };
}

describe("pool kernel preload", () => {
  it("warms the default modules and leaves no name in the user's namespace", () => {
    const result = runPreload(preloadCode(DEFAULT_PRELOAD_MODULES));
    expect(result.names).toEqual([]);
    expect(result.loaded).toEqual(["matplotlib.pyplot", "numpy", "openpyxl", "pandas"]);
  });

  it("skips a module that does not import instead of failing the kernel", () => {
    const result = runPreload(preloadCode(["nosuchmodule", "numpy"]));
    expect(result).toEqual({ names: [], loaded: ["numpy"] });
  });

  it("refuses anything but module names (the list becomes code)", () => {
    expect(() => preloadCode(["os; import shutil"])).toThrow(PreloadConfigError);
    expect(() => preloadCode(["numpy", "x')\nprint('y"])).toThrow(PreloadConfigError);
    expect(preloadCode([])).toBe("");
  });
});
