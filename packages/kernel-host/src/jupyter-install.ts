import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { JupyterNotInstalledError } from "./errors";
import type { Log } from "@codeinterp/kernel";
import { exists } from "./fs";

const run = promisify(execFile);

/** Debian's packages; the first `python3` on PATH is often another interpreter without them. */
export const JUPYTER_PYTHON = "/usr/bin/python3";
export const APT_PACKAGES = [
  "python3-jupyter-server",
  "python3-ipykernel",
  "python3-pandas",
  "python3-openpyxl",
  "python3-matplotlib",
  "python3-reportlab",
  // Sandboxed kernels (sandbox.ts), and their forwarder to the egress proxy (sandbox-launcher.py).
  "bubblewrap",
  "socat",
] as const;

export async function findJupyterPython(): Promise<string | null> {
  try {
    await run(JUPYTER_PYTHON, ["-c", "import jupyter_server, ipykernel"], { timeout: 30_000 });
    return JUPYTER_PYTHON;
  } catch {
    return null;
  }
}

/** Returns the python interpreter that has jupyter_server + ipykernel, installing them with apt when allowed. */
export async function ensureJupyterInstalled(opts: { allowApt: boolean; log: Log }): Promise<string> {
  const found = await findJupyterPython();
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  // As root the embedded server sandboxes kernels with bubblewrap, so that counts as part of the install.
  if (found && (!isRoot || ((await exists("/usr/bin/bwrap")) && (await exists("/usr/bin/socat"))))) return found;
  const hasApt = await exists("/usr/bin/apt-get");
  const advice =
    `Jupyter is not installed for ${JUPYTER_PYTHON}. Install it with: ` +
    `apt-get update && apt-get install -y ${APT_PACKAGES.join(" ")} ` +
    `(or point JUPYTER_URL at an existing Jupyter server).`;
  if (!opts.allowApt || !isRoot || !hasApt) throw new JupyterNotInstalledError(advice);

  opts.log.info({ packages: APT_PACKAGES }, "installing Jupyter with apt-get (1-2 minutes)");
  // execFile without `env` inherits ours; /usr/bin/env adds the one variable apt needs.
  const apt = async (args: string[]) =>
    run("/usr/bin/env", ["DEBIAN_FRONTEND=noninteractive", "apt-get", ...args], {
      timeout: 15 * 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
  try {
    await apt(["update"]);
    await apt(["install", "-y", ...APT_PACKAGES]);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? "";
    throw new JupyterNotInstalledError(`${advice} apt-get failed: ${stderr.slice(-2000)}`);
  }
  const after = await findJupyterPython();
  if (!after) throw new JupyterNotInstalledError(`${advice} apt-get finished but the modules still do not import.`);
  opts.log.info("Jupyter installed");
  return after;
}
