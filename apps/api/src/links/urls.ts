import type { Request } from "express";
import type { LinkSigner } from "./signer";

/** Where signed links point: PUBLIC_URL, else the origin this request came in on. */
export function publicOrigin(publicUrl: string | undefined, req: Request): string {
  if (publicUrl) return publicUrl.replace(/\/+$/, "");
  return `${req.protocol}://${req.get("host") ?? "localhost"}`;
}

/** How long a link lives when its maker does not say: SIGNED_LINK_TTL_S, never past SIGNED_LINK_MAX_TTL_S. */
export function defaultLinkTtlS(env: { SIGNED_LINK_TTL_S: number; SIGNED_LINK_MAX_TTL_S: number }): number {
  return Math.min(env.SIGNED_LINK_TTL_S, env.SIGNED_LINK_MAX_TTL_S);
}

export function signedUrl(
  signer: LinkSigner,
  origin: string,
  file: { id: string; name: string },
  ttlS: number,
  now = Date.now(),
) {
  const link = signer.sign(file.id, new Date(now + ttlS * 1000));
  return {
    fileId: file.id,
    name: file.name,
    url: `${origin}/links/${file.id}?expires=${link.expires}&signature=${link.signature}`,
    expiresAt: new Date(link.expires * 1000).toISOString(),
  };
}
