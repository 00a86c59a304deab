import { Router } from "express";
import type { ApiDeps } from "../deps";
import { kernelIsolationReport } from "../readiness";

export function healthRouter(deps: Pick<ApiDeps, "readiness" | "redis" | "queuePrefix">): Router {
  const router = Router();
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    const [checks, kernels] = await Promise.all([deps.readiness(), kernelIsolationReport(deps.redis, deps.queuePrefix)]);
    const ok = Object.values(checks).every((c) => c === "ok");
    res.status(ok ? 200 : 503).json({ status: ok ? "ok" : "unavailable", checks, kernels });
  });
  return router;
}
