import { Router } from "express";
import type { Queue } from "bullmq";
import type { ApiDeps } from "../deps";
import { createApiMetrics } from "./registry";

/** GET /metrics: Prometheus text, unauthenticated like /healthz (scrapers sit inside the deployment). */
export function metricsRouter(
  deps: Pick<ApiDeps, "db" | "redis" | "queuePrefix" | "log" | "executions">,
  queues: Queue[],
): Router {
  const metrics = createApiMetrics({
    db: deps.db,
    redis: deps.redis,
    queuePrefix: deps.queuePrefix,
    queues,
    cellQueues: () => deps.executions.cellQueues(),
    log: deps.log,
  });
  const router = Router();
  router.get("/metrics", async (_req, res) => {
    const body = await metrics.render();
    res.setHeader("content-type", metrics.contentType);
    res.setHeader("cache-control", "no-store");
    res.send(body);
  });
  return router;
}
