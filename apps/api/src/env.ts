import { z } from "zod";
import { booleanFromEnv, parseEnv, sharedEnvShape } from "@codeinterp/config";

const apiEnvSchema = z.object({
  ...sharedEnvShape,
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default("0.0.0.0"),
  /** Unset: admin routes (API keys, Bull Board) are disabled. */
  ADMIN_TOKEN: z.string().min(16, "ADMIN_TOKEN must be at least 16 characters").optional(),
  /** Longest a `?waitMs=` request may hold. */
  MAX_WAIT_MS: z.coerce.number().int().min(0).default(60_000),
  // The Jupyter surface at /jupyter (see apps/api/src/jupyter).
  /** A kernel of the Jupyter surface unused this long is gone (its message's kernel is culled by the workers). */
  JUPYTER_KERNEL_IDLE_MS: z.coerce.number().int().min(1000).default(10 * 60_000),
  /** After an execution's output, a short stream text listing the files the code wrote, with download links. */
  JUPYTER_FILE_LINKS: booleanFromEnv(true),
  /** Prefix for those links (e.g. https://ci.example.com); unset: the request's own host. */
  JUPYTER_FILE_LINK_BASE_URL: z.url().optional(),
  /** Largest websocket frame accepted from a Jupyter client; a bigger one closes the connection (1009). */
  JUPYTER_MAX_MESSAGE_BYTES: z.coerce.number().int().min(1024).default(8 * 1024 * 1024),
  /** How long a /jupyter/login session cookie stays valid. */
  JUPYTER_SESSION_TTL_MS: z.coerce.number().int().min(60_000).default(24 * 3600_000),
});

export type ApiEnv = z.infer<typeof apiEnvSchema>;

/** The only reader of process.env in the API. */
export function loadApiEnv(source: Record<string, string | undefined> = process.env): ApiEnv {
  return parseEnv(apiEnvSchema, source);
}
