# Shared by the benchmarks (bench/dns, bench/mail): their process handling and build step, and
# whether someone else is using the machine.
# Source it after setting QUIET_WAIT and QUIET_PCT (and STOP_WAIT, if not 5 s).

say() { printf '\n== %s\n' "$*"; }

# stop_pid PID [group]: TERM (with "group": its whole process group), wait up to STOP_WAIT s
# (default 5), then KILL; a PID that is empty or gone is left alone.
stop_pid() {
  local pid=$1 target=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  [[ ${2:-} == group ]] && target=-$pid
  kill -TERM -- "$target" 2>/dev/null || true
  for _ in $(seq $((${STOP_WAIT:-5} * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "$target" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
}

# bench_traps: the caller's `cleanup` on exit; INT and TERM exit at once (130, 143) through it.
bench_traps() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# tail_logs FILE…: the last 15 lines (300 characters each) of every non-empty FILE, on stderr.
tail_logs() {
  local f
  for f in "$@"; do
    [[ -s $f ]] && { echo "--- last lines of $f" >&2; tail -n 15 "$f" | cut -c1-300 >&2; }
  done
  return 0
}

# bg_wait CMD…: runs CMD in the background and waits for it, so INT/TERM reach the trap at once;
# BG_PID is its pid meanwhile (the caller's cleanup stops it).
BG_PID=""
bg_wait() {
  "$@" &
  BG_PID=$!
  local rc=0
  wait "$BG_PID" || rc=$?
  BG_PID=""
  return "$rc"
}

# build_dist: node_modules for this Node, then dist/ unless SKIP_BUILD=1 (scripts/lib.sh sourced; run in $ROOT).
build_dist() {
  # Installs node_modules when missing or built for another Node ABI (scripts/lib.sh).
  need_modules
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    say "build"
    npm run build --silent
  fi
}

# ---- is someone else using the machine? ----------------------------------------
# Other work on these 2 cores moves the figures a lot. Before each measured run a benchmark waits
# (wait_quiet: up to QUIET_WAIT s) for the machine to be at most QUIET_PCT % busy, and during the
# run it counts the CPU used by everything except what it measures ("other").
TICK=$(getconf CLK_TCK)
NCPU=$(nproc)
sys_busy_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9}' /proc/stat; }
# user+nice+system only: interrupt/softirq time (loopback packet delivery) belongs to no process,
# so it is left out of the "other work" estimate instead of being blamed on someone else.
sys_proc_ticks() { awk '/^cpu / {print $2+$3+$4}' /proc/stat; }
sys_total_ticks() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
pids_ticks() { # utime+stime of the given pids (all their threads)
  local t=0 p v
  # Fields after "(comm)": NSD names its processes "nsd: server 1", so split after the last ')'.
  for p in "$@"; do v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') && [[ -n $v ]] && t=$((t + v)); done
  echo "$t"
}
children_secs_of() { # user+sys of this shell's reaped children, from `times` output (run `times` in this shell, not in $(…))
  tail -n1 "$1" | awk '{s = 0; for (i = 1; i <= NF; i++) {split($i, a, "m"); s += a[1] * 60 + a[2]}; printf "%.3f", s}'
}
busy_pct() { # whole machine, % of all cores, over one second
  local b0 t0 b1 t1
  b0=$(sys_busy_ticks); t0=$(sys_total_ticks); sleep 1; b1=$(sys_busy_ticks); t1=$(sys_total_ticks)
  echo $(((t1 - t0) > 0 ? 100 * (b1 - b0) / (t1 - t0) : 0))
}
wait_quiet() {
  local p waited=0
  while p=$(busy_pct); ((p > QUIET_PCT && waited < QUIET_WAIT)); do
    ((waited == 0)) && printf '(machine busy: %s%% of all cores; waiting up to %ss for other work to finish)\n' "$p" "$QUIET_WAIT"
    waited=$((waited + 1))
  done
  ((p > QUIET_PCT)) && printf '(still %s%% busy after %ss; measuring anyway, see "other")\n' "$p" "$QUIET_WAIT"
  return 0
}
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
