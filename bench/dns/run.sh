#!/usr/bin/env bash
# DNS benchmark: our controller's authoritative DNS vs NSD on the same 10,000-name zone, loopback only.
#
#   bash bench/dns/run.sh
#
# Builds dist/, starts `bin/dnsproxy serve` on free 127.0.0.1 ports with a temp data dir, imports a
# generated zone for home.arpa., exports it, serves that export with NSD on another free port, then:
#   - RSS of the controller (VmRSS) with the zone loaded, after a warm-up pass and after the runs;
#   - max throughput (dnsperf -l DURATION) against both, same dnsperf settings, QPS ratio ours/NSD
#     (and, for reference, against a bare node:dgram echo server: Node's UDP path with no DNS work);
#   - latency at a fixed rate (dnsperf -Q RATE -v): p50/p99/max from the per-query lines, both servers.
# Everything it starts is stopped and every temp dir removed on exit (trap), even on failure.
# Not part of `npm test`. Needs root only to apt-get install missing tools.
#
# Knobs (environment): DURATION (10), RATE (10000), NAMES (10000),
#   DNSPERF_ARGS (dnsperf load settings for BOTH servers, default "-T 1 -c 8 -q 500"),
#   NSD_SERVERS (NSD server-count, default 1: one serving process, like our one event loop),
#   PIN (1 = pin each server to CPU 0 and dnsperf to CPU 1 with taskset; default 0),
#   FLOOR (1 = also measure a bare node:dgram echo server as a reference; default 1),
#   QUIET_WAIT (120: seconds to wait before each measured run for other work to stop),
#   QUIET_PCT (10: "quiet" means the machine is at most this % busy), SKIP_BUILD (1 = use the existing dist/).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DURATION=${DURATION:-10}
RATE=${RATE:-10000}
NAMES=${NAMES:-10000}
DNSPERF_ARGS=${DNSPERF_ARGS:--T 1 -c 8 -q 500}
NSD_SERVERS=${NSD_SERVERS:-1}
PIN=${PIN:-0}
FLOOR=${FLOOR:-1}
QUIET_WAIT=${QUIET_WAIT:-120}
QUIET_PCT=${QUIET_PCT:-10}
# At least 24 characters: dnsproxy serve refuses a shorter DNSPROXY_ADMIN_TOKEN.
TOKEN="bench-admin-token-$(od -An -N12 -tx1 /dev/urandom | tr -d " \n")"
export PATH="$PATH:/usr/sbin:/sbin"

# ---- tools ------------------------------------------------------------------
# Installs what is missing (apt-get as root; otherwise says what to install), as the README commands do.
. "$ROOT/scripts/lib.sh"
# say, stop_pid, bg_wait, build_dist and the CPU accounting, shared with bench/mail.
. "$ROOT/bench/lib.sh"
die() { printf 'bench/dns: %s\n' "$*" >&2; exit 1; }
need_debs dnsperf:dnsperf nsd:nsd dig:bind9-dnsutils curl:curl taskset:util-linux setsid:util-linux pgrep:procps ps:procps
need_node
command -v named-checkzone >/dev/null || echo "note: named-checkzone not found (apt-get install bind9utils); skipping the export check"

# ---- cleanup ----------------------------------------------------------------
TMP=$(mktemp -d /tmp/dnsproxy-bench.XXXXXX)
CTL_PID=""
NSD_PID=""
ECHO_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$BG_PID"
  stop_pid "$ECHO_PID"
  stop_pid "$CTL_PID"
  # NSD runs in its own session (setsid): its process group is the main process and the
  # xfrd/server children it forks, so the whole group goes.
  stop_pid "$NSD_PID" group
  [[ -s "$TMP/nsd/nsd.pid" ]] && stop_pid "$(cat "$TMP/nsd/nsd.pid")"
  ((rc == 0)) || tail_logs "$TMP/controller.log" "$TMP/nsd/nsd.log"
  rm -rf "$TMP"
  exit "$rc"
}
bench_traps

SERVER_CPU=()
PERF_CPU=()
if [[ $PIN == 1 ]]; then SERVER_CPU=(taskset -c 0); PERF_CPU=(taskset -c 1); fi

