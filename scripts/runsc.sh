#!/usr/bin/env bash
# Finds a gVisor runsc new enough for podgate and prints its path (stdout, one line); installs the pinned build of
# Debian 13 (trixie) when none of the candidates is new enough. Prints to stderr only what it changes.
#   bash scripts/runsc.sh [CANDIDATE_PATH...]
# Candidates (e.g. the path daemon.json already registers, /usr/bin/runsc) are kept, first one first, when their
# `runsc --version` is at least the pinned release: a machine with a newer gVisor keeps its own.
# Why: Debian 12's runsc (0.0~20221219) breaks statx on these kernels, so coreutils 9 (`ls -la`, `stat`) answers
# "Invalid argument" inside every pod; trixie's 0.0~20240729 works and is a static binary with no dependencies.
# The pinned build is fetched from Debian's archive with a source list and package lists of its own (the machine's
# apt sources and lists stay untouched), verified against the SHA-256 pinned below, and installed beside the
# machine's runsc, never over it: $PODGATE_RUNSC_ROOT/<release>/runsc (default /usr/local/lib/podgate/runsc).
set -euo pipefail

# The pin: Debian package version, upstream release (what `runsc --version` prints) and both digests.
RUNSC_DEB_VERSION='0.0~20240729.0-4+b7'
RUNSC_RELEASE='20240729.0'
RUNSC_DEB_SHA256='3c25a5130dfac2f71237d5baad56ac86a255de87a0400f11b36a555156dc325a'
RUNSC_BIN_SHA256='ce52e04038baa76d6069afae5fc1bee60c153bbf0276f2c3c25506553526f38f'
RUNSC_ARCH='amd64'
RUNSC_SUITE="${PODGATE_RUNSC_SUITE:-trixie}"
RUNSC_MIRROR="${PODGATE_RUNSC_MIRROR:-http://deb.debian.org/debian}"
install_root="${PODGATE_RUNSC_ROOT:-/usr/local/lib/podgate/runsc}"
target="$install_root/$RUNSC_RELEASE/runsc"

log() { echo "setup: $*" >&2; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }

# "runsc version 0.0~20240729.0" (Debian) or "runsc version release-20240729.0" (gVisor's own builds) -> 20240729.0;
# nothing when the binary does not run or names no dated release.
release_of() {
  "$1" --version 2>/dev/null | sed -n '1s/^runsc version .*\([0-9]\{8\}\(\.[0-9]\+\)\?\).*$/\1/p'
}
new_enough() {
  local have
  [ -x "$1" ] || return 1
  have="$(release_of "$1")"
  [ -n "$have" ] && dpkg --compare-versions "$have" ge "$RUNSC_RELEASE"
}
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

for candidate in "$@"; do
  if [ -n "$candidate" ] && [ "$candidate" != "$target" ] && new_enough "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

# Already installed: the binary is verified on every run (a changed file is replaced, not trusted).
if [ -x "$target" ] && [ "$(sha256_of "$target")" = "$RUNSC_BIN_SHA256" ]; then
  echo "$target"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "runsc $RUNSC_RELEASE or newer is needed (Debian 12's breaks statx in pods); run scripts/setup.sh as root to install it"
arch="$(dpkg --print-architecture)"
[ "$arch" = "$RUNSC_ARCH" ] || die "no pinned runsc build for $arch: install gVisor $RUNSC_RELEASE or newer and register it as the runsc runtime"

log "installing gVisor runsc $RUNSC_DEB_VERSION from Debian $RUNSC_SUITE to $target"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
echo "deb $RUNSC_MIRROR $RUNSC_SUITE main" >"$work/sources.list"
# apt downloads as its unprivileged user _apt where that user can write.
chmod 0755 "$work"
! id _apt >/dev/null 2>&1 || chown _apt "$work/deb"
apt_own=(-q -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Architecture=$RUNSC_ARCH")
apt-get "${apt_own[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; die "apt-get update from $RUNSC_MIRROR $RUNSC_SUITE failed (output above)"; }
if ! (cd "$work/deb" && apt-get "${apt_own[@]}" download "runsc=$RUNSC_DEB_VERSION") >>"$work/apt.log" 2>&1; then
  cat "$work/apt.log" >&2
  available="$(apt-cache "${apt_own[@]}" policy runsc 2>/dev/null | sed -n 's/^ *Candidate: //p')"
  die "runsc $RUNSC_DEB_VERSION is not in Debian $RUNSC_SUITE (it has ${available:-none}); pin the new one in scripts/runsc.sh (version and both SHA-256)"
fi
deb="$(echo "$work"/deb/runsc_*.deb)"
[ -f "$deb" ] || die "apt-get download left no runsc .deb in $work/deb"
got="$(sha256_of "$deb")"
[ "$got" = "$RUNSC_DEB_SHA256" ] || die "$(basename "$deb") has SHA-256 $got, pinned $RUNSC_DEB_SHA256: not installed"
dpkg-deb -x "$deb" "$work/root"
bin="$work/root/usr/bin/runsc"
got="$(sha256_of "$bin")"
[ "$got" = "$RUNSC_BIN_SHA256" ] || die "runsc in $(basename "$deb") has SHA-256 $got, pinned $RUNSC_BIN_SHA256: not installed"
[ "$(release_of "$bin")" = "$RUNSC_RELEASE" ] || die "the unpacked runsc reports '$("$bin" --version 2>&1 | head -n1)', expected release $RUNSC_RELEASE"

# Atomic replace: a runsc that Docker starts at this moment sees the old file or the new one, never half of one.
mkdir -p "$(dirname "$target")"
install -m 0755 "$bin" "$target.tmp"
mv -f "$target.tmp" "$target"
echo "$target"
