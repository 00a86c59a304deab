import { runCli } from "./cli";

/** Wires the CLI to the process: argv, env, stdio, Ctrl-C (first one cancels the execution, second one quits). */
export async function main(): Promise<number> {
  const abort = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) process.exit(130);
    abort.abort(new Error("interrupted"));
  };
  process.on("SIGINT", onSigint);
  try {
    const code = await runCli(process.argv.slice(2), {
      stdout: process.stdout,
      stderr: process.stderr,
      tty: Boolean(process.stderr.isTTY),
      cwd: process.cwd(),
      signal: abort.signal,
    });
    return abort.signal.aborted && code !== 0 ? 130 : code;
  } finally {
    process.off("SIGINT", onSigint);
  }
}
