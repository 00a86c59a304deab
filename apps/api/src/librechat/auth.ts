import type { Request } from "express";
import { apiKeyResolver, bearer } from "../auth";
import type { ApiDeps } from "../deps";
import { HttpError } from "../errors";
import { derivedUserId, END_USER_ID } from "../end-users";
import type { EntityKind } from "./ids";
import { createJwtVerifier, InvalidLibreChatTokenError, looksLikeJwt } from "./jwt";

/**
 * Who is calling: a tenant (a codeinterp user id) and, with a JWT, the LibreChat user it was issued to.
 * The tenant's LibreChat users are its end users (../end-users.ts, the rule of every surface): here any
 * API key is a tenant, as it always was on this surface, and LibreChat's own fields name the end user.
 */
export interface Credential {
  tenant: string;
  via: "api_key" | "jwt" | "anonymous";
  /** The JWT's `sub`: the only LibreChat user this request may act as. */
  subject?: string;
}

/** The LibreChat user (or agent/skill) a request acts for, and the codeinterp user that stands for it. */
export interface Principal {
  tenant: string;
  kind: EntityKind;
  librechatId: string;
  userId: string;
}

const unauthorized = (message: string) => new HttpError(401, "unauthorized", message);

/**
 * Resolves the credential of a request: a codeinterp API key (`X-API-Key`, Gen-1 and community servers,
 * or `Authorization: Bearer`), a LibreChat-issued JWT (Gen-2), or nothing when the operator opened a
 * tenant to anonymous callers.
 */
export function credentialResolver(deps: Pick<ApiDeps, "db" | "env">): (req: Request) => Promise<Credential> {
  const resolveKey = apiKeyResolver(deps.db);
  const verifyJwt = createJwtVerifier(deps.env);
  return async (req) => {
    const header = req.headers["x-api-key"];
    const apiKey = typeof header === "string" && header !== "" ? header : null;
    const token = apiKey ?? bearer(req.headers.authorization);
    if (!token) {
      if (req.headers.authorization) throw unauthorized("malformed Authorization header");
      if (deps.env.LIBRECHAT_ANONYMOUS_TENANT) return { tenant: deps.env.LIBRECHAT_ANONYMOUS_TENANT, via: "anonymous" };
      throw unauthorized("Bearer token or X-API-Key is required");
    }
    if (!apiKey && verifyJwt && looksLikeJwt(token)) {
      try {
        const { sub, tenantId } = await verifyJwt(token);
        return { tenant: jwtTenant(deps.env.LIBRECHAT_JWT_TENANT, tenantId), via: "jwt", subject: sub };
      } catch (err) {
        if (err instanceof InvalidLibreChatTokenError) throw unauthorized("invalid token");
        throw err;
      }
    }
    const holder = await resolveKey(token);
    if (!holder) throw unauthorized("invalid API key");
    return { tenant: holder.userId, via: "api_key" };
  };
}

/**
 * The tenant of a JWT: LIBRECHAT_JWT_TENANT itself for a token without `tenant_id`; otherwise a tenant
 * derived from the claim within that namespace. A derived id is reserved (the admin API makes no key for
 * one), so a claim never lands on an ordinary user, and two deployments with their own
 * LIBRECHAT_JWT_TENANT never share a tenant even when their `tenant_id`s are equal.
 */
export function jwtTenant(namespace: string, tenantId: string | undefined): string {
  return tenantId === undefined ? namespace : derivedUserId(namespace, "tenant", tenantId);
}

/** LibreChat ids: Mongo ObjectIds in practice; anything printable and short is accepted. */
const ENTITY_ID = END_USER_ID;

/**
 * The principal a request names (`kind`/`id`, `user_id`, `User-Id`), checked against its credential: a JWT
 * acts only as its own user (naming another one is 403); an API key's tenant is trusted to name its users.
 * Null when the request names nobody and the credential carries no user.
 */
export function principalOf(
  cred: Credential,
  claim: { kind?: string | undefined; id?: string | undefined },
): Principal | null {
  const kind = parseKind(claim.kind);
  const id = claim.id === "" ? undefined : claim.id;
  if (id !== undefined && !ENTITY_ID.test(id))
    throw new HttpError(400, "validation_error", "invalid user or entity id");
  if (cred.subject !== undefined) {
    if (kind === "user" && id !== undefined && id !== cred.subject)
      throw new HttpError(403, "forbidden", "Access denied");
    if (kind !== "user" && id !== undefined) return principal(cred.tenant, kind, id);
    return principal(cred.tenant, "user", cred.subject);
  }
  return id === undefined ? null : principal(cred.tenant, kind, id);
}

function principal(tenant: string, kind: EntityKind, librechatId: string): Principal {
  return { tenant, kind, librechatId, userId: derivedUserId(tenant, kind, librechatId) };
}

function parseKind(kind: string | undefined): EntityKind {
  if (kind === undefined || kind === "" || kind === "user") return "user";
  if (kind === "agent" || kind === "skill") return kind;
  throw new HttpError(400, "validation_error", `invalid kind: ${kind}`);
}
