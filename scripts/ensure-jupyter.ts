// Makes sure the embedded kernel gateway (Debian's jupyter-server + ipykernel) is installed.
import { ensureJupyterInstalled } from "@codeinterp/kernel-host";

const log = {
  debug: () => undefined,
  info: (o: unknown, m?: string) => console.error(`[setup] ${m ?? (typeof o === "string" ? o : JSON.stringify(o))}`),
  warn: (o: unknown, m?: string) => console.error(`[setup] ${m ?? (typeof o === "string" ? o : JSON.stringify(o))}`),
  error: (o: unknown, m?: string) => console.error(`[setup] ${m ?? (typeof o === "string" ? o : JSON.stringify(o))}`),
};
try {
  await ensureJupyterInstalled({ allowApt: process.env.CODEINTERP_NO_APT !== "1", log });
} catch (err) {
  console.error(`[setup] ${(err as Error).message}`);
  process.exit(1);
}
