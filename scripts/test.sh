#!/usr/bin/env bash
# THE test command: prepares the machine (scripts/setup.sh), type-checks, then runs the whole vitest suite.
# Extra arguments go to vitest (scripts/test.sh gateway/ runs one folder). Exits non-zero on any failure.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# The suite drives VS Code too (podgate/pod:vscode: about 2-8 minutes to build the first time, cached after).
export PODGATE_WITH_VSCODE="${PODGATE_WITH_VSCODE:-1}"
# And the stack templates (test/templates-e2e.test.ts): about 6 minutes the first time, cached after.
export PODGATE_WITH_TEMPLATES="${PODGATE_WITH_TEMPLATES:-1}"
bash scripts/setup.sh
# The tests' fixed host ports (pod port ranges, the busy-port case) lie in 38000-38999, inside Linux's ephemeral
# range: reserved, so an outgoing connection of the machine can never be holding one when a test binds it.
if [ -w /proc/sys/net/ipv4/ip_local_reserved_ports ]; then
  reserved="$(cat /proc/sys/net/ipv4/ip_local_reserved_ports)"
  case ",$reserved," in
    *",38000-38999,"*) ;;
    *) echo "${reserved:+$reserved,}38000-38999" >/proc/sys/net/ipv4/ip_local_reserved_ports ;;
  esac
fi
# shellcheck source=node-env.sh
source scripts/node-env.sh

echo "test: tsc --noEmit -p ." >&2
npx --no-install tsc --noEmit -p .
echo "test: vitest run $*" >&2
npx --no-install vitest run "$@"
