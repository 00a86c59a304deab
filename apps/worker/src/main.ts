import { createLogger, normalizeError } from "@codeinterp/logger";
import { loadWorkerEnv } from "./env";
import { startWorker } from "./start";

const env = loadWorkerEnv();
// @jupyterlab/services narrates every websocket and kernel status change on console.debug; our own
// structured logs say what matters, so that chatter is dropped in the worker process.
console.debug = () => undefined;
const log = createLogger({ name: "worker", level: env.LOG_LEVEL }).child({ workerId: env.WORKER_ID });

try {
  const worker = await startWorker(env, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "draining");
    const hard = setTimeout(() => {
      log.error("shutdown deadline passed; exiting");
      process.exit(1);
    }, env.SHUTDOWN_DEADLINE_MS + 5000);
    hard.unref();
    worker.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: normalizeError(err) }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
} catch (err) {
  log.fatal({ err: normalizeError(err) }, "worker failed to start");
  process.exit(1);
}
