/** The modules a pool kernel imports before any message gets it: what a chat's first analysis reaches for. */
export const DEFAULT_PRELOAD_MODULES = ["numpy", "pandas", "matplotlib", "openpyxl"] as const;

/** What a preload entry may be: a dotted Python module name (the list becomes code). */
export const PYTHON_MODULE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

export class PreloadConfigError extends Error {
  override name = "PreloadConfigError";
}

/**
 * Python run in a pool kernel after its start, before it is handed to a message. It imports the modules and
 * pays each one's first-use costs (pandas' CSV and Excel paths, matplotlib's backend and first figure), all
 * in memory, then leaves no name behind: the message's code starts from an empty namespace, and only the
 * module cache (`sys.modules`) is warm. A module that fails to import is skipped: it costs that message the
 * import, nothing else.
 */
export function preloadCode(modules: readonly string[]): string {
  for (const m of modules)
    if (!PYTHON_MODULE_NAME.test(m)) throw new PreloadConfigError(`not a Python module name: "${m}"`);
  if (modules.length === 0) return "";
  const wanted = new Set(modules.map((m) => m.split(".")[0]));
  const warm: string[] = [];
  if (wanted.has("pandas")) {
    warm.push(
      "    try:",
      "        if 'pandas' in ok:",
      "            import pandas",
      "            df = pandas.read_csv(io.StringIO('a,b\\n1,x\\n2,y\\n'))",
      "            df.groupby('b').sum().describe()",
      "            if 'openpyxl' in ok:",
      "                df.to_excel(io.BytesIO())",
      "    except Exception:",
      "        pass",
    );
  }
  if (wanted.has("matplotlib")) {
    warm.push(
      "    try:",
      "        if 'matplotlib' in ok:",
      "            import matplotlib.pyplot as plt",
      "            fig, ax = plt.subplots()",
      "            ax.bar([1, 2], [3, 4])",
      "            ax.set_title('warm-up')",
      "            fig.savefig(io.BytesIO(), format='png')",
      "            plt.close('all')",
      "    except Exception:",
      "        pass",
    );
  }
  return [
    "def _ci_preload(modules):",
    "    import importlib, io",
    "    ok = set()",
    "    for name in modules:",
    "        try:",
    "            importlib.import_module(name)",
    "            ok.add(name.split('.')[0])",
    "        except Exception:",
    "            pass",
    ...warm,
    `_ci_preload(${JSON.stringify(modules)})`,
    "del _ci_preload",
    "",
  ].join("\n");
}
