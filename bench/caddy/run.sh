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

# Tools, build, and a work dir whose processes are all stopped on exit (bench/lib/setup.sh).
die() { printf 'bench/caddy: %s\n' "$*" >&2; exit 1; }
. "$ROOT/bench/lib/setup.sh"
bench_setup caddy
echo "bench/caddy: $(bench_machine)"
rc=0
for part in ${BENCH:-dynamic bench}; do
  echo "== bench/caddy/$part.ts (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  run_helper "$HERE/$part.ts" || rc=$?
  [[ $rc == 0 ]] || break
done
echo "bench/caddy: done (load average $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$rc"
