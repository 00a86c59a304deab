import type { Db } from "../client";
import { isForeignKeyViolation } from "../errors";

/**
 * Runs an insert that points at a user, creating the user row only when the insert says it is missing.
 * Users exist once they have an API key, so the common path is the one insert, with no upsert before it.
 */
export async function createOrAddUser<T>(db: Db, userId: string, create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (err) {
    if (!isForeignKeyViolation(err)) throw err;
    await db.user.upsert({ where: { id: userId }, create: { id: userId }, update: {} });
    return create();
  }
}
