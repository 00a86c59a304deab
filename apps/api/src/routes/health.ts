import { Router } from "express";
import type { ApiDeps } from "../deps";

export function healthRouter(deps: Pick<ApiDeps, "readiness">): Router {
  const router = Router();
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", async (_req, res) => {
    const report = await deps.readiness();
    const ok = Object.values(report.checks).every((c) => c === "ok");
    res.status(ok ? 200 : 503).json({ status: ok ? "ok" : "unavailable", ...report });
  });
  return router;
}
