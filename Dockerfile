# connectors-proxy image: three stages.
#   opa     builds the pinned OPA compiler (scripts/install-opa.sh, the same pin as the tests)
#   build   compiles the TypeScript and keeps only the production dependencies
#   runtime distroless Node.js 20, non-root (uid 65532), no shell: the proxy, its
#           node_modules and the OPA binary the proxy runs to compile Rego policies
# Build: docker build -t connectors-proxy:0.1.0 .
# test/image.test.ts lints this file (hadolint), checks it against deploy/ and runs its
# ENTRYPOINT and CMD on the locally built output.

FROM golang:1.26-bookworm AS opa
# Keep in step with OPA_VERSION in src/config.ts (test/image.test.ts checks).
ARG OPA_VERSION=v1.22.2
# A static binary: the runtime image has no Go toolchain and need not match its libc.
ENV CGO_ENABLED=0 CONNECTORS_PROXY_CACHE=/build/cache OPA_VERSION=${OPA_VERSION}
WORKDIR /build
COPY scripts/install-opa.sh ./
RUN cp "$(bash install-opa.sh)" /build/opa && /build/opa version

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json ./
COPY src ./src
RUN npx --no-install tsc -p tsconfig.json && npm prune --omit=dev --no-audit --no-fund

FROM gcr.io/distroless/nodejs20-debian12:nonroot AS runtime
WORKDIR /app
# MALLOC_ARENA_MAX: fewer glibc malloc arenas, less RSS held by freed stream buffers (bench/README.md).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    PROXY_OPA=/usr/local/bin/opa \
    PROXY_POLICY_CACHE_DIR=/var/cache/connectors-proxy/policies
COPY --from=opa /build/opa /usr/local/bin/opa
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
USER 65532:65532
# 8080 proxy, 9090 metrics and probes, 8443 the optional HTTPS listener.
EXPOSE 8080 9090 8443
# entrypoint.js sizes V8's heap to the container's memory limit (cgroup), then runs main.js.
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/src/entrypoint.js"]
CMD ["--source", "kubernetes"]
