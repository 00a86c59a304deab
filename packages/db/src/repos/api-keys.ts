import { createHash, randomBytes } from "node:crypto";
import type { Db } from "../client";

export type ApiKeyKind = "user" | "tenant";

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}

/** A key as the admin API lists it: never the key itself, only its first characters. */
export interface ApiKeyRow {
  id: string;
  userId: string;
  kind: ApiKeyKind;
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** What a presented key stands for. */
export interface ApiKeyHolder {
  keyId: string;
  userId: string;
  kind: ApiKeyKind;
}

const ROW = { id: true, userId: true, kind: true, prefix: true, createdAt: true, revokedAt: true } as const;

/** Creates the user when needed and a new key for it; the clear key is returned once and never stored. */
export async function createApiKey(
  db: Db,
  userId: string,
  kind: ApiKeyKind = "user",
): Promise<{ key: string; userId: string; id: string; kind: ApiKeyKind }> {
  const key = `ci_${randomBytes(24).toString("base64url")}`;
  await db.user.upsert({ where: { id: userId }, create: { id: userId }, update: {} });
  const row = await db.apiKey.create({ data: { userId, kind, keyHash: hashApiKey(key), prefix: key.slice(0, 7) } });
  return { key, userId, id: row.id, kind };
}

/** The holder of a live key; null for an unknown or revoked one. */
export async function findApiKeyHolder(db: Db, key: string): Promise<ApiKeyHolder | null> {
  const row = await db.apiKey.findUnique({
    where: { keyHash: hashApiKey(key) },
    select: { id: true, userId: true, kind: true, revokedAt: true },
  });
  if (!row || row.revokedAt) return null;
  return { keyId: row.id, userId: row.userId, kind: row.kind };
}

export async function findUserByApiKey(db: Db, key: string): Promise<string | null> {
  return (await findApiKeyHolder(db, key))?.userId ?? null;
}

/** Keys, newest first; of one user when given. */
export function listApiKeys(db: Db, filter: { userId?: string | undefined } = {}): Promise<ApiKeyRow[]> {
  return db.apiKey.findMany({
    where: filter.userId === undefined ? {} : { userId: filter.userId },
    select: ROW,
    orderBy: [{ createdAt: "desc" }, { id: "asc" }],
    take: 1000,
  });
}

/**
 * Revokes a key (idempotent: a revoked key keeps its first revocation time). Returns the key and its hash,
 * so that caches of it can be dropped; null when there is no such key.
 */
export async function revokeApiKey(db: Db, id: string): Promise<(ApiKeyRow & { keyHash: string }) | null> {
  await db.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
  return db.apiKey.findUnique({ where: { id }, select: { ...ROW, keyHash: true } });
}
