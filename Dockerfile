# syntax=docker/dockerfile:1
# MedStream container image: a build stage with the dev dependencies (TypeScript, esbuild for the
# viewer bundle) and a slim runtime stage with production dependencies only (sharp brings its
# prebuilt libvips for linux-x64/arm64 glibc through its optional @img/* packages).
# Build: docker build -t medstream .   Run: docker run -p 3000:3000 medstream   (docs/deploy.md)
# Node 24, an LTS line every native dependency supports (sharp and onnxruntime-node are Node-API;
# better-sqlite3 12 ships builds for Node 20-25, `npm ci` takes the one of this image's Node).

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    MEDSTREAM_HOST=0.0.0.0 \
    MEDSTREAM_PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The bundled sample slides: what the server serves when no storage URL is given.
COPY samples ./samples
USER node
EXPOSE 3000
# node itself, no curl in the slim image; honours a changed MEDSTREAM_PORT.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MEDSTREAM_PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Not `npm start`: its prestart step builds, which needs the dev dependencies.
# `exec form` so SIGTERM reaches node and the server drains (--shutdown-timeout).
CMD ["node", "dist/cli/main.js", "serve"]
