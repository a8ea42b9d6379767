#!/usr/bin/env bash
# Reverse-proxy benchmark (issue 15): wrk through the config our controller pushes vs a
# hand-written Caddy config for the same 3-backend route, plain and with basic auth (bcrypt +
# hash_cache), in the same run; prints req/s medians and the ratio ours / hand-written (target
# ≥ 0.95). What it starts and how it measures: see the header of bench/proxy/bench.ts.
#
#   bash bench/proxy/run.sh
#   WRK_ROUNDS=2 WRK_DURATION=3s bash bench/proxy/run.sh
#
# Builds dist/ (npm run build; the controller runs bin/dnsproxy), then runs bench.ts with `npx tsx`.
# Everything it starts (up to 4 Caddies, the controller, 3 echo backends, wrk) is stopped and every temp
# dir removed on exit (trap), even on failure. Not part of `npm test`. Needs root only to apt-get
# install missing tools (caddy, wrk).
#
# Knobs (environment): WRK_DURATION (5s), WRK_ROUNDS (3), NO_LOG (1 = also wrk our config with the
#   stats access log taken out, and with it sent to a sink that drops it, in two more Caddies;
#   0 = skip), SKIP_BUILD (1 = use dist/ as it is).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

. "$ROOT/scripts/lib.sh"
die() { printf 'bench/proxy: %s\n' "$*" >&2; exit 1; }
need_debs caddy:caddy wrk:wrk
need_node

cd "$ROOT"
need_modules
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  npm run -s build || die "npm run build failed"
fi

# All temp dirs go under $WORK via TMPDIR; every PID the helper starts is appended to $WORK/pids.
WORK=$(mktemp -d /tmp/dnsproxy-bench-proxy.XXXXXX)
HELPER_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $HELPER_PID ]] && kill -0 "$HELPER_PID" 2>/dev/null; then
    kill -TERM "$HELPER_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$HELPER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$HELPER_PID" 2>/dev/null || true
    wait "$HELPER_PID" 2>/dev/null || true
  fi
  if [[ -s $WORK/pids ]]; then
    while read -r pid; do
      # Only processes we started and that still run; their command line names caddy/node/wrk.
      [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || continue
      grep -qaE 'caddy|node|wrk|dnsproxy' "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done <"$WORK/pids"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BENCH_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" status --porcelain -- src 2>/dev/null | grep -q . && BENCH_REV="$BENCH_REV + uncommitted src/ changes"
echo "bench/proxy: $BENCH_REV, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(caddy version | cut -d' ' -f1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), node $(node -v)"
TMPDIR="$WORK" BENCH_PIDFILE="$WORK/pids" npx tsx "$HERE/bench.ts" &
HELPER_PID=$!
rc=0
wait "$HELPER_PID" || rc=$?
HELPER_PID=""
echo "bench/proxy: done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$rc"
