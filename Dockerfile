# syntax=docker/dockerfile:1
# The container images of the apps, one final stage each, selected with --target. The build context
# is the repository root:
#
#   docker build --target kubectl-proxy -t ghcr.io/kproxy/kubectl-proxy:0.0.0 .
#   docker build --target apiserver-proxy -t ghcr.io/kproxy/apiserver-proxy:0.0.0 .
#   docker build --target front-lb -t ghcr.io/kproxy/front-lb:0.0.0 .
#   docker run --rm ghcr.io/kproxy/apiserver-proxy:0.0.0 --help
#
# (Without --target, docker builds the last stage: front-lb.) The build stage builds the apps and
# their @kproxy dependencies in the monorepo, then scripts/pack-app.mjs installs each app the way a
# user would (`npm pack` of the app and of its @kproxy dependency closure, `npm install --omit=dev`
# of the tarballs into the empty project /out/<app>, as scripts/check-packages.mjs does) and runs
# the installed bin's --help: an image holds dist/ and the runtime dependencies only, no sources,
# tests, devDependencies or monorepo. e2e/test/images.test.ts checks this file against the
# package.json files, the apps' defaults and deploy/.

FROM node:24-bookworm-slim AS build
ENV TURBO_TELEMETRY_DISABLED=1 NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /src
# .dockerignore keeps node_modules, dist and .turbo out, and the private workspaces (sandbox, e2e)
# that no app depends on: npm ci skips a workspace of package.json whose directory is absent.
COPY package.json package-lock.json turbo.json tsconfig.base.json tsup.shared.ts ./
COPY packages packages
COPY apps apps
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
RUN npx turbo run build --output-logs=errors-only \
      --filter=@kproxy/kubectl-proxy... --filter=@kproxy/apiserver-proxy... --filter=@kproxy/front-lb...
COPY scripts/pack-app.mjs scripts/
COPY scripts/lib scripts/lib
RUN --mount=type=cache,target=/root/.npm \
    node scripts/pack-app.mjs --out /out kubectl-proxy apiserver-proxy front-lb

# What the images share. uid/gid 65532 ("nonroot", as distroless) matches the securityContext of
# deploy/apiserver-proxy/deployment.yaml and deploy/front-lb/static-pod.yaml. npm, corepack and
# yarn are removed: nothing installs anything at run time.
FROM node:24-bookworm-slim AS runtime
LABEL org.opencontainers.image.source="https://github.com/kproxy/kproxy" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-log-init --create-home --home-dir /home/nonroot \
      --shell /usr/sbin/nologin nonroot \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-* \
 && rm -f /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg
WORKDIR /app
USER 65532:65532
# Each app below: COPY --from=build /out/<app> /app leaves the files owned by root and read-only for
# the app (the root filesystem may be mounted read-only); the ENTRYPOINT is the installed bin, so
# that its shebang's Node flags apply, in exec form, so that node is PID 1 and gets the signals.

FROM runtime AS kubectl-proxy
LABEL org.opencontainers.image.title="kubectl-proxy" \
      org.opencontainers.image.description="A drop-in, faster kubectl proxy: localhost HTTP to the Kubernetes API server with your kubeconfig credentials." \
      org.opencontainers.image.url="https://github.com/kproxy/kproxy/tree/main/apps/kubectl-proxy"
COPY --from=build /out/kubectl-proxy /app
# --port. kubectl's defaults are kept: it listens on 127.0.0.1 and accepts only localhost Host
# headers (right for a sidecar); to publish the port, pass --address=0.0.0.0 and --accept-hosts.
EXPOSE 8001
# SIGTERM: graceful shutdown.
ENTRYPOINT ["/app/node_modules/.bin/kubectl-proxy"]

FROM runtime AS apiserver-proxy
LABEL org.opencontainers.image.title="apiserver-proxy" \
      org.opencontainers.image.description="The API server's service/pod/node proxy as a standalone, authenticated HTTPS bastion." \
      org.opencontainers.image.url="https://github.com/kproxy/kproxy/tree/main/apps/apiserver-proxy"
COPY --from=build /out/apiserver-proxy /app
# --secure-port (HTTPS) and --admin-port (/healthz, /readyz, /metrics over plain HTTP).
EXPOSE 8443 8081
# The shebang's --max-semi-space-size=2 applies; SIGTERM: graceful shutdown within
# --shutdown-grace-period.
ENTRYPOINT ["/app/node_modules/.bin/apiserver-proxy"]

FROM runtime AS front-lb
LABEL org.opencontainers.image.title="front-lb" \
      org.opencontainers.image.description="An L4 load balancer in front of Kubernetes API servers: TLS pass-through, health checks, draining, PROXY protocol." \
      org.opencontainers.image.url="https://github.com/kproxy/kproxy/tree/main/apps/front-lb"
COPY --from=build /out/front-lb /app
# The listener and admin ports of deploy/front-lb/front-lb.yaml, the config the default CMD reads (a
# listener has no default port; the admin listener's default is 127.0.0.1:8404: pass
# --admin-address=0.0.0.0:8404 to reach it from outside the container's network namespace).
EXPOSE 8443 8404
# The shebang's --max-semi-space-size=1 applies; SIGTERM: connections drain for up to
# shutdownTimeout; SIGHUP: reload.
ENTRYPOINT ["/app/node_modules/.bin/front-lb"]
# The config file of deploy/front-lb/ (mount it at /etc/front-lb/); arguments given to `docker run`
# replace it, e.g. --listen 0.0.0.0:6443 --endpoint 10.0.0.11:6443 --endpoint 10.0.0.12:6443.
CMD ["--config", "/etc/front-lb/front-lb.yaml"]
