import path from "node:path";
import { defineConfig } from "prisma/config";

// The engine download host is unreachable on our machines; `prisma generate` only needs some executable
// here. A user's own setting wins.
process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= path.resolve("scripts/prisma-engine-stub.sh");

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/codeinterp" },
});
