#!/usr/bin/env bash
# Mail benchmark: how fast the relay accepts mail into its durable queue, next to Postfix's
# smtp-sink (accepts and throws away: no durability, no TLS, no AUTH) as the ceiling, same run,
# same client; how fast it delivers to a provider; what 1,000 idle connections cost. Loopback only.
#
#   bash bench/mail/run.sh
#
# Builds dist/, starts smtp-sink and `bin/dnsproxy mail serve` (free 127.0.0.1 ports, a temp data
# dir whose SQLite file gets the account, the provider = that smtp-sink in plain SMTP, and a
# catch-all rule, as the controller would write them), then ROUNDS times, interleaved:
#   - smtp-sink: MESSAGES messages over CONNS connections held open by one client process
#     (bench/mail/helper.mjs blast: one session per connection, one command at a time, no PIPELINING,
#     as nodemailer's pooled transport does), msg/s from all sessions ready to the last 250;
#   - relay: the same over STARTTLS + AUTH PLAIN on the submission port; a 250 means committed to
#     SQLite (WAL, synchronous=FULL); the relay delivers to the provider meanwhile (mail_workers,
#     default 4); then the time until all of them are delivered (end-to-end rate);
# then IDLE connections (each EHLO, STARTTLS, EHLO) held IDLE_HOLD s: errors, and the relay's RSS.
# Each measured part prints how much of the machine other processes used meanwhile ("other").
# Everything it starts is stopped and every temp dir removed on exit (trap), even on failure.
# Not part of `npm test`. Needs root only to apt-get install postfix (for smtp-sink).
#
# Knobs (environment): MESSAGES (10000), CONNS (50), ROUNDS (3), WARMUP (2000), IDLE (1000),
#   IDLE_HOLD (10), LOG_LEVEL (info: the relay's level, as supervisord runs it), WORKERS (unset: the
#   relay's default), QUIET_WAIT (60), QUIET_PCT (15), SKIP_BUILD (1 = use the existing dist/),
#   KEEP_LOGS (1 = print where the relay's log is and do not delete the temp dir),
#   REF (1 = also measure a bare smtp-server, the relay's SMTP library with STARTTLS + AUTH and no
#   storage: what Node and the library do on this box, a reference, not a ceiling; default 1),
#   PROFILE (1 = run the relay with V8's --cpu-prof and print where its CPU time went, its three
#   threads' profiles summed (time a thread waits inside a call, e.g. on an fsync, counts); the
#   profiler costs throughput, so those figures are not comparable).
# The relay's delivery workers run during the relay's accept phase, as they would in production.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MESSAGES=${MESSAGES:-10000}
CONNS=${CONNS:-50}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2000}
IDLE=${IDLE:-1000}
IDLE_HOLD=${IDLE_HOLD:-10}
LOG_LEVEL=${LOG_LEVEL:-info}
QUIET_WAIT=${QUIET_WAIT:-60}
QUIET_PCT=${QUIET_PCT:-15}
REF=${REF:-1}
# smtp-sink is in /usr/sbin on Debian; some builds keep it with Postfix's daemons.
export PATH="$PATH:/usr/sbin:/sbin:/usr/lib/postfix/sbin"

# The relay drains its queue writes when stopped: give it (and the rest) up to 15 s.
STOP_WAIT=15

# ---- tools ------------------------------------------------------------------
. "$ROOT/scripts/lib.sh"
# say, stop_pid, bg_wait, build_dist and the CPU accounting, shared with bench/dns.
. "$ROOT/bench/lib.sh"
die() { printf 'bench/mail: %s\n' "$*" >&2; exit 1; }
if ! command -v smtp-sink >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v debconf-set-selections >/dev/null 2>&1; then
  # Only smtp-sink is wanted: install Postfix unconfigured, so no mail system is set up or started.
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
fi
need_debs smtp-sink:postfix setsid:util-linux
need_node

# ---- cleanup ----------------------------------------------------------------
TMP=$(mktemp -d /tmp/dnsproxy-bench-mail.XXXXXX)
RELAY_PID=""
SINK_PID=""
REF_PID=""
CLIENT_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$BG_PID"
  stop_pid "$CLIENT_PID"
  stop_pid "$RELAY_PID"
  stop_pid "$SINK_PID"
  stop_pid "$REF_PID"
  ((rc == 0)) || tail_logs "$TMP/relay.log" "$TMP/sink.log" "$TMP/ref.log"
  if [[ ${KEEP_LOGS:-0} == 1 ]]; then echo "kept: $TMP (relay.log, sink.log, data/)"; else rm -rf "$TMP"; fi
  exit "$rc"
}
bench_traps

