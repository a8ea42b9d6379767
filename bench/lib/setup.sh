# Shared by bench/caddy/run.sh and bench/proxy/run.sh: the tools (caddy, wrk, Node, node_modules,
# dist/ unless SKIP_BUILD=1), a work dir for every temp dir (TMPDIR) and PID (BENCH_PIDFILE) the
# TypeScript helper starts, and a cleanup that stops the helper and kills whatever it left running.
# Usage (ROOT set, `die` defined): . "$ROOT/bench/lib/setup.sh"; bench_setup <name>; then
# run_helper <script.ts> for each part.
bench_setup() {
  . "$ROOT/scripts/lib.sh"
  # stop_pid and bg_wait (the helper runs in the background so a signal reaches the trap at once).
  . "$ROOT/bench/lib.sh"
  need_debs caddy:caddy wrk:wrk
  need_node
  cd "$ROOT"
  # Installs node_modules when missing or built for another Node ABI (scripts/lib.sh).
  need_modules
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    npm run -s build || die "npm run build failed"
  fi
  WORK=$(mktemp -d "/tmp/dnsproxy-bench-$1.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  BENCH_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$ROOT" status --porcelain -- src 2>/dev/null | grep -q . && BENCH_REV="$BENCH_REV + uncommitted src/ changes (dist/ built from the working tree)"
  export BENCH_REV
}

bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  STOP_WAIT=10 stop_pid "$BG_PID"
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

# Runs one TypeScript helper in the background (so a signal reaches bench_cleanup), returns its status.
run_helper() {
  TMPDIR="$WORK" BENCH_PIDFILE="$WORK/pids" bg_wait npx tsx "$1"
}

# One line naming the machine and the tools' versions.
bench_machine() {
  echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(caddy version | cut -d' ' -f1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), node $(node -v)"
}
