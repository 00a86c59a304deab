import { z } from "zod";

const cliEnvSchema = z.object({
  /** Where the API is. */
  CODEINTERP_URL: z.url("CODEINTERP_URL must be a URL like http://localhost:8080").default("http://localhost:8080"),
  /** A user's API key (POST /v1/admin/api-keys). */
  CODEINTERP_API_KEY: z
    .string({ error: "CODEINTERP_API_KEY is not set (create one with POST /v1/admin/api-keys)" })
    .min(1, "CODEINTERP_API_KEY is empty"),
  /** With a tenant key: the end user to act for (X-End-User). */
  CODEINTERP_END_USER: z.string().min(1, "CODEINTERP_END_USER is empty").optional(),
});

export type CliEnv = z.infer<typeof cliEnvSchema>;

export class CliConfigError extends Error {
  override name = "CliConfigError";
}

/** The only reader of process.env in the CLI. */
export function loadCliEnv(source: Record<string, string | undefined> = process.env): CliEnv {
  const parsed = cliEnvSchema.safeParse(source);
  if (!parsed.success) throw new CliConfigError(parsed.error.issues.map((i) => i.message).join("\n"));
  return parsed.data;
}