# ---- CPU accounting (bench/lib.sh): is someone else using the machine? -------
alive() {
  kill -0 "$RELAY_PID" 2>/dev/null || die "the relay (pid $RELAY_PID) exited: $(tail -n 2 "$TMP/relay.log" | cut -c1-300)"
  kill -0 "$SINK_PID" 2>/dev/null || die "smtp-sink (pid $SINK_PID) exited: $(tail -n 2 "$TMP/sink.log")"
  [[ -z $REF_PID ]] || kill -0 "$REF_PID" 2>/dev/null || die "the reference server (pid $REF_PID) exited: $(tail -n 2 "$TMP/ref.log")"
}
rss_kib() { alive; awk '/^VmRSS:/ {print $2}' "/proc/$RELAY_PID/status"; }
hwm_kib() { alive; awk '/^VmHWM:/ {print $2}' "/proc/$RELAY_PID/status"; }
H="$HERE/helper.mjs"
# jf JSON KEY…: the keys' values on one line (objects as JSON).
jf() { node -e 'const o = JSON.parse(process.argv[1]); console.log(process.argv.slice(2).map((k) => { const v = o[k] ?? ""; return typeof v === "object" ? JSON.stringify(v) : v; }).join(" "))' "$@"; }

OTHER_MAX=0
# measure WHO OUTFILE: one client blast against WHO (sink | relay | ref). Sets OTHER (% of all cores
# used by processes other than the three servers and the client), SERVER_CPU (WHO's CPU) and
# CLIENT_CPU, both in % of one core, over the blast.
measure() {
  local who=$1 out=$2 port mode ca="" pid
  case $who in
    sink) port=$SINK_PORT; mode=plain; pid=$SINK_PID ;;
    relay) port=$SUBMISSION_PORT; mode=relay; ca=$CA; pid=$RELAY_PID ;;
    ref) port=$REF_PORT; mode=relay; ca=$CA; pid=$REF_PID ;;
  esac
  wait_quiet
  local b0 t0 a0 w0 c0 b1 t1 a1 w1 c1
  times >"$TMP/times"
  b0=$(sys_proc_ticks); t0=$(sys_total_ticks); a0=$(pids_ticks $SERVERS); w0=$(pids_ticks "$pid"); c0=$(children_secs_of "$TMP/times")
  bg_wait node "$H" blast "$mode" "$port" "$CONNS" "$MESSAGES" $ca >"$out" 2>"$out.err" || die "client failed: $(tail -n 3 "$out.err")"
  times >"$TMP/times"
  b1=$(sys_proc_ticks); t1=$(sys_total_ticks); a1=$(pids_ticks $SERVERS); w1=$(pids_ticks "$pid"); c1=$(children_secs_of "$TMP/times")
  alive
  local wall_ticks=$(((t1 - t0) / NCPU))
  OTHER=$(awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v a=$((a1 - a0)) -v c0="$c0" -v c1="$c1" -v hz="$TICK" \
    'BEGIN {o = b - a - (c1 - c0) * hz; if (o < 0) o = 0; printf "%.0f", (t > 0 ? 100 * o / t : 0)}')
  ((OTHER > OTHER_MAX)) && OTHER_MAX=$OTHER
  SERVER_CPU=$(awk -v r=$((w1 - w0)) -v w="$wall_ticks" 'BEGIN {printf "%.0f", (w > 0 ? 100 * r / w : 0)}')
  CLIENT_CPU=$(awk -v c0="$c0" -v c1="$c1" -v w="$wall_ticks" -v hz="$TICK" 'BEGIN {printf "%.0f", (w > 0 ? 100 * (c1 - c0) * hz / w : 0)}')
  return 0
}

# ---- build, smtp-sink, relay --------------------------------------------------
cd "$ROOT"
build_dist

say "smtp-sink"
SINK_PORT=$(node "$H" freeport)
SINK_ARGS=(-4)
# smtp-sink refuses to run as root without a user to switch to after binding.
[[ $(id -u) -eq 0 ]] && SINK_ARGS+=(-u nobody)
# setsid: its own session, so a Ctrl-C aimed at this script's process group does not stop it mid-run.
setsid smtp-sink "${SINK_ARGS[@]}" "127.0.0.1:$SINK_PORT" 1024 >"$TMP/sink.log" 2>&1 &
SINK_PID=$!
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$SINK_PORT") 2>/dev/null && break; sleep 0.1; done
kill -0 "$SINK_PID" 2>/dev/null || die "smtp-sink exited: $(cat "$TMP/sink.log")"
echo "pid $SINK_PID, 127.0.0.1:$SINK_PORT (Postfix $(dpkg-query -W -f '${Version}' postfix 2>/dev/null || echo '?'))"

