#!/bin/sh
# Stand-in for Prisma's schema engine: `prisma generate` needs an executable path, not the engine.
echo "prisma schema engine is not available offline; migrations are applied by packages/db/src/migrate.ts" >&2
exit 1
