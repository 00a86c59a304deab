import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from "jose";
import type { ApiEnv } from "../env";
import { END_USER_ID } from "../end-users";

/** A token that is not a valid LibreChat JWT for us: bad signature, wrong aud/iss, expired, no `sub`, too long-lived. */
export class InvalidLibreChatTokenError extends Error {
  override name = "InvalidLibreChatTokenError";
}

/** The LibreChat user a token was issued to, and the tenant it names (`tenant_id`), when it names one. */
export type JwtVerifier = (token: string) => Promise<{ sub: string; tenantId?: string }>;

/** LibreChat signs with EdDSA by default, or RS256 (`packages/api/src/auth/codeapi.ts`). */
const ALGORITHMS = ["EdDSA", "RS256"];

/** Null when no key is configured: JWTs are then not accepted at all. */
export function createJwtVerifier(
  env: Pick<
    ApiEnv,
    | "LIBRECHAT_JWT_PUBLIC_KEY"
    | "LIBRECHAT_JWT_JWKS_URL"
    | "LIBRECHAT_JWT_ISSUER"
    | "LIBRECHAT_JWT_AUDIENCE"
    | "LIBRECHAT_JWT_CLOCK_SKEW_S"
    | "LIBRECHAT_JWT_MAX_LIFETIME_S"
  >,
): JwtVerifier | null {
  let key: KeyObject | ReturnType<typeof createRemoteJWKSet>;
  if (env.LIBRECHAT_JWT_PUBLIC_KEY) key = createPublicKey(env.LIBRECHAT_JWT_PUBLIC_KEY.replace(/\\n/g, "\n"));
  else if (env.LIBRECHAT_JWT_JWKS_URL) key = createRemoteJWKSet(new URL(env.LIBRECHAT_JWT_JWKS_URL));
  else return null;
  const skew = env.LIBRECHAT_JWT_CLOCK_SKEW_S;
  const options = {
    algorithms: ALGORITHMS,
    issuer: env.LIBRECHAT_JWT_ISSUER,
    audience: env.LIBRECHAT_JWT_AUDIENCE,
    // Two LibreChat hosts' clocks (or theirs and ours) differ by a little: nbf and exp are read with slack.
    clockTolerance: skew,
    requiredClaims: ["sub", "exp", "iat"],
  };
  return async (token) => {
    try {
      // Two overloads (a key, or a key set function): the branch only picks the one that type-checks.
      const { payload } =
        typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
      if (typeof payload.sub !== "string" || payload.sub === "")
        throw new InvalidLibreChatTokenError("the token has no subject");
      const iat = payload.iat ?? 0;
      // A token from the future (beyond the skew) was not minted by a host whose clock we tolerate.
      if (iat > Date.now() / 1000 + skew) throw new InvalidLibreChatTokenError("the token was issued in the future");
      // A stolen long-lived token would be a lasting credential: only short-lived ones are accepted.
      if ((payload.exp ?? 0) - iat > env.LIBRECHAT_JWT_MAX_LIFETIME_S)
        throw new InvalidLibreChatTokenError("the token lives longer than allowed");
      const tenantId = payload.tenant_id;
      if (tenantId === undefined || tenantId === null || tenantId === "") return { sub: payload.sub };
      if (typeof tenantId !== "string" || !END_USER_ID.test(tenantId))
        throw new InvalidLibreChatTokenError("the token's tenant_id is not a short printable string");
      return { sub: payload.sub, tenantId };
    } catch (err) {
      if (err instanceof InvalidLibreChatTokenError) throw err;
      if (err instanceof joseErrors.JOSEError) throw new InvalidLibreChatTokenError(err.code);
      throw err;
    }
  };
}

/** Three base64url segments: worth verifying as a JWT rather than looking up as an API key. */
export const looksLikeJwt = (token: string) => /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
