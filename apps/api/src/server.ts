import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Queue } from "bullmq";
import { loadBlobStore } from "@codeinterp/config";
import { closeDb, createDb } from "@codeinterp/db";
import type { Logger } from "@codeinterp/logger";
import {
  ExecutionRouter,
  createEventSubscriber,
  createRedis,
  executionChangedChannel,
  queueNames,
} from "@codeinterp/queue";
import { FinishedExecutionCache } from "./finished-cache";
import { createFileStore, openBlobStore, startStaleTempSweep } from "@codeinterp/files";
import { createApp } from "./app";
import { attachJupyterChannels } from "./jupyter/channels";
import { jupyterServicesFor } from "./jupyter/services";
import type { ApiEnv } from "./env";
import { loadSigningSecret } from "./links/secret";
import { createLinkSigner } from "./links/signer";
import { createReadinessCheck } from "./readiness";

export interface RunningApi {
  url: string;
  port: number;
  close(deadlineMs?: number): Promise<void>;
}

/** Builds every dependency from config, listens, and knows how to shut all of it down. */
export async function startApiServer(env: ApiEnv, log: Logger): Promise<RunningApi> {
  // First: it may fail (an unreadable DATA_DIR), and nothing is open yet to close.
  const links = createLinkSigner(await loadSigningSecret(env));
  const db = createDb({ url: env.DATABASE_URL });
  const redis = createRedis(env.REDIS_URL, { name: "api" });
  const subscriberRedis = createRedis(env.REDIS_URL, { name: "api-events", blocking: true });
  // Executions go to the shared queue or a cell's (packages/queue/src/cells.ts); Bull Board and /metrics show the shared one.
  const executions = new ExecutionRouter({ connection: redis, prefix: env.QUEUE_PREFIX });
  const executionQueue = executions.shared;
  executionQueue.on("error", (err) => log.warn({ err: err.message }, "queue connection error"));
  const maintenanceQueue = new Queue(queueNames.maintenance, { connection: redis, prefix: env.QUEUE_PREFIX });
  maintenanceQueue.on("error", (err) => log.warn({ err: err.message }, "queue connection error"));
  const events = createEventSubscriber(subscriberRedis, redis, env.QUEUE_PREFIX);
  const finished = new FinishedExecutionCache();
  const changed = executionChangedChannel(env.QUEUE_PREFIX);
  subscriberRedis.on("message", (channel: string, executionId: string) => {
    if (channel === changed) finished.invalidate(executionId);
  });
  await subscriberRedis.subscribe(changed);
  const readiness = createReadinessCheck({ db, redis, queuePrefix: env.QUEUE_PREFIX });
  const blobs = openBlobStore(loadBlobStore(env, "api"), log);
  const files = createFileStore({ db, blobs, log });
  // Its own cache of a bucket has no maintenance job (the workers sweep theirs); on a shared DATA_DIR this is harmless.
  const tempSweep = startStaleTempSweep(blobs, log);
  const deps = {
    env,
    db,
    blobs,
    files,
    links,
    log,
    executionQueue,
    executions,
    maintenanceQueue,
    events,
    readiness,
    redis,
    queuePrefix: env.QUEUE_PREFIX,
    finished,
  };
  const app = createApp(deps);

  const server = createServer(app);
  server.keepAliveTimeout = 65_000;
  const detachJupyter = attachJupyterChannels(server, deps, jupyterServicesFor(deps));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(env.PORT, env.HOST, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = env.HOST === "0.0.0.0" || env.HOST === "::" ? "127.0.0.1" : env.HOST;
  log.info({ port }, "api listening");

  let closing: Promise<void> | null = null;
  const close = (deadlineMs = 10_000) =>
    (closing ??= (async () => {
      tempSweep.stop();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      detachJupyter();
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), deadlineMs);
      await stopped;
      clearTimeout(timer);
      await events.close();
      await executions.close();
      await maintenanceQueue.close();
      redis.disconnect();
      blobs.close();
      await closeDb(db);
    })());
  return { url: `http://${host}:${port}`, port, close };
}
