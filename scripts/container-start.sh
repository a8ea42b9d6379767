#!/bin/sh
# The image's ENTRYPOINT (Dockerfile.all). Before supervisord starts, the data dir must be writable
# by the user the container runs as: a bind mount owned by root would leave Caddy up and the
# controller and the relay FATAL ("unable to open database file") in a container that looks "Up".
# Instead the container ends here with one line that says what to do. Any other command (e.g.
# `docker run --rm IMAGE dnsproxy --help`) runs as given.
set -eu
if [ "${1:-}" = supervisord ]; then
  data="${DNSPROXY_DATA_DIR:?DNSPROXY_DATA_DIR must be set}"
  probe="$data/.dnsproxy-write-check.$$"
  if ! { [ -d "$data" ] && (: >"$probe") 2>/dev/null && rm -f "$probe"; }; then
    owner=$(stat -c '%u:%g' "$data" 2>/dev/null || echo 'missing')
    echo "dnsproxy: cannot write the data dir $data (owner $owner) as uid $(id -u) gid $(id -g): run 'chown -R $(id -u):$(id -g)' on it on the host, or use a named volume" >&2
    exit 1
  fi
fi
exec "$@"
