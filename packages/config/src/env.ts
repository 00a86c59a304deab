import { z } from "zod";
import { defaultDataDir } from "./paths";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** "1", "true", "yes", "on" → true; "0", "false", "no", "off", "" → false. */
export const booleanFromEnv = (fallback: boolean) =>
  z
    .enum(["1", "0", "true", "false", "yes", "no", "on", "off", ""])
    .optional()
    .transform((v) => (v === undefined || v === "" ? fallback : ["1", "true", "yes", "on"].includes(v)));

const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

/**
 * Settings both apps read. Each app's env module extends this shape with its own settings and parses
 * process.env once at start-up.
 */
export const sharedEnvShape = {
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  DATABASE_URL: z.url().default("postgresql://postgres@127.0.0.1:5432/codeinterp"),
  REDIS_URL: z.url().default("redis://127.0.0.1:6379"),
  /** Prefix for every BullMQ queue and pub/sub channel; lets several deployments share one Redis. */
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]+$/)
    .default("codeinterp"),
  DATA_DIR: z.string().min(1).default(defaultDataDir),
  EXECUTION_TIMEOUT_MS: int(60_000, 1000),
  MAX_EXECUTION_TIMEOUT_MS: int(600_000, 1000),
  MAX_UPLOAD_BYTES: int(100 * 1024 * 1024, 1),
  MAX_CODE_BYTES: int(512 * 1024, 1),
  MAX_FILES_PER_EXECUTION: int(20, 0),
};

export type SharedEnv = z.infer<z.ZodObject<typeof sharedEnvShape>>;

/** Parses an env record against a zod object; every problem is listed in one ConfigError. */
export function parseEnv<T extends z.ZodType>(schema: T, source: Record<string, string | undefined>): z.infer<T> {
  const parsed = schema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}

/** Variables only workers may hold: the kernel gateway's address and token (the API never drives kernels). */
export const GATEWAY_ENV_KEYS = ["JUPYTER_URL", "JUPYTER_TOKEN"] as const;

/** An environment for the API process: the same, minus the gateway's address and token. */
export function apiProcessEnv<T extends Record<string, string | undefined>>(env: T): T {
  const out = { ...env };
  for (const k of GATEWAY_ENV_KEYS) delete out[k];
  return out;
}
