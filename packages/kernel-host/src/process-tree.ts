import { readdirSync, readFileSync } from "node:fs";

/** pid → parent pid of every process we can see (Linux /proc; empty elsewhere). */
function parents(): Map<number, number> {
  const out = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      // The command name (field 2) is in parentheses and may hold spaces: fields after the last ")".
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      out.set(Number(e), ppid);
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

/** Every process below `pid` (children, grandchildren, ...). */
export function descendantsOf(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const [child, parent] of parents()) byParent.set(parent, [...(byParent.get(parent) ?? []), child]);
  const out: number[] = [];
  const stack = [pid];
  while (stack.length) {
    for (const c of byParent.get(stack.pop()!) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

const kill = (target: number, signal: NodeJS.Signals) => {
  try {
    process.kill(target, signal);
  } catch {
    // Already gone.
  }
};

/**
 * SIGKILLs a process and everything it started. jupyter_client starts each kernel in a session of its own
 * (so a signal to the server's group misses them), and a kernel of a SIGKILLed server would live on holding
 * its memory: the tree is read first, then the server, each descendant and each descendant's group die.
 */
export function killTree(pid: number): number {
  const below = descendantsOf(pid);
  kill(pid, "SIGKILL");
  for (const d of below) {
    kill(-d, "SIGKILL");
    kill(d, "SIGKILL");
  }
  return below.length;
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
