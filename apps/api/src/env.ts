import { z } from "zod";
import {
  blobStoreEnvShape,
  booleanFromEnv,
  executionMemoryBounds,
  executionMemoryEnvShape,
  parseEnv,
  sharedEnvShape,
} from "@codeinterp/config";

const apiEnvSchema = z.object({
  ...sharedEnvShape,
  ...blobStoreEnvShape,
  // What an execution may ask for its kernel (limits.memoryMb): the default and the operator's maximum.
  ...executionMemoryEnvShape,
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default("0.0.0.0"),
  /** Unset: admin routes (API keys, Bull Board) are disabled. */
  ADMIN_TOKEN: z.string().min(16, "ADMIN_TOKEN must be at least 16 characters").optional(),
  /** Longest a `?waitMs=` request may hold. */
  MAX_WAIT_MS: z.coerce.number().int().min(0).default(60_000),
  // Signed download links (links/): unset secret = one generated once and kept in DATA_DIR/signing-secret.
  SIGNED_LINK_SECRET: z.string().min(32, "SIGNED_LINK_SECRET must be at least 32 characters").optional(),
  /** Lifetime of a link when the caller does not ask for one, and the longest it may ask for (seconds). */
  SIGNED_LINK_TTL_S: z.coerce.number().int().min(1).default(3600),
  SIGNED_LINK_MAX_TTL_S: z.coerce
    .number()
    .int()
    .min(1)
    .default(7 * 24 * 3600),
  /** Origin put in front of signed links (e.g. https://ci.example.com); unset: the request's Host. */
  PUBLIC_URL: z.url().optional(),

  // LibreChat's Code Interpreter API at /librechat/v1 (apps/api/src/librechat; README "Use with LibreChat").
  /** Public key (PEM; `\n` escapes allowed) that verifies LibreChat-issued JWTs (EdDSA or RS256). */
  LIBRECHAT_JWT_PUBLIC_KEY: z.string().min(1).optional(),
  /** Or a JWKS URL serving those keys. Neither set: JWTs are not accepted. */
  LIBRECHAT_JWT_JWKS_URL: z.url().optional(),
  LIBRECHAT_JWT_ISSUER: z.string().min(1).default("librechat"),
  LIBRECHAT_JWT_AUDIENCE: z.string().min(1).default("codeapi"),
  /**
   * The tenant (a codeinterp user id) that JWT-authenticated LibreChat users belong to; a token's `tenant_id`
   * claim names a tenant within it (librechat/auth.ts jwtTenant).
   */
  LIBRECHAT_JWT_TENANT: z.string().min(1).max(200).default("librechat"),
  /** How far the LibreChat host's clock may be off ours (nbf, iat, exp); LibreChat's own code API allows 30 s. */
  LIBRECHAT_JWT_CLOCK_SKEW_S: z.coerce.number().int().min(0).max(300).default(30),
  /** Longest a token may live (exp - iat); LibreChat mints 300 s tokens, and its code API refuses longer ones. */
  LIBRECHAT_JWT_MAX_LIFETIME_S: z.coerce.number().int().min(1).max(86_400).default(300),
  /** Unset: a request without credentials is refused. Set: it is served under this tenant (trusted network only). */
  LIBRECHAT_ANONYMOUS_TENANT: z.string().min(1).max(200).optional(),
  /** /exec and upload requests per LibreChat user per minute; 0 turns the limit off. */
  LIBRECHAT_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(120),

  // The MCP server at /mcp (see apps/api/src/mcp).
  /** Hosts `upload_file { url }` may fetch from, comma-separated (`*.example.com` for subdomains); empty: none. */
  MCP_URL_ALLOWLIST: z
    .string()
    .default("")
    .transform((s) =>
      s
        .split(",")
        .map((h) => h.trim().toLowerCase())
        .filter(Boolean),
    ),
  /** Largest file `upload_file` takes (decoded base64 or fetched), never more than MAX_UPLOAD_BYTES. */
  MCP_UPLOAD_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(20 * 1024 * 1024),
  /** Largest image returned inline as image content; bigger ones are links only. */
  MCP_MAX_IMAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(2 * 1024 * 1024),
  /** stdout and stderr in a tool result, each: longer output keeps its head and tail around a note. */
  MCP_MAX_OUTPUT_CHARS: z.coerce.number().int().min(200).default(20_000),

  // The Jupyter surface at /jupyter (see apps/api/src/jupyter).
  /** A kernel of the Jupyter surface unused this long is gone (its message's kernel is culled by the workers). */
  JUPYTER_KERNEL_IDLE_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(10 * 60_000),
  /** After an execution's output, a short stream text listing the files the code wrote, with download links. */
  JUPYTER_FILE_LINKS: booleanFromEnv(true),
  /** Origin of those links (e.g. https://ci.example.com); unset: PUBLIC_URL, else the request's own host. */
  JUPYTER_FILE_LINK_BASE_URL: z.url().optional(),
  /** Largest websocket frame accepted from a Jupyter client; a bigger one closes the connection (1009). */
  JUPYTER_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(8 * 1024 * 1024),
  /** How long a /jupyter/login session cookie stays valid. */
  JUPYTER_SESSION_TTL_MS: z.coerce
    .number()
    .int()
    .min(60_000)
    .default(24 * 3600_000),
});

export type ApiEnv = z.infer<typeof apiEnvSchema>;

/** The only reader of process.env in the API. */
export function loadApiEnv(source: Record<string, string | undefined> = process.env): ApiEnv {
  const env = parseEnv(apiEnvSchema, source);
  executionMemoryBounds(env);
  return env;
}
