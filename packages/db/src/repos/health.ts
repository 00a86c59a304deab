import type { Db } from "../client";

/** One round trip through the client: rejects when the database cannot be reached (for /readyz). */
export async function pingDatabase(db: Db): Promise<void> {
  await db.$queryRawUnsafe("SELECT 1");
}
