import { Router } from "express";
import { createApiKey } from "@codeinterp/db";
import { requireAdmin } from "../auth";
import type { ApiDeps } from "../deps";
import { CreateApiKeyBody } from "../schemas";
import { parseInput } from "../validate";

export function adminRouter(deps: ApiDeps): Router {
  const router = Router();
  router.use(requireAdmin(deps.env.ADMIN_TOKEN));
  router.post("/api-keys", async (req, res) => {
    const { userId } = parseInput(CreateApiKeyBody, req.body, "body");
    const created = await createApiKey(deps.db, userId);
    deps.log.info({ userId, apiKeyId: created.id }, "api key created");
    res.status(201).json({ key: created.key, userId: created.userId });
  });
  return router;
}
