import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/client";

export type Db = InstanceType<typeof PrismaClient>;

/** The only place that constructs the Prisma client; apps receive it and pass it to the repos here. */
export function createDb(opts: { url: string; poolSize?: number }): Db {
  const adapter = new PrismaPg({ connectionString: opts.url, max: opts.poolSize ?? 10 });
  return new PrismaClient({ adapter });
}
