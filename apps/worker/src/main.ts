import { createLogger, exitOnSignals, normalizeError } from "@codeinterp/logger";
import { loadWorkerEnv } from "./env";
import { startWorker } from "./start";

const env = loadWorkerEnv();
// @jupyterlab/services narrates every websocket and kernel status change on console.debug; our own
// structured logs say what matters, so that chatter is dropped in the worker process.
console.debug = () => undefined;
const log = createLogger({ name: "worker", level: env.LOG_LEVEL }).child({ workerId: env.WORKER_ID });

try {
  const worker = await startWorker(env, log);
  exitOnSignals(log, () => worker.close(), { hardDeadlineMs: env.SHUTDOWN_DEADLINE_MS + 5000, message: "draining" });
} catch (err) {
  log.fatal({ err: normalizeError(err) }, "worker failed to start");
  process.exit(1);
}
