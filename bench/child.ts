// One service (the API or a worker) in its own process, configured from the environment the bench gives it.
// Separate processes keep the load generator off the API's event loop and let the bench read each
// process's peak RSS (/proc/<pid>/status VmHWM). Each child counts its Postgres statements and Redis
// commands (bench/call-counter.ts); a line "COUNTS" on its stdin is answered with "BENCH_COUNTS <json>".
import { createInterface } from "node:readline";
import { pino } from "pino";
import { loadApiEnv } from "../apps/api/src/env";
import { startApiServer } from "../apps/api/src/server";
import { loadWorkerEnv } from "../apps/worker/src/env";
import { startWorker } from "../apps/worker/src/start";
import { createLogger } from "@codeinterp/logger";
import { callCounts, installCallCounter } from "./call-counter";

installCallCounter();

const role = process.argv[2];
const level = (process.env.LOG_LEVEL ?? "warn") as "warn";
const log = createLogger({ name: `bench-${role}`, level, destination: pino.destination(2) });

async function main() {
  let close: () => Promise<void>;
  if (role === "api") {
    const api = await startApiServer(loadApiEnv(process.env), log);
    close = () => api.close(2000);
    process.stdout.write(`BENCH_READY ${JSON.stringify({ url: api.url })}\n`);
  } else if (role === "worker") {
    const worker = await startWorker(loadWorkerEnv(process.env), log);
    close = () => worker.close(5000);
    process.stdout.write(`BENCH_READY ${JSON.stringify({})}\n`);
  } else {
    throw new Error(`unknown role ${role}`);
  }
  createInterface({ input: process.stdin }).on("line", (line) => {
    if (line === "COUNTS") process.stdout.write(`BENCH_COUNTS ${JSON.stringify(callCounts())}\n`);
  });
  const stop = () => {
    void close().finally(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
