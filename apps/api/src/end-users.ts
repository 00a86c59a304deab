import { createHash } from "node:crypto";

/**
 * The one rule by which a tenant's end users become codeinterp users, on every surface (the /v1 API with
 * a tenant key and `X-End-User`, the LibreChat surface's `user_id`/`kind`/`id`, LibreChat JWTs, the MCP
 * front door): derived, so no table and no lookup. The same (tenant, kind, id) always maps to the same
 * user, and different ones never meet (a hash of the JSON triple, so no separator can be smuggled in).
 */
export type EntityKind = "user" | "agent" | "skill" | "tenant";

/**
 * Every derived id starts with this. The name is historical (the LibreChat surface derived users first)
 * and is kept so that existing users keep their files; the admin API refuses it for ordinary users, so a
 * derived user is never someone's own key.
 */
export const DERIVED_PREFIX = "librechat:";

export function derivedUserId(tenant: string, kind: EntityKind, id: string): string {
  const h = createHash("sha256")
    .update(JSON.stringify([tenant, kind, id]))
    .digest("base64url");
  return `${DERIVED_PREFIX}${h.slice(0, 32)}`;
}

export const isDerivedUserId = (userId: string) => userId.startsWith(DERIVED_PREFIX);

/** An end user's id as a client names it: LibreChat's ObjectIds, Open WebUI's UUIDs, anything printable and short. */
export const END_USER_ID = /^[^\u0000-\u001f\u007f]{1,200}$/;

/** The codeinterp user of an end user of a tenant. */
export const endUserId = (tenant: string, endUser: string) => derivedUserId(tenant, "user", endUser);
