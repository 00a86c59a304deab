import { createHash, randomBytes } from "node:crypto";
import type { Db } from "../client";

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** Creates the user when needed and a new key for it; the clear key is returned once and never stored. */
export async function createApiKey(db: Db, userId: string): Promise<{ key: string; userId: string; id: string }> {
  const key = `ci_${randomBytes(24).toString("base64url")}`;
  await db.user.upsert({ where: { id: userId }, create: { id: userId }, update: {} });
  const row = await db.apiKey.create({ data: { userId, keyHash: hashApiKey(key), prefix: key.slice(0, 7) } });
  return { key, userId, id: row.id };
}

export async function findUserByApiKey(db: Db, key: string): Promise<string | null> {
  const row = await db.apiKey.findUnique({
    where: { keyHash: hashApiKey(key) },
    select: { userId: true, revokedAt: true },
  });
  if (!row || row.revokedAt) return null;
  return row.userId;
}
