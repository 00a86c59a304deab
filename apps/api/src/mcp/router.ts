import type { ErrorRequestHandler } from "express";
import { Router } from "express";
import { createMcpHandler } from "@modelcontextprotocol/server";
import type { AuthInfo } from "@modelcontextprotocol/server";
import { toNodeHandler } from "@modelcontextprotocol/node";
import { z } from "zod";
import { normalizeError } from "@codeinterp/logger";
import { requireApiKey, userOf } from "../auth";
import type { ApiDeps } from "../deps";
import { toHttpError } from "../errors";
import { publicOrigin } from "../links/urls";
import { createMcpServer } from "./server";

/** What the route hands the per-request server: the caller, as authInfo.extra. */
const callerSchema = z.object({ userId: z.string().min(1), origin: z.string().min(1) });

/**
 * `/mcp`, Streamable HTTP, stateless: the 2026-07-28 revision, and 2025-06-18 / 2025-11-25 clients through
 * the SDK's stateless fallback. Every request builds its server from the caller alone, so any API instance
 * answers any request. Auth is a codeinterp API key as Bearer (requireApiKey).
 */
export function mcpRouter(deps: ApiDeps): Router {
  const maxUpload = Math.min(deps.env.MCP_UPLOAD_MAX_BYTES, deps.env.MAX_UPLOAD_BYTES);
  // Room for an upload's base64 (4/3 of its bytes) and the JSON around it: a bigger upload is refused by
  // the tool with a clear message, not by the transport with a bare 413.
  const maxRequestBodySize = Math.ceil((maxUpload * 4) / 3) * 2 + 1024 * 1024;
  const onerror = (err: Error) => deps.log.warn({ err: normalizeError(err) }, "mcp request rejected");
  const handler = createMcpHandler(
    ({ authInfo }) => {
      const caller = callerSchema.parse(authInfo?.extra);
      return createMcpServer(deps, caller);
    },
    { onerror, maxRequestBodySize },
  );
  const serve = toNodeHandler(handler, { onerror, maxRequestBodySize });

  const router = Router();
  router.all("/mcp", requireApiKey(deps.db), async (req, res) => {
    const auth: AuthInfo = {
      // Never read back: the caller is extra.userId. Not the key itself, so nothing downstream can leak it.
      token: "codeinterp-api-key",
      clientId: "codeinterp",
      scopes: [],
      extra: { userId: userOf(res), origin: publicOrigin(deps.env.PUBLIC_URL, req) },
    };
    await serve(Object.assign(req, { auth }), res);
  });
  const challenge: ErrorRequestHandler = (err, req, res, next) => {
    // RFC 6750 section 3: no error code when no credentials were sent, invalid_token for a wrong one.
    if (toHttpError(err)?.status === 401)
      res.setHeader(
        "WWW-Authenticate",
        req.headers.authorization
          ? `Bearer realm="codeinterp", error="invalid_token", error_description="the API key is not valid"`
          : `Bearer realm="codeinterp"`,
      );
    next(err);
  };
  router.use("/mcp", challenge);
  return router;
}
