// Follow-ups as users send them: each after a pause in which the box goes idle, beside the raw kernel after the
// same pause. On this VM every process woken from idle costs 1-2 ms more than a busy one, which a loop of
// back-to-back requests never shows. Used by `npm run bench` (latency) and `npm run bench:ab`.
import type { KernelSession } from "@codeinterp/kernel";
import type { apiClient } from "./client";
import { sleep } from "./context";
import { expectOk } from "./raw-kernel";
import { now } from "./stats";

/** The pause before each `print(1)`: long enough for the box to go idle. */
export const PAUSE_MS = 250;

/**
 * `n` rounds of a raw kernel `print(1)` and a one-request codeinterp `print(1)` in `messageId`, each after
 * PAUSE_MS; their times (ms) are added to `into`.
 */
export async function pausedPrints(
  raw: KernelSession,
  ci: ReturnType<typeof apiClient>,
  messageId: string,
  n: number,
  into: { raw: number[]; oneRequest: number[] },
  label: string,
): Promise<void> {
  for (let i = 0; i < n; i++) {
    await sleep(PAUSE_MS);
    const a = now();
    await expectOk(raw, "print(1)");
    into.raw.push(now() - a);
    await sleep(PAUSE_MS);
    const r = await ci.runWaiting({ messageId, code: "print(1)" });
    if (r.exec.status !== "completed") throw new Error(`${label}: run ended ${r.exec.status}`);
    into.oneRequest.push(r.ms);
  }
}
