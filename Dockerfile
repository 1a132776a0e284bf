# modelwatch image: one image, every role (`modelwatch up|sidecar|ingest|detect|api`).

# Build stage: all dependencies (TypeScript), compiles src/ to dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.sh ./scripts/
COPY src ./src
RUN npm run build

# Runtime stage: production dependencies and the compiled JavaScript only (no sources, no tsx).
FROM node:20-bookworm-slim
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json .npmrc ./
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY --from=build /app/dist ./dist
# The embedded store's default place (`chdb:./.modelwatch/chdb`), writable by the runtime user.
RUN mkdir -p /app/.modelwatch && chown node:node /app/.modelwatch
USER node
# Exec form, no npm/npx or shell in between: tini (PID 1) passes SIGTERM from `docker stop` or Kubernetes
# straight to node, whose handler stops every role cleanly and exits 0.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/modelwatch.js"]
CMD ["up"]
