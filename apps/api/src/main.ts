import { createLogger, normalizeError } from "@codeinterp/logger";
import { loadApiEnv } from "./env";
import { startApiServer } from "./server";

const env = loadApiEnv();
const log = createLogger({ name: "api", level: env.LOG_LEVEL });
if (!env.ADMIN_TOKEN) log.warn("ADMIN_TOKEN is unset: admin routes (API keys, Bull Board) are disabled");

try {
  const api = await startApiServer(env, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    const hard = setTimeout(() => {
      log.error("shutdown deadline passed; exiting");
      process.exit(1);
    }, 15_000);
    hard.unref();
    api.close(10_000).then(
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
  log.fatal({ err: normalizeError(err) }, "api failed to start");
  process.exit(1);
}
