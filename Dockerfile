# One image for the API, the worker and the migration step (the command differs per service). The apps run
# their TypeScript through tsx, so the install keeps dev dependencies; `npm ci` installs exactly the lockfile.
#   docker build -t codeinterp .                         (compose's `build: .`, the API on Kubernetes)
#   docker build --target cell -t codeinterp-cell .      (a cell on Kubernetes: deploy/kustomize)
FROM node:22-bookworm-slim AS app
WORKDIR /app
COPY . .
RUN npm ci --include=dev --no-audit --no-fund \
    && npx prisma generate \
    && mkdir -p /data && chown node:node /data
ENV NODE_ENV=production
USER node
CMD ["node", "--import", "tsx", "apps/api/src/main.ts"]

# A cell: the worker with its embedded Jupyter server, whose kernels run under bubblewrap (SECURITY.md mode 1).
# Debian's Jupyter and the sandbox's tools (the list @codeinterp/kernel installs for `npm start`: APT_PACKAGES),
# and tini as PID 1, which reaps kernels' orphans and passes SIGTERM on so the worker drains. Root: the sandbox
# gives each workspace a uid of its own and writes the kernels' cgroups (docs/kubernetes.md says what the pod
# must allow for that).
FROM app AS cell
USER root
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3-jupyter-server python3-ipykernel python3-pandas python3-openpyxl python3-matplotlib python3-reportlab \
      bubblewrap socat tini \
    && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "scripts/cell.ts"]

# The default target stays the app image.
FROM app
