import path from "node:path";
import { repoRoot } from "@codeinterp/config";
import { ensureDatabase, migrate } from "./migrate";

// `npm run db:migrate`: the scripts' own entry point, so it reads the environment directly.
// eslint-disable-next-line no-restricted-properties
const url = process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/codeinterp";
const created = await ensureDatabase(url);
const result = await migrate({ url, migrationsDir: path.join(repoRoot, "prisma/migrations") });
console.log(JSON.stringify({ databaseCreated: created, ...result }));
