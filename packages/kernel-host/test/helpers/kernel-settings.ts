import type { KernelSession } from "@codeinterp/kernel";

/** What the second cell of cellsUnderOurSettings prints; the same for every kind of kernel. */
export const AS_CONFIGURED = "42 'x = 41\\nx + 1' False False 0.0\n";

/**
 * Cells under the kernels' IPython settings (kernel-ipython.ts). The second prints the last result and the
 * last input (IPython keeps them in memory), whether the history manager is on, whether its database file
 * exists, and the pause before each reply. Then 50 cells print to stdout and stderr: with no pause, each one's
 * output must still all be in its outcome. Returns what the second printed, by how much the execution count
 * went up from the first to the second, and how many of the 50 lost output.
 */
export async function cellsUnderOurSettings(
  kernel: KernelSession,
): Promise<{ printed: string; counted: number; lostOutput: number }> {
  const first = await kernel.execute("x = 41\nx + 1");
  if (first.status !== "ok") throw new Error(`the first cell ended ${first.status}`);
  const second = await kernel.execute(
    "import os\nhm = get_ipython().history_manager\nprint(_, repr(_i), hm.enabled, os.path.exists(hm.hist_file), get_ipython().kernel._execute_sleep)",
  );
  let lostOutput = 0;
  for (let i = 0; i < 50; i++) {
    const o = await kernel.execute(`import sys\nprint(${i})\nprint(${i}, file=sys.stderr)`);
    if (o.stdout !== `${i}\n` || o.stderr !== `${i}\n`) lostOutput++;
  }
  return {
    printed: second.stdout,
    counted: (second.executionCount ?? NaN) - (first.executionCount ?? NaN),
    lostOutput,
  };
}
