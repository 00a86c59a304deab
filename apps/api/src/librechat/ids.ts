import { randomBytes } from "node:crypto";

/**
 * Ids on LibreChat's surface are exactly 21 characters of [A-Za-z0-9_-]: LibreChat's own download route
 * (`api/server/routes/files/files.js`, `isValidID`) rejects anything else.
 *
 * File ids are our file UUIDs, written in 21 characters: a version-4 UUID has 122 random bits (the version
 * nibble and variant bits are fixed), which fit in 21 base64url characters (126 bits). The mapping is a
 * bijection, so no table is needed and a file keeps one id on both surfaces.
 */
export const LIBRECHAT_ID = /^[A-Za-z0-9_-]{21}$/;

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;
const mask = (bits: bigint) => (1n << bits) - 1n;

export function uuidToLibreChatId(uuid: string): string {
  if (!UUID_V4.test(uuid)) throw new TypeError("not a version-4 UUID");
  const n = BigInt(`0x${uuid.replace(/-/g, "")}`);
  // Bits from the top: 48 random, 4 version, 12 random, 2 variant, 62 random.
  const packed = ((n >> 80n) << 74n) | (((n >> 64n) & mask(12n)) << 62n) | (n & mask(62n));
  let out = "";
  for (let i = 20; i >= 0; i--) out += ALPHABET[Number((packed >> BigInt(6 * i)) & 63n)];
  return out;
}

/** The UUID a 21-character file id stands for; null when it cannot be one of ours. */
export function libreChatIdToUuid(id: string): string | null {
  if (!LIBRECHAT_ID.test(id)) return null;
  let packed = 0n;
  for (const c of id) packed = (packed << 6n) | BigInt(ALPHABET.indexOf(c));
  if (packed >> 122n !== 0n) return null;
  const n =
    ((packed >> 74n) << 80n) |
    (4n << 76n) |
    (((packed >> 62n) & mask(12n)) << 64n) |
    (2n << 62n) |
    (packed & mask(62n));
  const hex = n.toString(16).padStart(32, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A new session id: 21 random base64url characters (126 bits), like the nanoid the official server mints. */
export function newSessionId(): string {
  return randomBytes(16).toString("base64url").slice(0, 21);
}

// The rule lives in ../end-users.ts (one rule for every surface); LibreChat's kinds are these three.
export { derivedUserId } from "../end-users";
export type EntityKind = "user" | "agent" | "skill";