say "relay"
mkdir -p "$TMP/data"
node "$H" configure "$TMP/data" "$SINK_PORT"
SMTP_PORT=$(node "$H" freeport)
SUBMISSION_PORT=$(node "$H" freeport)
while [[ $SUBMISSION_PORT == "$SMTP_PORT" || $SUBMISSION_PORT == "$SINK_PORT" ]]; do SUBMISSION_PORT=$(node "$H" freeport); done
# Every message comes from one account and every connection from 127.0.0.1: exactly what the
# per-account message and per-address connection limits are there to stop, so they are off (0).
RELAY_ENV=(DNSPROXY_MAIL_HOSTNAME=relay.example.net DNSPROXY_LOG_LEVEL="$LOG_LEVEL" DNSPROXY_MAIL_MAX_CLIENTS=$((IDLE + CONNS + 100))
  DNSPROXY_MAIL_ACCOUNT_MESSAGES_PER_HOUR=0 DNSPROXY_MAIL_IP_CONNECTIONS_PER_MINUTE=0 DNSPROXY_MAIL_MAX_CLIENTS_PER_IP=0)
[[ -n ${WORKERS:-} ]] && RELAY_ENV+=(DNSPROXY_MAIL_WORKERS="$WORKERS")
# bin/dnsproxy directly, as supervisord runs it (its V8 flags apply). For the profile, node with the
# same flags (taken from the shebang) plus --cpu-prof, which NODE_OPTIONS does not accept.
RELAY_CMD=("$ROOT/bin/dnsproxy")
read -r -a V8_FLAGS <<<"$(head -n1 "$ROOT/bin/dnsproxy" | sed 's/^#!.* node //')"
# `mail serve` turns --optimize-for-size off at start (src/cli/mail.ts): the reference runs as the relay does.
REF_FLAGS=("${V8_FLAGS[@]}" --no-optimize-for-size)
if [[ ${PROFILE:-0} == 1 ]]; then
  RELAY_CMD=(node "${V8_FLAGS[@]}" --cpu-prof --cpu-prof-dir="$TMP/prof" "$ROOT/bin/dnsproxy")
fi
env "${RELAY_ENV[@]}" setsid "${RELAY_CMD[@]}" mail serve --data-dir "$TMP/data" --smtp-port "$SMTP_PORT" \
  --submission-port "$SUBMISSION_PORT" --listen-ip 127.0.0.1 >"$TMP/relay.log" 2>&1 &
RELAY_PID=$!
for _ in $(seq 200); do
  grep -q '"mail relay started"' "$TMP/relay.log" 2>/dev/null && break
  kill -0 "$RELAY_PID" 2>/dev/null || die "the relay exited before starting"
  sleep 0.1
done
grep -q '"mail relay started"' "$TMP/relay.log" || die "the relay did not start in 20 s"
CA="$TMP/data/mail/tls/cert.pem"
echo "pid $RELAY_PID, submission 127.0.0.1:$SUBMISSION_PORT; ${RELAY_ENV[*]} ${RELAY_CMD[*]}"
RSS_START=$(rss_kib)
echo "RSS after start: $(mib "$RSS_START") MiB"

if [[ $REF == 1 ]]; then
  say "reference: bare smtp-server (the relay's SMTP library), same certificate, STARTTLS + AUTH accepted at once, messages discarded"
  REF_PORT=$(node "$H" freeport)
  setsid node "${REF_FLAGS[@]}" "$H" ref "$REF_PORT" "$TMP/data/mail/tls" >"$TMP/ref.log" 2>&1 &
  REF_PID=$!
  for _ in $(seq 50); do grep -q listening "$TMP/ref.log" && break; sleep 0.1; done
  grep -q listening "$TMP/ref.log" || die "reference server: $(cat "$TMP/ref.log")"
  echo "pid $REF_PID, 127.0.0.1:$REF_PORT (node with the relay's V8 flags)"
fi
SERVERS="$RELAY_PID $SINK_PID $REF_PID"

