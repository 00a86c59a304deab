import { z } from "zod";

// Schemas of the signed-link routes: they validate requests and generate /openapi.json.

/** A link's lifetime in seconds, as either request may ask for it (SIGNED_LINK_TTL_S when left out). */
const expiresIn = (maxTtlS: number, description: string) =>
  z.number().int().min(1).max(maxTtlS).optional().meta({ description });

export const createLinkBody = (maxTtlS: number) =>
  z
    .object({
      expiresIn: expiresIn(
        maxTtlS,
        `Lifetime in seconds (at most SIGNED_LINK_MAX_TTL_S = ${maxTtlS}); default SIGNED_LINK_TTL_S`,
      ),
    })
    .strict()
    .meta({ id: "CreateLinkRequest" });

export const rewriteLinksBody = (maxTtlS: number) =>
  z
    .object({
      text: z
        .string()
        .max(1024 * 1024)
        .meta({ description: "Model output (markdown or HTML) with sandbox:/mnt/data/... or /mnt/data/... links" }),
      expiresIn: expiresIn(maxTtlS, "Lifetime of each link in seconds"),
    })
    .strict()
    .meta({ id: "RewriteLinksRequest" });

export const SignedLink = z
  .object({
    fileId: z.string(),
    name: z.string(),
    url: z.string().meta({ description: "Absolute URL that downloads the file without an API key until expiresAt" }),
    expiresAt: z.string(),
  })
  .meta({ id: "SignedLink" });

export const MessageLink = SignedLink.extend({ path: z.string().meta({ description: "relative to /mnt/data" }) }).meta({
  id: "MessageLink",
});

export const RewrittenText = z
  .object({
    messageId: z.string(),
    text: z
      .string()
      .meta({ description: "The text with every link to a file of the message replaced by its signed link" }),
    links: z.array(MessageLink).meta({ description: "A signed link for every file the message has at /mnt/data" }),
  })
  .meta({ id: "RewrittenText" });

export const LinkParams = z.object({ id: z.uuid() });
export const LinkQuery = z.object({
  expires: z.string().optional().meta({ description: "Unix seconds" }),
  signature: z.string().optional().meta({ description: "base64url HMAC-SHA256" }),
});
