# One image for the API, the worker and the migration step (the command differs per service). The apps run
# their TypeScript through tsx, so the install keeps dev dependencies; `npm ci` installs exactly the lockfile.
FROM node:22-bookworm-slim
WORKDIR /app
COPY . .
RUN npm ci --include=dev --no-audit --no-fund \
    && npx prisma generate \
    && mkdir -p /data && chown node:node /data
ENV NODE_ENV=production
USER node
CMD ["node", "--import", "tsx", "apps/api/src/main.ts"]
