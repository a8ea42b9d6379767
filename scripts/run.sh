#!/usr/bin/env bash
# Sets up and runs the whole stack under supervisord on local, unprivileged ports with data in
# ./data: Caddy, the controller (API + DNS + Caddy reconciler) and the mail relay as three programs
# of supervisord.conf, the same file the container uses. Ctrl-C stops everything. Override any
# setting with DNSPROXY_* variables (see README); `dnsproxy status` shows the programs' states.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
[ $# -eq 0 ] || die "run.sh takes no arguments: set DNSPROXY_* variables instead (see README, Settings)"
need_node
need_debs caddy:caddy supervisord:supervisor
# Every %(ENV_…)s that supervisord.conf reads gets a value here (test/deploy/dockerfile.test.ts checks it).
export DNSPROXY_APP_DIR="$PWD"
export DNSPROXY_DATA_DIR="${DNSPROXY_DATA_DIR:-$PWD/data}"
export DNSPROXY_RUN_DIR="${DNSPROXY_RUN_DIR:-$DNSPROXY_DATA_DIR/run}"
export DNSPROXY_LISTEN_IP="${DNSPROXY_LISTEN_IP:-127.0.0.1}"
export DNSPROXY_DNS_PORT="${DNSPROXY_DNS_PORT:-5300}"
export DNSPROXY_API_PORT="${DNSPROXY_API_PORT:-8080}"
export DNSPROXY_HTTP_PORT="${DNSPROXY_HTTP_PORT:-8081}"
export DNSPROXY_HTTPS_PORT="${DNSPROXY_HTTPS_PORT:-8443}"
export DNSPROXY_SMTP_PORT="${DNSPROXY_SMTP_PORT:-2525}"
export DNSPROXY_SUBMISSION_PORT="${DNSPROXY_SUBMISSION_PORT:-2587}"
# Implicit TLS submission (465 in the image); set it empty to have no such listener.
export DNSPROXY_SMTPS_PORT="${DNSPROXY_SMTPS_PORT-2465}"
# supervisord needs absolute paths (it changes directory for its programs).
case "$DNSPROXY_DATA_DIR" in /*) ;; *) DNSPROXY_DATA_DIR="$PWD/$DNSPROXY_DATA_DIR" ;; esac
case "$DNSPROXY_RUN_DIR" in /*) ;; *) DNSPROXY_RUN_DIR="$PWD/$DNSPROXY_RUN_DIR" ;; esac
# Caddy's admin API: a unix socket in the run dir (owner-only, like supervisor's socket beside it);
# set DNSPROXY_CADDY_ADMIN=127.0.0.1:2019 for a loopback TCP admin instead.
export DNSPROXY_CADDY_ADMIN="${DNSPROXY_CADDY_ADMIN:-unix/$DNSPROXY_RUN_DIR/caddy-admin.sock}"
# The data dir holds secrets (the SQLite file, private keys): directories made here are ours alone.
(umask 077 && mkdir -p "$DNSPROXY_DATA_DIR" "$DNSPROXY_RUN_DIR")
# The default run dir is ours (older versions made it 0755): owner-only, like the sockets in it.
[ "$DNSPROXY_RUN_DIR" != "$DNSPROXY_DATA_DIR/run" ] || chmod 0700 "$DNSPROXY_RUN_DIR"
# A second supervisord on the same socket would start a second Caddy (SO_REUSEPORT lets both bind).
if [ -S "$DNSPROXY_RUN_DIR/supervisor.sock" ] && supervisorctl -c supervisord.conf pid >/dev/null 2>&1; then
  # The stop command needs this run dir: a plain shell has no DNSPROXY_RUN_DIR for supervisord.conf to expand.
  die "already running (supervisord pid $(supervisorctl -c supervisord.conf pid)); stop it first: DNSPROXY_RUN_DIR=$(printf %q "$DNSPROXY_RUN_DIR") $(printf %q "$PWD/bin/dnsproxy") stop"
fi
# A port another process holds would leave a half-running stack: say which DNSPROXY_* moves it, start nothing.
node scripts/check-ports.mjs || exit 1
need_npm
echo "dnsproxy: running on Node $(node --version) ($(command -v node))" >&2
# supervisord opens /dev/stdout again for each program's output: on a socket (journald, Node's
# child_process) that fails with ENXIO, and on a file opened without O_APPEND the writes clobber
# each other. A tty or a pipe works, so a socket gets a pipe through cat and a file is reopened for append.
if [ -S /dev/stdout ]; then exec > >(exec cat); elif [ -f /dev/stdout ]; then exec >>/dev/stdout; fi
# So is whatever supervisord and its programs create (Caddy's storage included).
umask 077
exec supervisord -n -c supervisord.conf
