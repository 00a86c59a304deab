import type { OpenAPIRegistry } from "@asteasolutions/zod-to-openapi";

/** OpenAPI paths of the files, listing and context routes. */
export function registerFilePaths(_registry: OpenAPIRegistry, _security: Array<Record<string, string[]>>): void {}
