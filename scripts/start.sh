#!/usr/bin/env bash
# Runs podgate (gateway + orchestrator, the all-in-one main.ts) on this machine: prepares it first (scripts/setup.sh,
# including the pod image, since every pod the orchestrator creates runs podgate/pod:dev), then `npm start`.
# Configuration comes from the environment (see README.md); arguments are passed to main.ts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/setup.sh
# shellcheck source=node-env.sh
source scripts/node-env.sh
exec npm start --silent -- "$@"
