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
# Everything it starts (up to 4 Caddies, 2 controllers, 3 echo backends, wrk) is stopped and every temp
# dir removed on exit (trap), even on failure. Not part of `npm test`. Needs root only to apt-get
# install missing tools (caddy, wrk).
#
# Knobs (environment): WRK_DURATION (5s), WRK_ROUNDS (3), STATS (1 = also wrk a second controller's
#   config with per-host stats on, and the hand-written config with the same access log; 0 = skip),
#   SKIP_BUILD (1 = use dist/ as it is).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# Tools, build, and a work dir whose processes are all stopped on exit (bench/lib/setup.sh).
die() { printf 'bench/proxy: %s\n' "$*" >&2; exit 1; }
. "$ROOT/bench/lib/setup.sh"
bench_setup proxy
echo "bench/proxy: $BENCH_REV, $(bench_machine)"
rc=0
run_helper "$HERE/bench.ts" || rc=$?
echo "bench/proxy: done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$rc"
