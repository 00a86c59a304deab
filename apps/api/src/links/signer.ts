import { createHmac, timingSafeEqual } from "node:crypto";

export class InvalidLinkSignatureError extends Error {
  override name = "InvalidLinkSignatureError";
  constructor() {
    super("the link's signature is not valid (changed or cut short)");
  }
}

export class LinkExpiredError extends Error {
  override name = "LinkExpiredError";
  constructor(public readonly expiredAt: Date) {
    super(`the link expired at ${expiredAt.toISOString()}`);
  }
}

export interface SignedLink {
  fileId: string;
  /** Unix seconds. */
  expires: number;
  signature: string;
}

export interface LinkSigner {
  sign(fileId: string, expiresAt: Date): SignedLink;
  /** Throws InvalidLinkSignatureError or LinkExpiredError; ownership and liveness are the caller's to check. */
  verify(fileId: string, expires: string | undefined, signature: string | undefined, now?: Date): void;
}

// A link is one HMAC-SHA256 over (version, file id, expiry): Node's crypto does it in two calls, and a token
// format (JWT) would add headers and claims nobody reads. File ids are UUIDs owned by one user for life, and
// ownership is checked when a link is made, so the owner need not be in the link.
const VERSION = "v1";

export function createLinkSigner(secret: string | Buffer): LinkSigner {
  const mac = (fileId: string, expires: number) =>
    createHmac("sha256", secret).update(`${VERSION}\n${fileId}\n${expires}`).digest();
  return {
    sign(fileId, expiresAt) {
      const expires = Math.floor(expiresAt.getTime() / 1000);
      return { fileId, expires, signature: mac(fileId, expires).toString("base64url") };
    },
    verify(fileId, expires, signature, now = new Date()) {
      if (!expires || !/^\d{1,12}$/.test(expires) || !signature || !/^[A-Za-z0-9_-]{43}$/.test(signature)) {
        throw new InvalidLinkSignatureError();
      }
      // Compared as text, not decoded bytes: the 43rd character carries 2 unused bits, so decoding would let
      // four spellings of one signature pass, and a link changed in its last character would still open.
      const given = Buffer.from(signature, "ascii");
      const want = Buffer.from(mac(fileId, Number(expires)).toString("base64url"), "ascii");
      if (given.length !== want.length || !timingSafeEqual(given, want)) throw new InvalidLinkSignatureError();
      if (Number(expires) * 1000 <= now.getTime()) throw new LinkExpiredError(new Date(Number(expires) * 1000));
    },
  };
}
