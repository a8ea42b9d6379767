#!/usr/bin/env bash
# Sets up and runs the stack on local, unprivileged ports with data in ./data: the controller
# (API + DNS) and Caddy as its child. Ctrl-C stops everything. Override any setting with
# DNSPROXY_* variables (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_node
need_debs caddy:caddy
need_npm
export DNSPROXY_DATA_DIR="${DNSPROXY_DATA_DIR:-$PWD/data}"
export DNSPROXY_DNS_PORT="${DNSPROXY_DNS_PORT:-5300}"
export DNSPROXY_API_PORT="${DNSPROXY_API_PORT:-8080}"
export DNSPROXY_HTTP_PORT="${DNSPROXY_HTTP_PORT:-8081}"
export DNSPROXY_HTTPS_PORT="${DNSPROXY_HTTPS_PORT:-8443}"
export DNSPROXY_CADDY_ADMIN="${DNSPROXY_CADDY_ADMIN:-127.0.0.1:2019}"
export DNSPROXY_CADDY_SPAWN="${DNSPROXY_CADDY_SPAWN:-1}"
mkdir -p "$DNSPROXY_DATA_DIR"
exec node bin/dnsproxy serve "$@"
