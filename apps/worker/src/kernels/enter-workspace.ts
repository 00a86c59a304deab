/**
 * Python that makes a kernel start every cell in its workspace (a pre_run_cell hook, so the warm path pays
 * no extra round trip), and goes there now. Run once per kernel and message; a sandboxed pool kernel runs it
 * with its preload, since every sandboxed kernel sees its workspace at the same path.
 */
export function enterWorkspaceCode(dir: string): string {
  const d = JSON.stringify(dir);
  return [
    "def _ci_enter_workspace(*_args, _d=" + d + "):",
    "    import os",
    "    if os.getcwd() != _d:",
    "        os.chdir(_d)",
    "_ci_enter_workspace()",
    "get_ipython().events.register('pre_run_cell', _ci_enter_workspace)",
    "del _ci_enter_workspace",
  ].join("\n");
}
