# The podgate application image for docker-compose.yml: gateway and orchestrator from one image (the command picks
# the role), built offline by `docker/build-image.sh --compose` on podgate/base:bookworm, the pod image's
# debootstrapped base. Its build context (assembled under /var/cache/podgate/) holds Debian .debs resolved against
# that base, Node 24's binary from the npm registry, the production node_modules and the application as JavaScript
# (tsc -p tsconfig.build.json: no tests, no .env): nothing below downloads anything. JavaScript, because Node's
# TypeScript stripper costs each process about 22 MB, and the compile cache that spares a checkout from it needs a
# directory the process can write, which this read-only code must not have. docker/Dockerfile.podgate builds the same application from
# node:24-bookworm-slim where Docker Hub is reachable.
ARG BASE=podgate/base:bookworm
FROM ${BASE}
COPY debs/ /tmp/podgate-debs/
# iptables: the orchestrator installs the pod egress policy in the host's firewall (compose gives it NET_ADMIN in the
# host's network namespace). The application runs as an unprivileged user unless compose says otherwise.
RUN set -e; \
    if ls /tmp/podgate-debs/*.deb >/dev/null 2>&1; then dpkg -i /tmp/podgate-debs/*.deb >/dev/null; fi; \
    rm -rf /tmp/podgate-debs; \
    iptables --version; \
    useradd --system --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin podgate
COPY node /usr/local/bin/node
# Dependencies before sources: a change of the code rebuilds only the last layer.
COPY modules/ /app/
COPY app/ /app/
WORKDIR /app
ENV NODE_ENV=production
# Owned by root and read-only for the process: a compromised gateway cannot rewrite its own code.
USER podgate
# All-in-one by default; `node gateway/main.js` or `node orchestrator/main.js` for one role.
CMD ["node", "main.js"]
