#!/usr/bin/env bash
# Caddy benchmark, two parts in one run (loopback only):
#   1. dynamic.ts — plain names through DNS: record changes per second absorbed with zero Caddy
#      loads; req/s through a dynamic vs an explicit route to the same backend; the config Caddy
#      runs at 1, 100, 5,000, 10,000 plain names and the 10,000th host's req/s vs the first's;
#      POST /add-record response time with 5,000 names present;
#   2. bench.ts — the reload path: how long our controller takes to get a new explicit route
#      served through Caddy, against a bare `POST /load` of the same config into a second Caddy;
#      host lookup cost at 5,000 routes (wrk, first vs last host); RSS of Caddy and the controller.
#
#   bash bench/caddy/run.sh                 # both
#   BENCH=dynamic bash bench/caddy/run.sh   # only part 1 (BENCH=bench: only part 2)
#
# Builds dist/ (npm run build), then runs each part with `npx tsx` (what it measures and how: see
# the header of each file). Everything it starts (Caddy x2 per N, the controller,
# the echo backend, wrk) is stopped and every temp dir removed on exit (trap), even on failure.
# Not part of `npm test`. Needs root only to apt-get install missing tools (caddy, wrk).
#
# Knobs (environment): ROUTES (100,1000,5000), K (10 apply iterations per N), POLL_MS (2),
#   PRELOAD_CONCURRENCY (20), WRK_AT (largest N), WRK_DURATION (5s), WRK_ROUNDS (2),
#   NAIVE (1 = also wrk a flat one-route-per-host layout), QUIET_WAIT (60 s to wait for other
#   work on the machine to stop before each measured part), QUIET_PCT (15), SKIP_BUILD (1 = use dist/),
#   DUMP_LOGS (a directory: keep the controller's and both Caddies' output per N there).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# ---- tools ------------------------------------------------------------------
# Installs what is missing (apt-get as root; otherwise says what to install), as the README commands do.
. "$ROOT/scripts/lib.sh"
die() { printf 'bench/caddy: %s\n' "$*" >&2; exit 1; }
need_debs caddy:caddy wrk:wrk
need_node

cd "$ROOT"
# Installs node_modules when missing or built for another Node ABI (scripts/lib.sh).
need_modules
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  npm run -s build || die "npm run build failed"
fi

# ---- cleanup ----------------------------------------------------------------
# All temp dirs (Caddy homes, controller data) go under $WORK via TMPDIR; every PID the helper
# starts is appended to $WORK/pids, so a helper that dies hard still leaves nothing running.
WORK=$(mktemp -d /tmp/dnsproxy-bench-caddy.XXXXXX)
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
      grep -qaE 'caddy|node|wrk' "/proc/$pid/cmdline" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done <"$WORK/pids"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

BENCH_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" status --porcelain -- src 2>/dev/null | grep -q . && BENCH_REV="$BENCH_REV + uncommitted src/ changes (dist/ built from the working tree)"
export BENCH_REV
echo "bench/caddy: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(caddy version | cut -d' ' -f1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), node $(node -v)"
rc=0
for part in ${BENCH:-dynamic bench}; do
  echo "== bench/caddy/$part.ts (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  TMPDIR="$WORK" BENCH_PIDFILE="$WORK/pids" npx tsx "$HERE/$part.ts" &
  HELPER_PID=$!
  wait "$HELPER_PID" || rc=$?
  HELPER_PID=""
  [[ $rc == 0 ]] || break
done
echo "bench/caddy: done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$rc"
