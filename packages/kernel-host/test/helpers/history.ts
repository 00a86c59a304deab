import type { KernelSession } from "@codeinterp/kernel";

/** What the second cell of historyAfterTwoCells prints; the same for every kind of kernel. */
export const HISTORY_IN_MEMORY_ONLY = "42 'x = 41\\nx + 1' False False\n";

/**
 * Runs two cells; the second prints the last result and the last input (IPython keeps them in memory),
 * whether the history manager is on, and whether its database file exists (kernel-ipython.ts). Also returns
 * by how much the execution count went up from the first cell to the second.
 */
export async function historyAfterTwoCells(kernel: KernelSession): Promise<{ printed: string; counted: number }> {
  const first = await kernel.execute("x = 41\nx + 1");
  if (first.status !== "ok") throw new Error(`the first cell ended ${first.status}`);
  const second = await kernel.execute(
    "import os\nhm = get_ipython().history_manager\nprint(_, repr(_i), hm.enabled, os.path.exists(hm.hist_file))",
  );
  return { printed: second.stdout, counted: (second.executionCount ?? NaN) - (first.executionCount ?? NaN) };
}
