export interface NormalizedError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
}

/** Whatever was thrown, a plain object that logs well. */
export function normalizeError(err: unknown): NormalizedError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      name: err.name,
      message: err.message,
      ...(err.stack ? { stack: err.stack } : {}),
      ...(typeof code === "string" ? { code } : {}),
    };
  }
  return { name: "NonError", message: typeof err === "string" ? err : (JSON.stringify(err) ?? String(err)) };
}
