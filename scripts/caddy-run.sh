#!/bin/sh
# supervisord's `caddy` program: writes the bootstrap config (admin API on DNSPROXY_CADDY_ADMIN,
# loopback, nothing persisted; the controller replaces everything else) and becomes
# `caddy run --config $DNSPROXY_RUN_DIR/caddy-bootstrap.json` (exec: supervisord's pid is Caddy's).
# Written at every start, so the admin address always follows the environment (`docker run -e`).
set -eu
: "${DNSPROXY_RUN_DIR:?DNSPROXY_RUN_DIR must be set}" "${DNSPROXY_CADDY_ADMIN:?DNSPROXY_CADDY_ADMIN must be set}"
mkdir -p "$DNSPROXY_RUN_DIR"
conf="$DNSPROXY_RUN_DIR/caddy-bootstrap.json"
# Same document as bootstrapConfig() in src/proxy/process.ts.
printf '{"admin":{"listen":"%s","config":{"persist":false}}}\n' "$DNSPROXY_CADDY_ADMIN" >"$conf.tmp"
mv "$conf.tmp" "$conf"
exec caddy run --config "$conf"
