import pg from "pg";
import type { Db } from "./client";
import { poolOf } from "./client";

/**
 * The statements every execution runs (submit, claim, start, finish, status reads) go to the pool as named
 * prepared statements instead of through Prisma's query compiler: measured on a 2-core machine, a Prisma
 * `findUnique` costs ~0.9 ms of client CPU against ~0.1 ms for the prepared statement, and each execution
 * makes six of them. Everything else stays on Prisma; the row shapes below match Prisma's.
 */

// Prisma stores TIMESTAMP(3) without time zone in UTC; pg would read it as local time.
const TIMESTAMP = 1114;
const utc = (s: string) => new Date(s.replace(" ", "T") + "Z");
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- pg types its default parsers as any
    oid === TIMESTAMP ? utc : pg.types.getTypeParser(oid, format ?? "text")) as typeof pg.types.getTypeParser,
};

export async function query<R extends pg.QueryResultRow>(
  db: Db,
  name: string,
  text: string,
  values: unknown[],
): Promise<R[]> {
  const res = await poolOf(db).query<R>({ name, text, values, types });
  return res.rows;
}

/** A Date as Prisma writes it: UTC wall time (the zone suffix is ignored by a TIMESTAMP column). */
export const ts = (d: Date) => d.toISOString();

/**
 * JSON text for a jsonb parameter. jsonb cannot hold U+0000 (Postgres refuses "\u0000"), and a result holds
 * whatever the code printed: a NUL there made the whole result unstorable and the execution failed. It is
 * stored as U+FFFD, the replacement character, as text decoding does for a byte it cannot show.
 */
export function jsonbText(value: object): string {
  const text = JSON.stringify(value);
  // The check can also match an escaped backslash followed by "u0000"; the replacer then finds nothing to do.
  return text.includes("\\u0000") ? JSON.stringify(value, withoutNul) : text;
}

function withoutNul(_key: string, v: unknown): unknown {
  return typeof v === "string" && v.includes("\0") ? v.replaceAll("\0", "\uFFFD") : v;
}

/** Timestamps inside json_agg come back as text without a zone. */
export const jsonTs = (s: string | null): Date | null => (s === null ? null : utc(s));
