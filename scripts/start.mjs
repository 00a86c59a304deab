// `npm start` from a fresh clone: set everything up, then run the stack in the foreground.
import { spawn } from "node:child_process";
import { root, setup } from "./setup.mjs";

try {
  await setup();
} catch (err) {
  console.error(`[start] ${err.message}`);
  process.exit(1);
}
const child = spawn(process.execPath, ["--import", "tsx", "scripts/stack.ts"], { cwd: root, stdio: "inherit" });
// The stack handles Ctrl-C itself (the terminal signals the whole group); forward a SIGTERM sent to us alone.
process.on("SIGTERM", () => child.kill("SIGTERM"));
process.on("SIGINT", () => undefined);
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