alive() { # who: die with the server's last log lines when it is gone
  case $1 in
    ours) kill -0 "$CTL_PID" 2>/dev/null || die "our controller (pid $CTL_PID) exited during the benchmark (killed from outside?): $(tail -n 2 "$TMP/controller.log" | cut -c1-300)" ;;
    nsd) kill -0 "$NSD_PID" 2>/dev/null || die "nsd (pid $NSD_PID) exited during the benchmark: $(tail -n 2 "$TMP/nsd/nsd.log")" ;;
  esac
}
rss_kib() { alive ours; awk '/^VmRSS:/ {print $2}' "/proc/$CTL_PID/status"; }
hwm_kib() { alive ours; awk '/^VmHWM:/ {print $2}' "/proc/$CTL_PID/status"; }
# ---- CPU accounting (bench/lib.sh): is someone else using the machine? -------
# Other work on these 2 cores (builds, other benchmarks) moves the figures a lot. Before each
# measured run we wait (up to QUIET_WAIT s) for the machine to be idle, and during the run we
# count the CPU used by everything except the server under test and dnsperf ("other %").
server_pids() { # who → pids of that server's processes
  case $1 in
    ours) echo "$CTL_PID" ;;
    nsd) pgrep -g "$NSD_PID" | tr '\n' ' ' ;;
    echo) echo "$ECHO_PID" ;;
  esac
}
OTHER_MAX=0
# measure WHO OUTFILE DNSPERF-ARGS…: one measured dnsperf run against WHO; sets OTHER (other work, % of all cores).
measure() {
  local who=$1 out=$2 port
  shift 2
  case $who in ours) port=$OURS_PORT ;; nsd) port=$NSD_PORT ;; echo) port=$ECHO_PORT ;; esac
  local pids
  read -r -a pids <<<"$(server_pids "$who")"
  wait_quiet
  local b0 t0 s0 c0 b1 t1 s1 c1
  times >"$TMP/times"
  b0=$(sys_proc_ticks); t0=$(sys_total_ticks); s0=$(pids_ticks "${pids[@]}"); c0=$(children_secs_of "$TMP/times")
  bg_wait "${PERF_CPU[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$TMP/queries" "$@" >"$out" 2>&1 || die "dnsperf failed: $(tail -n 3 "$out")"
  times >"$TMP/times"
  b1=$(sys_proc_ticks); t1=$(sys_total_ticks); s1=$(pids_ticks "${pids[@]}"); c1=$(children_secs_of "$TMP/times")
  alive "$who"
  OTHER=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v s=$((s1 - s0)) -v c0="$c0" -v c1="$c1" -v hz="$TICK" \
    'BEGIN {o = b - s - (c1 - c0) * hz; if (o < 0) o = 0; printf "%.0f", (t > 0 ? 100 * o / t : 0)}')
  ((OTHER > OTHER_MAX)) && OTHER_MAX=$OTHER
  return 0
}
H="$HERE/helper.mjs"

# ---- build and start the controller -----------------------------------------
cd "$ROOT"
build_dist

say "controller"
CTL_PORT_API=$(node "$H" freeport)
CTL_PORT_DNS=$(node "$H" freeport)
[[ $CTL_PORT_API != "$CTL_PORT_DNS" ]] || CTL_PORT_DNS=$(node "$H" freeport)
# The controller also runs the Caddy reconciler, which pushes its config to the Caddy admin API
# (default 127.0.0.1:2019). Point it at a free port nobody listens on, so the benchmark never
# touches a Caddy someone else is running; the reconciler then just retries in the background.
CADDY_ADMIN_PORT=$(node "$H" freeport)
# setsid: its own session, so a Ctrl-C or a signal aimed at this script's process group does not
# stop it mid-run; the cleanup trap stops it by pid.
DNSPROXY_ADMIN_TOKEN=$TOKEN DNSPROXY_LOG_LEVEL=info DNSPROXY_NODE_IP=192.0.2.10 \
  setsid "${SERVER_CPU[@]}" "$ROOT/bin/dnsproxy" serve --data-dir "$TMP/data" \
  --dns-port "$CTL_PORT_DNS" --api-port "$CTL_PORT_API" --listen-ip 127.0.0.1 \
  --caddy-admin "127.0.0.1:$CADDY_ADMIN_PORT" >"$TMP/controller.log" 2>&1 &
CTL_PID=$!
for _ in $(seq 200); do
  grep -q '"controller started"' "$TMP/controller.log" 2>/dev/null && break
  kill -0 "$CTL_PID" 2>/dev/null || die "controller exited before starting"
  sleep 0.1
done
STARTED=$(grep -m1 '"controller started"' "$TMP/controller.log") || die "controller did not start in 20 s"
API=$(node "$H" field "$STARTED" api)
OURS_PORT=$(node "$H" field "$STARTED" dns | sed 's/.*://')
echo "pid $CTL_PID, api $API, dns 127.0.0.1:$OURS_PORT"
RSS_EMPTY=$(rss_kib)
echo "RSS empty: $(mib "$RSS_EMPTY") MiB"