# ---- warm-up ------------------------------------------------------------------
DELIVERED=0
say "warm-up: $WARMUP messages to each (not measured)"
node "$H" blast plain "$SINK_PORT" "$CONNS" "$WARMUP" >"$TMP/warm-sink.json"
node "$H" blast relay "$SUBMISSION_PORT" "$CONNS" "$WARMUP" "$CA" >"$TMP/warm-relay.json"
[[ $REF == 1 ]] && node "$H" blast relay "$REF_PORT" "$CONNS" "$WARMUP" "$CA" >"$TMP/warm-ref.json"
DELIVERED=$((DELIVERED + $(jf "$(cat "$TMP/warm-relay.json")" acked)))
node "$H" drain "$TMP/data" "$DELIVERED" "$(date +%s%3N)" 120 >"$TMP/warm-drain.json"
[[ $(jf "$(cat "$TMP/warm-drain.json")" timed_out) == false ]] || die "warm-up not delivered within 120 s: $(cat "$TMP/warm-drain.json")"
echo "sink $(jf "$(cat "$TMP/warm-sink.json")" msgs_per_s) msg/s, relay $(jf "$(cat "$TMP/warm-relay.json")" msgs_per_s) msg/s; delivered"
RSS_WARM=$(rss_kib)

# ---- rounds -------------------------------------------------------------------
declare -a R_SINK R_RELAY R_RATIO R_E2E R_REF R_RREF
say "$ROUNDS rounds: $MESSAGES messages over $CONNS connections, smtp-sink then relay$([[ $REF == 1 ]] && echo ' then the reference')"
printf '%-5s %-6s %9s %9s %9s %8s %7s   %s\n' round who "msg/s" "p50 ms" "p99 ms" errors other "CPU % of one core: server / client"
for r in $(seq "$ROUNDS"); do
  measure sink "$TMP/sink-$r.json"
  read -r s_rate s_p50 s_p99 s_err s_acked <<<"$(jf "$(cat "$TMP/sink-$r.json")" msgs_per_s p50_ms p99_ms errors acked)"
  ((s_err == 0 && s_acked == MESSAGES)) || die "smtp-sink round $r: $(cat "$TMP/sink-$r.json")"
  printf '%-5s %-6s %9s %9s %9s %8s %6s%%   %s / %s\n' "$r" sink "$s_rate" "$s_p50" "$s_p99" "$s_err" "$OTHER" "$SERVER_CPU" "$CLIENT_CPU"
  R_SINK+=("$s_rate")

  measure relay "$TMP/relay-$r.json"
  read -r a_rate a_p50 a_p99 a_err a_acked a_start <<<"$(jf "$(cat "$TMP/relay-$r.json")" msgs_per_s p50_ms p99_ms errors acked start_epoch_ms)"
  ((a_err == 0 && a_acked == MESSAGES)) || die "relay round $r: $(cat "$TMP/relay-$r.json")"
  printf '%-5s %-6s %9s %9s %9s %8s %6s%%   %s / %s\n' "$r" relay "$a_rate" "$a_p50" "$a_p99" "$a_err" "$OTHER" "$SERVER_CPU" "$CLIENT_CPU"
  R_RELAY+=("$a_rate")
  R_RATIO+=("$(awk -v a="$a_rate" -v b="$s_rate" 'BEGIN {printf "%.3f", b ? a / b : 0}')")

  # Delivery: counted from the first submission of the round until the queue has delivered all of them.
  before=$DELIVERED
  DELIVERED=$((DELIVERED + a_acked))
  node "$H" drain "$TMP/data" "$DELIVERED" "$a_start" 300 >"$TMP/drain-$r.json"
  read -r d_ms d_out d_first <<<"$(jf "$(cat "$TMP/drain-$r.json")" ms timed_out delivered_at_start)"
  [[ $d_out == false ]] || die "round $r: not all delivered within 300 s: $(cat "$TMP/drain-$r.json")"
  e2e=$(awk -v n="$a_acked" -v ms="$d_ms" 'BEGIN {printf "%.0f", n / ms * 1000}')
  R_E2E+=("$e2e")
  printf '%-5s %-6s %9s msg/s end to end: %s messages submitted and delivered in %s ms (accepting took %s ms, %s delivered by then)\n' \
    "$r" deliver "$e2e" "$a_acked" "$d_ms" "$(jf "$(cat "$TMP/relay-$r.json")" ms)" "$((d_first - before))"

  if [[ $REF == 1 ]]; then
    measure ref "$TMP/ref-$r.json"
    read -r f_rate f_p50 f_p99 f_err f_acked <<<"$(jf "$(cat "$TMP/ref-$r.json")" msgs_per_s p50_ms p99_ms errors acked)"
    ((f_err == 0 && f_acked == MESSAGES)) || die "reference round $r: $(cat "$TMP/ref-$r.json")"
    printf '%-5s %-6s %9s %9s %9s %8s %6s%%   %s / %s\n' "$r" ref "$f_rate" "$f_p50" "$f_p99" "$f_err" "$OTHER" "$SERVER_CPU" "$CLIENT_CPU"
    R_REF+=("$f_rate")
    R_RREF+=("$(awk -v a="$a_rate" -v b="$f_rate" 'BEGIN {printf "%.3f", b ? a / b : 0}')")
  fi
