// The cost of containment: kernel start and warm print(1), sandboxed (bwrap + cgroup + ipc) vs plain.
import { benchContainment } from "../containment";
import type { Bench } from "../context";

export async function containment(b: Bench): Promise<void> {
  const { P, results, log, root, jupyter } = b;
  log("containment: kernel start and warm print(1), sandboxed (bwrap + cgroup + ipc) vs plain (tcp, no sandbox)");
  const c = await benchContainment(root, jupyter, { startN: P.containmentStartN, printN: P.containmentPrintN });
  Object.assign(results, c.keys);
  results.containment = c.detail;
  log(`containment: ${JSON.stringify(c.keys)}`);
}
