#!/bin/sh
# supervisord's `caddy` program: writes the bootstrap config (admin API on DNSPROXY_CADDY_ADMIN,
# nothing persisted; the controller replaces everything else) and becomes
# `caddy run --config $DNSPROXY_RUN_DIR/caddy-bootstrap.json` (exec: supervisord's pid is Caddy's).
# Written at every start, so the admin address always follows the environment (`docker run -e`).
# DNSPROXY_CADDY_ADMIN is `unix/<absolute path>` (the default: $DNSPROXY_RUN_DIR/caddy-admin.sock)
# or a loopback host:port; anything else is refused here too, before Caddy could listen on it.
set -eu
: "${DNSPROXY_RUN_DIR:?DNSPROXY_RUN_DIR must be set}" "${DNSPROXY_CADDY_ADMIN:?DNSPROXY_CADDY_ADMIN must be set}"
admin="$DNSPROXY_CADDY_ADMIN"
refuse() {
  echo "caddy-run.sh: DNSPROXY_CADDY_ADMIN=$admin: $1" >&2
  exit 1
}
# Same rules as adminAddressProblem() in src/proxy/admin-address.ts.
case "$admin" in
  unix//*)
    case "${admin#unix/}" in *[!A-Za-z0-9._+@,=/-]*) refuse 'the socket path may hold only letters, digits and . _ - + @ , = /' ;; esac
    # The socket's directory: created owner-only when missing.
    sockdir=$(dirname "${admin#unix/}")
    [ -d "$sockdir" ] || mkdir -p -m 0700 "$sockdir"
    ;;
  127.*:[0-9]* | localhost:[0-9]* | '[::1]':[0-9]*)
    host="${admin%:*}" port="${admin##*:}"
    case "$port" in *[!0-9]*) refuse 'must be a loopback host:port' ;; esac
    case "$host" in localhost | '[::1]') ;; *[!0-9.]*) refuse 'must be a loopback host:port' ;; esac
    ;;
  *) refuse "must be unix/<absolute path> or a loopback host:port (127.0.0.1:2019): anything else puts Caddy's admin API on the network" ;;
esac
mkdir -p "$DNSPROXY_RUN_DIR"
conf="$DNSPROXY_RUN_DIR/caddy-bootstrap.json"
# Same document as bootstrapConfig() in src/proxy/process.ts.
printf '{"admin":{"listen":"%s","config":{"persist":false}}}\n' "$admin" >"$conf.tmp"
mv "$conf.tmp" "$conf"
# Caddy 2.6.2 creates the admin socket 0777 & ~umask and has no mode option (`|0600` came in 2.7):
# umask 077 makes it srwx------, so only this user can connect (caddyArgv() in src/proxy/process.ts).
umask 077
exec caddy run --config "$conf"
