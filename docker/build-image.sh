#!/usr/bin/env bash
# Builds the pod image podgate/pod:dev without any container registry (Docker Hub is unreachable here):
#   1. debootstrap a Debian bookworm rootfs with docker/packages.txt (cached under /var/cache/podgate/),
#   2. `docker import` it as podgate/base:bookworm,
#   3. `docker build` docker/Dockerfile.offline (FROM podgate/base:bookworm, no RUN step downloads) as podgate/pod:dev.
# Each step is skipped when its inputs are unchanged: the images carry the hash of their inputs as a label.
#
# Usage: docker/build-image.sh [--force] [--quiet]
#   --force  rebuild everything (new debootstrap, new import, docker build --no-cache)
#   --quiet  print nothing when the image is already up to date
# Environment: PODGATE_POD_IMAGE, PODGATE_BASE_IMAGE, PODGATE_CACHE_DIR, PODGATE_DEBIAN_MIRROR override the defaults.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POD_IMAGE="${PODGATE_POD_IMAGE:-podgate/pod:dev}"
BASE_IMAGE="${PODGATE_BASE_IMAGE:-podgate/base:bookworm}"
CACHE_DIR="${PODGATE_CACHE_DIR:-/var/cache/podgate}"
MIRROR="${PODGATE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
# Bump when the rootfs recipe below changes in a way the package list does not show.
BASE_RECIPE=2
BASE_LABEL=podgate.base-hash
POD_LABEL=podgate.inputs-hash

force=0
quiet=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --quiet) quiet=1 ;;
    *) echo "build-image: unknown argument $arg (expected --force or --quiet)" >&2; exit 2 ;;
  esac
done

log() { echo "build-image: $*" >&2; }
die() { echo "build-image: ERROR: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker CLI not found (scripts/setup.sh installs docker.io)"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (scripts/setup.sh starts one)"

packages="$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/packages.txt" | awk NF | LC_ALL=C sort -u | paste -sd, -)"
[ -n "$packages" ] || die "docker/packages.txt lists no package"

base_hash="$(printf '%s\n' "recipe=$BASE_RECIPE" "suite=$SUITE" "packages=$packages" | sha256sum | cut -c1-16)"

# The pod image's inputs: the files that end up in (or shape) it. Other files in docker/ (docs, tests, the app's
# own Dockerfile.podgate) do not trigger a rebuild.
POD_INPUTS=(Dockerfile.offline .dockerignore packages.txt rootfs templates)
inputs_hash() {
  (
    cd "$here"
    find "${POD_INPUTS[@]}" -type f -print0 | LC_ALL=C sort -z |
      while IFS= read -r -d '' f; do
        printf '%s %s ' "$f" "$(stat -c %a "$f")"
        sha256sum <"$f"
      done
    echo "base=$base_hash"
  ) | sha256sum | cut -c1-16
}
pod_hash="$(inputs_hash)"

label_of() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null || true; }

if [ "$force" = 0 ] && [ "$(label_of "$POD_IMAGE" "$POD_LABEL")" = "$pod_hash" ]; then
  [ "$quiet" = 1 ] || log "$POD_IMAGE is up to date (inputs $pod_hash)"
  exit 0
fi

# Two builds at once (setup.sh in two shells, a test run beside CI) would race on the cache and the tags.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/build.lock"
flock 9
if [ "$force" = 0 ] && [ "$(label_of "$POD_IMAGE" "$POD_LABEL")" = "$pod_hash" ]; then
  [ "$quiet" = 1 ] || log "$POD_IMAGE was built meanwhile by another run"
  exit 0
fi

started=$SECONDS

build_rootfs() {
  local dir="$1"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root (run as root or build the base image once as root)"
  command -v debootstrap >/dev/null || die "debootstrap not found (scripts/setup.sh installs it)"
  rm -rf "$dir.tmp"
  log "debootstrap $SUITE (minbase + $packages) into $dir"
  debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir.tmp" "$MIRROR" >"$CACHE_DIR/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $CACHE_DIR/debootstrap.log"

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
    >>"$CACHE_DIR/debootstrap.log" 2>&1; then
    die "apt-get upgrade in the rootfs failed; see $CACHE_DIR/debootstrap.log"
  fi
  chroot "$dir.tmp" apt-get -qq clean
  rm -rf "$dir.tmp"/var/lib/apt/lists/* "$dir.tmp"/var/cache/apt/*.bin "$dir.tmp"/var/log/* "$dir.tmp/etc/resolv.conf"
  # Keep the licences (copyright files), drop manuals: a pod image is pulled onto every node.
  find "$dir.tmp/usr/share/doc" -type f ! -name copyright -delete
  rm -rf "$dir.tmp"/usr/share/man/* "$dir.tmp"/usr/share/info/*
  : >"$dir.tmp/etc/resolv.conf"
  mv "$dir.tmp" "$dir"
}

if [ "$force" = 1 ] || [ "$(label_of "$BASE_IMAGE" "$BASE_LABEL")" != "$base_hash" ]; then
  rootfs="$CACHE_DIR/rootfs-$base_hash"
  if [ "$force" = 1 ] || [ ! -d "$rootfs" ]; then
    rm -rf "$rootfs"
    build_rootfs "$rootfs"
  fi
  # Other hashes are stale recipes: they only fill the disk.
  find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name 'rootfs-*' ! -name "rootfs-$base_hash" -exec rm -rf {} +
  log "importing $rootfs as $BASE_IMAGE"
  tar --numeric-owner -C "$rootfs" -c . |
    docker import --change "LABEL $BASE_LABEL=$base_hash" --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
fi

log "building $POD_IMAGE from docker/Dockerfile.offline"
build_args=(--file "$here/Dockerfile.offline" --tag "$POD_IMAGE" --label "$POD_LABEL=$pod_hash" --build-arg "BASE=$BASE_IMAGE")
[ "$force" = 0 ] || build_args+=(--no-cache)
# The classic builder uses the local base image as is; BuildKit would try to resolve it on Docker Hub.
if ! DOCKER_BUILDKIT=0 docker build --quiet "${build_args[@]}" "$here" >"$CACHE_DIR/docker-build.log" 2>&1; then
  cat "$CACHE_DIR/docker-build.log" >&2
  die "docker build failed"
fi
# Untagged layers of earlier builds of the pod image.
docker image prune --force --filter "label=$POD_LABEL" >/dev/null 2>&1 || true
log "built $POD_IMAGE (inputs $pod_hash) in $((SECONDS - started)) s"
