import pg from "pg";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/client";

export type Db = InstanceType<typeof PrismaClient>;

// The pool under each client: the hot-path statements in sql.ts use it directly (see there why).
const pools = new WeakMap<Db, pg.Pool>();

/** The only place that constructs the Prisma client; apps receive it and pass it to the repos here. */
export function createDb(opts: { url: string; poolSize?: number }): Db {
  const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolSize ?? 10 });
  // An idle client that loses its connection (Postgres restarted) must not crash the process.
  pool.on("error", () => undefined);
  const db = new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) });
  pools.set(db, pool);
  return db;
}

export function poolOf(db: Db): pg.Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error("this client was not made by createDb");
  return pool;
}

/** Closes the client and its pool (shutdown). */
export function closeDb(db: Db): Promise<void> {
  return db.$disconnect();
}
