import express from "express";
import type { Express } from "express";
import { requireApiKey } from "./auth";
import type { ApiDeps } from "./deps";
import { errorHandler, unknownRoute } from "./errors";
import { buildOpenApiDocument } from "./openapi";
import { bullBoardRouter } from "./admin/bull-board";
import { kernelsPageRouter } from "./admin/kernels-page";
import { metricsRouter } from "./metrics/router";
import { adminRouter } from "./routes/admin";
import { cancelRouter } from "./routes/cancel";
import { docsRouter } from "./routes/docs";
import { eventsRouter } from "./routes/events";
import { executionsRouter } from "./routes/executions";
import { filesRouter } from "./routes/files";
import { messagesRouter } from "./routes/messages";
import { playgroundRouter } from "./routes/playground";
import { healthRouter } from "./routes/health";
import { linksRouter, signedDownloadRouter } from "./routes/links";
import { librechatRouter } from "./librechat/router";
import { jupyterRouter } from "./jupyter/router";
import { mcpRouter } from "./mcp/router";

export function createApp(deps: ApiDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", false);
  const openapi = buildOpenApiDocument(deps.env);

  app.use(healthRouter(deps));
  app.get("/openapi.json", (_req, res) => {
    res.json(openapi);
  });
  const queues = deps.maintenanceQueue ? [deps.executionQueue, deps.maintenanceQueue] : [deps.executionQueue];
  app.use(metricsRouter(deps, queues));
  app.use(docsRouter());
  app.use(bullBoardRouter(deps.env.ADMIN_TOKEN, queues));
  app.use(kernelsPageRouter({ ...deps, adminToken: deps.env.ADMIN_TOKEN }));

  // JSON escapes can grow code up to 6x; the code-size limit itself is checked by the schema.
  const json = express.json({ limit: Math.max(1024 * 1024, deps.env.MAX_CODE_BYTES * 6 + 65_536), strict: true });
  app.use("/v1/admin", json, adminRouter(deps));
  const v1 = express.Router();
  v1.use(requireApiKey(deps.db));
  v1.use(filesRouter(deps));
  v1.use(json);
  v1.use(executionsRouter(deps));
  v1.use(eventsRouter(deps));
  v1.use(cancelRouter(deps));
  v1.use(messagesRouter(deps));
  v1.use(linksRouter(deps));
  app.use(signedDownloadRouter(deps));
  app.use("/v1", v1);
  app.use("/librechat/v1", librechatRouter(deps));
  app.use("/jupyter", jupyterRouter(deps));
  app.use(mcpRouter(deps));
  app.use(playgroundRouter());

  app.use(unknownRoute);
  app.use(errorHandler(deps.log));
  return app;
}
