#!/usr/bin/env bash
# `node` for the npm scripts: the system node may be older than 22.19 (these machines ship Node 20, which cannot
# run .ts files), so `npm start` on a machine whose PATH has it would fail before printing anything useful.
# shellcheck source=node-env.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-env.sh"
exec node "$@"
