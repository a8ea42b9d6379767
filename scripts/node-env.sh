#!/usr/bin/env bash
# Prints the shell lines that give an interactive shell the Node.js the scripts use, installing the
# pinned one first when this machine's node is older than 22 (see scripts/lib.sh):
#   eval "$(bash scripts/node-env.sh)"
# Then node, npm, npx mocha and bin/dnsproxy run on it, and npm builds native modules against its
# headers. Prints nothing when the machine's own node is new enough.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_node
if [ -n "$DNSPROXY_NODE_DIR" ]; then
  printf 'export PATH=%q:"$PATH"\n' "$DNSPROXY_NODE_DIR/bin"
  printf 'export npm_config_nodedir=%q\n' "$DNSPROXY_NODE_DIR"
fi
