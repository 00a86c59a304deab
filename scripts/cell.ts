// One cell (apps/worker/src/cells): the embedded local Jupyter server and a worker on this machine, with its
// DATA_DIR, in the foreground; what a cell pod or machine runs (the API runs elsewhere). SIGTERM drains the
// worker (it finishes its turns and hands its messages on), then stops the server and its kernels.
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { defaultDataDir, repoRoot } from "@codeinterp/config";
import { startEmbeddedJupyter } from "./embedded-jupyter";

const say = (msg: string) => console.error(`[cell] ${msg}`);
const dataDir = path.resolve(process.env.DATA_DIR ?? defaultDataDir);
await mkdir(dataDir, { recursive: true });
const jupyter = await startEmbeddedJupyter(dataDir, say);
const worker = spawn(process.execPath, ["--import", "tsx", "apps/worker/src/main.ts"], {
  cwd: repoRoot,
  env: {
    ...process.env,
    DATA_DIR: dataDir,
    JUPYTER_URL: jupyter.url,
    JUPYTER_TOKEN: jupyter.token,
    UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? "16",
  },
  stdio: ["ignore", "inherit", "inherit"],
});

let stopping = false;
async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  if (worker.exitCode === null && worker.signalCode === null) {
    const exited = new Promise((r) => worker.once("exit", r));
    worker.kill("SIGTERM");
    await exited;
  }
  await jupyter.stop();
  process.exit(code);
}
worker.on("exit", (code, signal) => {
  if (!stopping) say(`worker exited (${signal ?? code}); stopping the cell`);
  void stop(code ?? 1);
});
process.on("SIGTERM", () => void stop(0));
process.on("SIGINT", () => void stop(0));
