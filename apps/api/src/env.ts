import { z } from "zod";
import { parseEnv, sharedEnvShape } from "@codeinterp/config";

const apiEnvSchema = z.object({
  ...sharedEnvShape,
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default("0.0.0.0"),
  /** Unset: admin routes (API keys, Bull Board) are disabled. */
  ADMIN_TOKEN: z.string().min(16, "ADMIN_TOKEN must be at least 16 characters").optional(),
  /** Longest a `?waitMs=` request may hold. */
  MAX_WAIT_MS: z.coerce.number().int().min(0).default(60_000),
});

export type ApiEnv = z.infer<typeof apiEnvSchema>;

/** The only reader of process.env in the API. */
export function loadApiEnv(source: Record<string, string | undefined> = process.env): ApiEnv {
  return parseEnv(apiEnvSchema, source);
}
