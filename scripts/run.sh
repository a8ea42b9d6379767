#!/usr/bin/env bash
# Sets up and runs the controller (API + DNS) on local, unprivileged ports with data in ./data.
# Ctrl-C stops it. Override any setting with DNSPROXY_* variables (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_node
need_npm
export DNSPROXY_DATA_DIR="${DNSPROXY_DATA_DIR:-$PWD/data}"
export DNSPROXY_DNS_PORT="${DNSPROXY_DNS_PORT:-5300}"
export DNSPROXY_API_PORT="${DNSPROXY_API_PORT:-8080}"
mkdir -p "$DNSPROXY_DATA_DIR"
exec node bin/dnsproxy serve "$@"
