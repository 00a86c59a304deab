# One image for the API, the worker and the migration step (the command differs per service). The apps run
# their TypeScript through tsx, so the install keeps dev dependencies. `npm install` (not `npm ci`) follows the
# lockfile exactly; the lockfile lacks turbo's macOS/Windows binaries, which `npm ci` would reject.
FROM node:22-bookworm-slim
WORKDIR /app
COPY . .
RUN npm install --include=dev --no-audit --no-fund \
    && npx prisma generate \
    && mkdir -p /data && chown node:node /data
ENV NODE_ENV=production
USER node
CMD ["node", "--import", "tsx", "apps/api/src/main.ts"]
