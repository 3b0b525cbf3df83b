/**
 * The image every orch container of a deployment runs: the single-file binary (`npm run build`, which is
 * `bun build --compile`) built from the orch source tree, on Debian slim, as a user that is not root.
 */
import type { OrchConfig } from '../config/schema.ts'
import { STATE_DIR } from './manifests-config.ts'
import type { ManifestFile, ManifestOptions } from './manifests-types.ts'

/** The uid and gid of the image's user; the Kubernetes securityContext runs as the same. */
export const ORCH_UID = 10001

export function renderDockerfile(config: OrchConfig, options: ManifestOptions): ManifestFile[] {
  const port = config.server.port
  const dockerfile = `# syntax=docker/dockerfile:1
# The orch image: the compiled binary (npm run build) on Debian slim, run as a user that is not root.
# Build it from the root of the orch source tree, with this file and Dockerfile.dockerignore beside it:
#   docker build -f path/to/Dockerfile -t ${options.image} .
# Made by \`orch scale manifests\` (orch ${options.version}); docs/scaling.md#deployment-layouts

FROM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# bun itself comes in as a devDependency (its install script fetches the binary for this platform).
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && ./dist/orch --version

FROM debian:bookworm-slim
# ca-certificates for https backends; curl for the HEALTHCHECK.
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates curl \\
 && rm -rf /var/lib/apt/lists/* \\
 && groupadd --system --gid ${ORCH_UID} orch \\
 && useradd --system --uid ${ORCH_UID} --gid ${ORCH_UID} --home-dir ${STATE_DIR} --create-home orch
COPY --from=build /src/dist/orch /usr/local/bin/orch
USER ${ORCH_UID}:${ORCH_UID}
# The state directory (./.orch) and the config's relative paths (cache_path, export_path) land here.
WORKDIR ${STATE_DIR}
EXPOSE ${port}
# For orch serve; a worker has no HTTP port (compose turns the check off for it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \\
  CMD curl -fsS http://127.0.0.1:${port}/health || exit 1
ENTRYPOINT ["/usr/local/bin/orch"]
# Binding 0.0.0.0 needs server.token (ORCH_SERVER_TOKEN).
CMD ["serve", "--host", "0.0.0.0"]
`
  const ignore = `# The build context of the Dockerfile beside this file: the orch source tree, less what the build makes.
.git
node_modules
dist
.orch
*.db
performance_logs
`
  return [
    { path: 'Dockerfile', content: dockerfile },
    { path: 'Dockerfile.dockerignore', content: ignore },
  ]
}
