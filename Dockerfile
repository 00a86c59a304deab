# One image for the API, the worker and the migration step (the command differs per service).
FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY apps/api/package.json apps/api/
COPY apps/worker/package.json apps/worker/
COPY packages/config/package.json packages/config/
COPY packages/db/package.json packages/db/
COPY packages/kernel/package.json packages/kernel/
COPY packages/logger/package.json packages/logger/
COPY packages/queue/package.json packages/queue/
COPY packages/workspace/package.json packages/workspace/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npx prisma generate && mkdir -p /data && chown node:node /data
USER node
CMD ["node", "--import", "tsx", "apps/api/src/main.ts"]
