import type { z } from "zod";
import { HttpError } from "./errors";

/** Parses untrusted input; a failure is a 400 naming each offending field. */
export function parseInput<T extends z.ZodType>(
  schema: T,
  input: unknown,
  where: "body" | "query" | "params",
): z.infer<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
  const first = issues[0];
  const summary = first ? `${first.path || where}: ${first.message}` : `invalid ${where}`;
  if (where === "params") throw new HttpError(404, "not_found", "resource not found");
  throw new HttpError(400, "validation_error", `invalid ${where}: ${summary}`, { issues });
}
