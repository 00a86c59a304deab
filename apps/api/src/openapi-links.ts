import type { OpenAPIRegistry } from "@asteasolutions/zod-to-openapi";
import type { z } from "zod";
import { ErrorBody } from "./schemas";
import { FileParams, MessageParams } from "./schemas-files";
import { createLinkBody, LinkParams, LinkQuery, RewrittenText, rewriteLinksBody, SignedLink } from "./schemas-links";

const json = (schema: z.ZodType, description: string) => ({ description, content: { "application/json": { schema } } });

/** OpenAPI paths of the signed download links. */
export function registerLinkPaths(
  registry: OpenAPIRegistry,
  security: Array<Record<string, string[]>>,
  maxTtlS: number,
): void {
  registry.registerPath({
    method: "post",
    path: "/v1/files/{id}/links",
    summary: "A signed, expiring download link for a file of the caller's, usable without an API key",
    security,
    request: {
      params: FileParams,
      body: { required: false, content: { "application/json": { schema: createLinkBody(maxTtlS) } } },
    },
    responses: {
      201: json(SignedLink, "The link"),
      400: json(ErrorBody, "expiresIn out of range"),
      401: json(ErrorBody, "Missing or wrong API key"),
      404: json(ErrorBody, "Not found, or owned by someone else"),
    },
  });
  registry.registerPath({
    method: "post",
    path: "/v1/messages/{messageId}/links",
    summary: "Rewrite sandbox:/mnt/data/... and /mnt/data/... links in model text to the message's signed links",
    description:
      "`sandbox:/mnt/data/x` anywhere, and `/mnt/data/x` where it is a link target (markdown `(...)`, `<...>`, HTML " +
      "`src=`/`href=`), become signed links to the file the message has at that path (attachments and generated " +
      "files, newest version). Prose, inline code and unknown paths are left as they are.",
    security,
    request: {
      params: MessageParams,
      body: { required: true, content: { "application/json": { schema: rewriteLinksBody(maxTtlS) } } },
    },
    responses: {
      200: json(RewrittenText, "The rewritten text and every file's link; someone else's message has no files"),
      400: json(ErrorBody, "Invalid input"),
      401: json(ErrorBody, "Missing or wrong API key"),
    },
  });
  registry.registerPath({
    method: "get",
    path: "/links/{id}",
    summary: "Download by signed link (no API key; also HEAD)",
    request: { params: LinkParams, query: LinkQuery },
    responses: {
      200: {
        description: "The bytes, with Content-Type, Content-Length and Content-Disposition: attachment",
        content: { "application/octet-stream": { schema: { type: "string", format: "binary" } } },
      },
      304: { description: "Not modified (If-None-Match matched the ETag)" },
      403: json(ErrorBody, "Signature does not match (`invalid_signature`) or the link expired (`link_expired`)"),
      404: json(ErrorBody, "The file was deleted (its links end with it)"),
    },
  });
}
