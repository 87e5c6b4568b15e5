# syntax=docker/dockerfile:1

# ---- build: compile TypeScript to dist/ --------------------------------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The sources are not here yet: install without running the package's own `prepare` (the build).
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The build also writes the embedded database template (initdb run, migrations applied), which
# needs the migrations and its script.
COPY migrations ./migrations
COPY scripts ./scripts
RUN npm run build

# ---- production: runtime dependencies and compiled code only ----------------------------
FROM node:22-bookworm-slim AS production
ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY --from=build /app/dist ./dist
# config/ and migrations/ sit beside package.json (src/project-root.ts), as in a clone.
COPY config ./config
COPY migrations ./migrations

# Embedded mode (no DATABASE_URL) keeps PGlite, generated keys and bootstrap.json here;
# mount a volume on it, or run against PostgreSQL and Redis.
RUN mkdir -p /app/data && chown node:node /app/data

USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT || 3000}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/src/cli.js", "serve"]