say "zone: $NAMES names, import + export"
node "$H" zone "$NAMES" "$TMP/gen.zone"
curl -fsS -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: text/plain' \
  --data-binary @"$TMP/gen.zone" "http://$API/api/v1/zones/home.arpa/import?mode=replace" >"$TMP/import.json" ||
  die "import failed: $(cat "$TMP/import.json" 2>/dev/null)"
echo "import: $(cat "$TMP/import.json")"
mkdir -p "$TMP/nsd"
curl -fsS -H "Authorization: Bearer $TOKEN" "http://$API/api/v1/zones/home.arpa/export" >"$TMP/nsd/home.arpa.zone" || die "export failed"
echo "export: $(grep -cv '^;' "$TMP/nsd/home.arpa.zone") lines"
if command -v named-checkzone >/dev/null; then named-checkzone -q home.arpa "$TMP/nsd/home.arpa.zone" || die "named-checkzone rejects the export"; fi
node "$H" queries "$TMP/nsd/home.arpa.zone" "$TMP/queries"
sleep 1
RSS_LOADED=$(rss_kib)
echo "RSS with the zone loaded: $(mib "$RSS_LOADED") MiB"

# ---- NSD --------------------------------------------------------------------
say "nsd"
NSD_PORT=$(node "$H" freeport)
while [[ $NSD_PORT == "$OURS_PORT" || $NSD_PORT == "$CTL_PORT_API" ]]; do NSD_PORT=$(node "$H" freeport); done
N="$TMP/nsd"
cat >"$N/nsd.conf" <<EOF
# Minimal NSD config: everything in this temp dir, no privilege drop, no chroot, no database file.
server:
    ip-address: 127.0.0.1@$NSD_PORT
    port: $NSD_PORT
    do-ip4: yes
    do-ip6: no
    server-count: $NSD_SERVERS
    username: ""
    chroot: ""
    zonesdir: "$N"
    database: ""
    zonelistfile: "$N/zone.list"
    xfrdfile: "$N/xfrd.state"
    xfrdir: "$N"
    pidfile: "$N/nsd.pid"
    logfile: "$N/nsd.log"
    zonefiles-write: 0
    verbosity: 1
    hide-version: yes
    # Response rate limiting is on by default in Debian's build (200 qps per source); a load test
    # from one address is exactly what it blocks, so turn it off.
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "home.arpa."
    zonefile: "$N/home.arpa.zone"
EOF
nsd-checkconf "$N/nsd.conf" || die "nsd-checkconf rejects $N/nsd.conf"
setsid "${SERVER_CPU[@]}" nsd -d -c "$N/nsd.conf" >>"$N/nsd.log" 2>&1 &
NSD_PID=$!
for _ in $(seq 100); do
  dig @127.0.0.1 -p "$NSD_PORT" +time=1 +tries=1 +short home.arpa SOA 2>/dev/null | grep -q . && break
  kill -0 "$NSD_PID" 2>/dev/null || die "nsd exited: $(tail -n 5 "$N/nsd.log")"
  sleep 0.1
done
dig @127.0.0.1 -p "$NSD_PORT" +time=1 +tries=1 +short home.arpa SOA | grep -q . || die "nsd does not answer on $NSD_PORT"
# setsid made NSD a session and process-group leader (pid = pgid), so cleanup can stop its
# xfrd/server children with it; should setsid have forked instead, use the pid NSD wrote.
if [[ -s "$N/nsd.pid" ]] && [[ $(ps -o pgid= -p "$(cat "$N/nsd.pid")" | tr -d ' ') == "$(cat "$N/nsd.pid")" ]]; then NSD_PID=$(cat "$N/nsd.pid"); fi
echo "pid $NSD_PID, dns 127.0.0.1:$NSD_PORT ($(nsd -v 2>&1 | head -n1))"

# ---- same answers? ------------------------------------------------------------
say "spot check: same answers from both (200 names from the query file)"
awk 'NR % 500 == 1' "$TMP/queries" | head -n 200 >"$TMP/sample"
diffs=0
while read -r name type; do
  a=$(dig @127.0.0.1 -p "$OURS_PORT" +time=2 +tries=1 +noall +answer +comments "$name" "$type" | grep -E 'status:|IN' | sed -E 's/, id: [0-9]+//; s/;.*(status: [A-Z]+).*/\1/' | sort)
  b=$(dig @127.0.0.1 -p "$NSD_PORT" +time=2 +tries=1 +noall +answer +comments "$name" "$type" | grep -E 'status:|IN' | sed -E 's/, id: [0-9]+//; s/;.*(status: [A-Z]+).*/\1/' | sort)
  if [[ $a != "$b" ]]; then
    diffs=$((diffs + 1))
    ((diffs <= 3)) && printf 'differs: %s %s\n  ours: %s\n  nsd:  %s\n' "$name" "$type" "$a" "$b"
  fi
