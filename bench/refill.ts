// Issue 13: do pool refills (a kernel start plus the preload, ~2 s of CPU) slow executions already running?
// A warm message runs a CPU-bound cell (~200 ms) alone, then right after a new message took a pool kernel
// (so the pool is refilling during the cell). Sandboxed pool kernels start at a background CPU weight.
import type { apiClient } from "./client";
import { summarize } from "./stats";
import type { Summary } from "./stats";

export interface RefillContext {
  ci: ReturnType<typeof apiClient>;
  n: number;
  msg: (tag: string) => string;
  sleep: (ms: number) => Promise<unknown>;
}

const CPU_CELL = "s = 0\nfor i in range(2_000_000):\n    s += i * i\nprint(s > 0)";

export async function benchRefillInterference(c: RefillContext): Promise<{ alone: Summary; duringRefill: Summary }> {
  const messageId = c.msg("busy");
  const run = async () => {
    const r = await c.ci.run({ messageId, code: CPU_CELL });
    if (r.exec.result?.stdout !== "True\n") throw new Error(`cpu cell: ${JSON.stringify(r.exec.result)}`);
    return r.ms;
  };
  await run();
  const alone: number[] = [];
  const during: number[] = [];
  for (let i = 0; i < c.n; i++) {
    // The pool is full again (start + preload take ~2 s): the cell runs with nothing else going on.
    await c.sleep(4000);
    alone.push(await run());
    // A new message takes a pool kernel; its refill starts at once and overlaps the next cell.
    await c.ci.run({ messageId: c.msg("taker"), code: "1" });
    during.push(await run());
  }
  return { alone: summarize(alone), duringRefill: summarize(during) };
}