done
RSS_AFTER=$(rss_kib)

# ---- idle connections ---------------------------------------------------------
say "$IDLE idle connections (EHLO, STARTTLS, EHLO), held ${IDLE_HOLD} s"
wait_quiet
RSS_IDLE0=$(rss_kib)
node "$H" idle "$SUBMISSION_PORT" "$IDLE" "$IDLE_HOLD" "$CA" >"$TMP/idle.out" 2>"$TMP/idle.err" &
CLIENT_PID=$!
for _ in $(seq 600); do grep -q '^holding' "$TMP/idle.out" 2>/dev/null && break; kill -0 "$CLIENT_PID" 2>/dev/null || break; sleep 0.1; done
grep -q '^holding' "$TMP/idle.out" || die "idle client: $(cat "$TMP/idle.out" "$TMP/idle.err")"
sleep 2
RSS_IDLE=$(rss_kib)
wait "$CLIENT_PID" || die "idle client failed: $(tail -n 3 "$TMP/idle.err")"
CLIENT_PID=""
IDLE_JSON=$(tail -n1 "$TMP/idle.out")
echo "$IDLE_JSON"
read -r i_open i_alive i_err <<<"$(jf "$IDLE_JSON" opened alive_after_hold errors)"
HWM=$(hwm_kib)

# ---- summary ------------------------------------------------------------------
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v >= t) ? "ok" : "MISSED"}'; }
row() { printf '%-44s %s\n' "$1" "$2"; }
S=$(median "${R_SINK[@]}"); A=$(median "${R_RELAY[@]}"); Q=$(median "${R_RATIO[@]}"); E=$(median "${R_E2E[@]}")
say "summary"
echo "$NCPU cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), loopback; node $(node --version); Postfix smtp-sink $(dpkg-query -W -f '${Version}' postfix 2>/dev/null || echo '?')"
echo "$CONNS connections, $MESSAGES messages of ~1.3 KiB per round, $ROUNDS rounds (medians; each round above); relay log level $LOG_LEVEL"
row "smtp-sink accept (msg/s)" "$S   (${R_SINK[*]})"
row "relay accept, durable (msg/s)" "$A   (${R_RELAY[*]})   target >= 3000: $(verdict "$A" 3000)"
row "ratio relay / smtp-sink" "$Q   (${R_RATIO[*]})   target >= 0.2: $(verdict "$Q" 0.2)"
row "relay end to end, submit -> delivered (msg/s)" "$E   (${R_E2E[*]})"
if [[ $REF == 1 ]]; then
  row "reference: bare smtp-server, STARTTLS+AUTH (msg/s)" "$(median "${R_REF[@]}")   (${R_REF[*]})"
  row "ratio relay / bare smtp-server" "$(median "${R_RREF[@]}")   (${R_RREF[*]})"
fi
row "idle connections" "$i_open of $IDLE open, $i_alive answered NOOP after ${IDLE_HOLD} s, $i_err errors"
row "relay RSS (MiB)" "start $(mib "$RSS_START"), after warm-up $(mib "$RSS_WARM"), after rounds $(mib "$RSS_AFTER"), before idle $(mib "$RSS_IDLE0"), with $i_open idle $(mib "$RSS_IDLE"), peak $(mib "$HWM")"
if ((OTHER_MAX > 10)); then
  echo "WARNING: other processes used up to $OTHER_MAX% of the machine during a measured part; the rows with other > 10% are disturbed. Re-run on a quiet machine."
fi
((i_open == IDLE && i_alive == IDLE && i_err == 0)) || die "idle connections: $IDLE_JSON"
if [[ ${PROFILE:-0} == 1 ]]; then
  say "where the relay's CPU went (whole run, every thread; V8 profiles written at exit)"
  stop_pid "$RELAY_PID"
  RELAY_PID=""
  node "$H" profile "$TMP/prof"
fi