done <"$TMP/sample"
echo "$(wc -l <"$TMP/sample") queries, $diffs with different rcode/answer"

# ---- runs ---------------------------------------------------------------------
# dnsperf prints "Queries per second:   N", "Queries lost: N (x%)".
qps_of() { awk '/Queries per second:/ {printf "%.0f", $4}' "$1"; }
lost_of() { awk '/Queries lost:/ {print $3}' "$1"; }
rcodes_of() { sed -n 's/^ *Response codes: *//p' "$1"; }

say "a few thousand queries (the first 5,000 lines of the query file, 2,000 QPS), then RSS"
head -n 5000 "$TMP/queries" >"$TMP/queries-5k"
# shellcheck disable=SC2086
bg_wait "${PERF_CPU[@]}" dnsperf -s 127.0.0.1 -p "$OURS_PORT" -d "$TMP/queries-5k" -n 1 -Q 2000 $DNSPERF_ARGS >"$TMP/5k.txt" 2>&1 || die "dnsperf failed: $(tail -n 3 "$TMP/5k.txt")"
printf 'ours %s queries lost %s; %s\n' "$(awk '/Queries sent:/ {print $3}' "$TMP/5k.txt")" "$(lost_of "$TMP/5k.txt")" "$(rcodes_of "$TMP/5k.txt")"
sleep 1
RSS_5K=$(rss_kib)
echo "RSS after 5,000 queries: $(mib "$RSS_5K") MiB"

say "warm-up: one pass through the query file (100,000 queries) at max rate, both servers"
for who in ours nsd; do
  port=$OURS_PORT; [[ $who == nsd ]] && port=$NSD_PORT
  # shellcheck disable=SC2086
  bg_wait "${PERF_CPU[@]}" dnsperf -s 127.0.0.1 -p "$port" -d "$TMP/queries" -n 1 $DNSPERF_ARGS >"$TMP/warm-$who.txt" 2>&1 || die "dnsperf failed: $(tail -n 3 "$TMP/warm-$who.txt")"
  printf '%-4s %s queries lost %s; %s\n' "$who" "$(awk '/Queries sent:/ {print $3}' "$TMP/warm-$who.txt")" "$(lost_of "$TMP/warm-$who.txt")" "$(rcodes_of "$TMP/warm-$who.txt")"
done
RSS_WARM=$(rss_kib)
echo "RSS after the warm-up pass: $(mib "$RSS_WARM") MiB"

declare -A QPS LOST OTH P50 P99 PMAX LLOST LQPS
say "max throughput: dnsperf -l $DURATION $DNSPERF_ARGS"
for who in ours nsd; do
  # shellcheck disable=SC2086
  measure "$who" "$TMP/max-$who.txt" -l "$DURATION" $DNSPERF_ARGS
  QPS[$who]=$(qps_of "$TMP/max-$who.txt"); LOST[$who]=$(lost_of "$TMP/max-$who.txt"); OTH[$who]=$OTHER
  printf '%-4s %8s QPS, lost %s; %s (other work: %s%%)\n' "$who" "${QPS[$who]}" "${LOST[$who]}" "$(rcodes_of "$TMP/max-$who.txt")" "$OTHER"
done
RATIO=$(awk -v a="${QPS[ours]}" -v b="${QPS[nsd]}" 'BEGIN {printf "%.2f", b ? a / b : 0}')
echo "ratio ours/NSD: $RATIO"
RSS_MAX=$(rss_kib)

if [[ $FLOOR == 1 ]]; then
  say "reference: bare node:dgram echo server (no parsing, no lookup), same dnsperf settings"
  ECHO_PORT=$(node "$H" freeport)
  "${SERVER_CPU[@]}" node "$H" echo "$ECHO_PORT" >"$TMP/echo.log" 2>&1 &
  ECHO_PID=$!
  for _ in $(seq 50); do grep -q listening "$TMP/echo.log" && break; sleep 0.1; done
  # shellcheck disable=SC2086
  measure echo "$TMP/max-echo.txt" -l "$DURATION" $DNSPERF_ARGS
  stop_pid "$ECHO_PID"
  ECHO_PID=""
  QPS[echo]=$(qps_of "$TMP/max-echo.txt"); OTH[echo]=$OTHER
  printf 'echo %8s QPS, lost %s (other work: %s%%); ours is %s of it\n' "${QPS[echo]}" "$(lost_of "$TMP/max-echo.txt")" "$OTHER" \
    "$(awk -v a="${QPS[ours]}" -v b="${QPS[echo]}" 'BEGIN {printf "%.2f", a / b}')"
