import { Router } from "express";
import type { ApiKeyRow } from "@codeinterp/db";
import { createApiKey, listApiKeys, revokeApiKey } from "@codeinterp/db";
import { forgetApiKey, requireAdmin } from "../auth";
import type { ApiDeps } from "../deps";
import { isDerivedUserId } from "../end-users";
import { HttpError, notFound } from "../errors";
import { ApiKeyListQuery, ApiKeyParams, CreateApiKeyBody } from "../schemas";
import { parseInput } from "../validate";

const info = (k: ApiKeyRow) => ({
  id: k.id,
  userId: k.userId,
  kind: k.kind,
  prefix: k.prefix,
  createdAt: k.createdAt.toISOString(),
  revokedAt: k.revokedAt?.toISOString() ?? null,
});

export function adminRouter(deps: ApiDeps): Router {
  const router = Router();
  router.use(requireAdmin(deps.env.ADMIN_TOKEN));
  router.post("/api-keys", async (req, res) => {
    const { userId, kind = "user" } = parseInput(CreateApiKeyBody, req.body, "body");
    // Derived users are a tenant's end users: a key of their own would let it act outside its tenant's keys.
    if (isDerivedUserId(userId))
      throw new HttpError(400, "validation_error", "user ids starting with librechat: are reserved for end users");
    const created = await createApiKey(deps.db, userId, kind);
    deps.log.info({ userId, apiKeyId: created.id, kind }, "api key created");
    res.status(201).json({ id: created.id, key: created.key, userId: created.userId, kind: created.kind });
  });
  router.get("/api-keys", async (req, res) => {
    const { userId } = parseInput(ApiKeyListQuery, req.query, "query");
    res.json({ apiKeys: (await listApiKeys(deps.db, { userId })).map(info) });
  });
  router.delete("/api-keys/:id", async (req, res) => {
    const { id } = parseInput(ApiKeyParams, req.params, "params");
    const revoked = await revokeApiKey(deps.db, id);
    if (!revoked) throw notFound("api key");
    forgetApiKey(deps.db, revoked.keyHash);
    deps.log.info({ userId: revoked.userId, apiKeyId: id }, "api key revoked");
    res.json(info(revoked));
  });
  return router;
}
