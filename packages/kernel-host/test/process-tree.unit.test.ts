import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { descendantsOf, isAlive, killTree } from "../src/process-tree";

async function until(fn: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

describe("killTree", () => {
  it("kills a stopped process and what it started, including children in sessions of their own (as kernels are)", async () => {
    // A "server" with two "kernels": one in its own session (jupyter_client's start_new_session), one not,
    // and a grandchild below the first.
    const server = spawn("sh", ["-c", "setsid sh -c 'sleep 300 & sleep 300' & sleep 300 & wait"], { stdio: "ignore" });
    const pid = server.pid!;
    expect(await until(() => descendantsOf(pid).length >= 4, 5000)).toBe(true);
    const tree = descendantsOf(pid);
    process.kill(pid, "SIGSTOP");
    const exited = new Promise((r) => server.once("exit", r));
    expect(killTree(pid)).toBe(tree.length);
    await exited;
    expect(await until(() => tree.every((p) => !isAlive(p)), 5000)).toBe(true);
  });
});
