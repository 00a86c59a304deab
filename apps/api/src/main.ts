import { createLogger, exitOnSignals, normalizeError } from "@codeinterp/logger";
import { loadApiEnv } from "./env";
import { startApiServer } from "./server";

const env = loadApiEnv();
const log = createLogger({ name: "api", level: env.LOG_LEVEL });
if (!env.ADMIN_TOKEN) log.warn("ADMIN_TOKEN is unset: admin routes (API keys, Bull Board) are disabled");

try {
  const api = await startApiServer(env, log);
  exitOnSignals(log, () => api.close(10_000), { hardDeadlineMs: 15_000 });
} catch (err) {
  log.fatal({ err: normalizeError(err) }, "api failed to start");
  process.exit(1);
}