fi

say "latency at $RATE QPS: dnsperf -Q $RATE -l $DURATION -v"
for who in ours nsd; do
  # shellcheck disable=SC2086
  measure "$who" "$TMP/lat-$who.txt" -l "$DURATION" -Q "$RATE" $DNSPERF_ARGS -v
  read -r p50 p99 pmax _ _ <<<"$(node "$H" latency "$TMP/lat-$who.txt")"
  P50[$who]=$p50; P99[$who]=$p99; PMAX[$who]=$pmax; LLOST[$who]=$(lost_of "$TMP/lat-$who.txt"); LQPS[$who]=$(qps_of "$TMP/lat-$who.txt"); OTH[lat-$who]=$OTHER
  printf '%-4s %s QPS achieved, lost %s: p50 %s ms, p99 %s ms, max %s ms (other work: %s%%)\n' "$who" "${LQPS[$who]}" "${LLOST[$who]}" "$p50" "$p99" "$pmax" "$OTHER"
done
RSS_END=$(rss_kib)
HWM_END=$(hwm_kib)

# ---- summary ------------------------------------------------------------------
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN {ok = (op == ">=") ? v >= t : v < t; print ok ? "ok" : "MISSED"}'; }
row() { printf '%-36s %12s %12s   %s\n' "$@"; }
RSS_MIB=$(mib "$RSS_5K")
say "summary"
echo "$NCPU cores, loopback; node $(node --version); dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}'); $(nsd -v 2>&1 | head -n1 | sed 's/^NSD version/nsd/')"
echo "dnsperf $DNSPERF_ARGS (same for both); NSD server-count $NSD_SERVERS; pinned: $([[ $PIN == 1 ]] && echo 'servers CPU 0, dnsperf CPU 1' || echo no)"
row "" "ours" "NSD" "target"
row "max QPS (-l $DURATION)" "${QPS[ours]}" "${QPS[nsd]}" ""
row "QPS ratio ours/NSD" "$RATIO" "" ">= 0.4: $(verdict "$RATIO" 0.4 '>=')"
row "lost queries at max QPS" "${LOST[ours]}" "${LOST[nsd]}" ""
[[ -n ${QPS[echo]:-} ]] && row "bare node:dgram echo QPS (reference)" "${QPS[echo]}" "" "ours/echo $(awk -v a="${QPS[ours]}" -v b="${QPS[echo]}" 'BEGIN {printf "%.2f", a / b}')"
row "p50 at $RATE QPS (ms)" "${P50[ours]}" "${P50[nsd]}" ""
row "p99 at $RATE QPS (ms)" "${P99[ours]}" "${P99[nsd]}" "< 1 ms: $(verdict "${P99[ours]}" 1 '<')"
row "max at $RATE QPS (ms)" "${PMAX[ours]}" "${PMAX[nsd]}" ""
row "lost at $RATE QPS" "${LLOST[ours]}" "${LLOST[nsd]}" ""
row "RSS empty (MiB)" "$(mib "$RSS_EMPTY")" "" ""
row "RSS, $NAMES names loaded (MiB)" "$(mib "$RSS_LOADED")" "" ""
row "RSS after 5,000 queries (MiB)" "$RSS_MIB" "" "< 100 MiB: $(verdict "$RSS_MIB" 100 '<')"
row "RSS after 100k-query warm-up (MiB)" "$(mib "$RSS_WARM")" "" ""
row "RSS after max-QPS run (MiB)" "$(mib "$RSS_MAX")" "" ""
row "RSS at end / peak (MiB)" "$(mib "$RSS_END") / $(mib "$HWM_END")" "" ""
row "other work during max / latency runs" "${OTH[ours]}% / ${OTH[lat-ours]}%" "${OTH[nsd]}% / ${OTH[lat-nsd]}%" "of all cores"
if ((OTHER_MAX > 10)); then
  echo "WARNING: other processes used up to $OTHER_MAX% of the machine during a measured run; these figures are disturbed. Re-run on a quiet machine."
fi
