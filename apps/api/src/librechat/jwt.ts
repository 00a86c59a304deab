import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify } from "jose";
import type { ApiEnv } from "../env";

/** A token that is not a valid LibreChat JWT for us: bad signature, wrong aud/iss, expired, no `sub`. */
export class InvalidLibreChatTokenError extends Error {
  override name = "InvalidLibreChatTokenError";
}

export type JwtVerifier = (token: string) => Promise<{ sub: string }>;

/** LibreChat signs with EdDSA by default, or RS256 (`packages/api/src/auth/codeapi.ts`). */
const ALGORITHMS = ["EdDSA", "RS256"];

/** Null when no key is configured: JWTs are then not accepted at all. */
export function createJwtVerifier(
  env: Pick<
    ApiEnv,
    "LIBRECHAT_JWT_PUBLIC_KEY" | "LIBRECHAT_JWT_JWKS_URL" | "LIBRECHAT_JWT_ISSUER" | "LIBRECHAT_JWT_AUDIENCE"
  >,
): JwtVerifier | null {
  let key: KeyObject | ReturnType<typeof createRemoteJWKSet>;
  if (env.LIBRECHAT_JWT_PUBLIC_KEY) key = createPublicKey(env.LIBRECHAT_JWT_PUBLIC_KEY.replace(/\\n/g, "\n"));
  else if (env.LIBRECHAT_JWT_JWKS_URL) key = createRemoteJWKSet(new URL(env.LIBRECHAT_JWT_JWKS_URL));
  else return null;
  const options = {
    algorithms: ALGORITHMS,
    issuer: env.LIBRECHAT_JWT_ISSUER,
    audience: env.LIBRECHAT_JWT_AUDIENCE,
    requiredClaims: ["sub", "exp"],
  };
  return async (token) => {
    try {
      // Two overloads (a key, or a key set function): the branch only picks the one that type-checks.
      const { payload } =
        typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
      if (typeof payload.sub !== "string" || payload.sub === "")
        throw new InvalidLibreChatTokenError("the token has no subject");
      return { sub: payload.sub };
    } catch (err) {
      if (err instanceof InvalidLibreChatTokenError) throw err;
      if (err instanceof joseErrors.JOSEError) throw new InvalidLibreChatTokenError(err.code);
      throw err;
    }
  };
}

/** Three base64url segments: worth verifying as a JWT rather than looking up as an API key. */
export const looksLikeJwt = (token: string) => /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
