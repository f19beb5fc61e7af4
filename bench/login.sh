#!/usr/bin/env bash
# CPU per login through a real OpenID provider: latch (release build) with an `oidc` provider
# pointing at tests/oidc-provider (panva's oidc-provider on Node), driven by
# bench/login_load.rs (complete logins over plain HTTP, each checked at GET /session). latch's
# CPU time (utime+stime from /proc/<pid>/stat) is read before and after each run, and so is
# the node process's and redis-server's. See bench/README.md.
#
#   bench/login.sh                                   # what the figures in bench/README.md come from
#   BENCH_LOGINS=100 BENCH_USERS=each bench/login.sh # a quick look
#
# Environment (and BENCH_REV, LATCH_BIN, BENCH_KEEP, BENCH_PRELOAD, CARGO_TARGET_DIR as in
# bench/run.sh):
#   BENCH_LOGINS         logins per measured run                            (default 400)
#   BENCH_WORKERS        concurrent workers, each its own browser           (default 8)
#   BENCH_WARMUP_LOGINS  unrecorded logins before the first run, per store  (default 40)
#   BENCH_USERS          which runs, in order: `each` (a new user per login), `worker` (one
#                        user per worker), `one` (every login the same user) (default all three)
#   BENCH_STORES         "redis sqlite"
#   BENCH_MAX_SECONDS    bound on each run of the driver                    (default 120)
#   LOGIN_LOAD_BIN       use this driver binary (bench/login_load.rs; default: built)
#   BENCH_CALLGRIND=1    run latch under `valgrind --tool=callgrind` and report latch's
#                        instructions per login (counters dumped around each run with
#                        callgrind_control): a figure that does not move with the machine's
#                        load. Its CPU and RSS columns are then valgrind's. Use fewer logins
#                        (BENCH_LOGINS=100 BENCH_WORKERS=4).
#
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOGINS="${BENCH_LOGINS:-400}"
WORKERS="${BENCH_WORKERS:-8}"
WARMUP="${BENCH_WARMUP_LOGINS:-40}"
USERS="${BENCH_USERS:-each worker one}"
STORES="${BENCH_STORES:-redis sqlite}"
MAX_SECONDS="${BENCH_MAX_SECONDS:-120}"
CLIENT_ID=latch-bench
CLIENT_SECRET=login-bench-only-secret
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

require_tools redis-server node npm
OIDC_DIR="$ROOT/tests/oidc-provider"
if [[ ! -d "$OIDC_DIR/node_modules/oidc-provider" ]]; then
  log "npm ci --prefix tests/oidc-provider"
  npm ci --prefix "$OIDC_DIR" --no-audit --no-fund --loglevel=error >&2
fi
build_latch
LOGIN_LOAD=$(example_bin login_load "${LOGIN_LOAD_BIN:-}")
CALLGRIND="${BENCH_CALLGRIND:-0}"
if [[ "$CALLGRIND" == 1 ]]; then
  require_tools valgrind callgrind_control
  # start_latch runs $BIN: a wrapper that execs valgrind, so LATCH_PID is valgrind's.
  printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file="%s" "%s" "$@"\n' \
    "$TMP/callgrind.%p.out" "$BIN" >"$TMP/latch-callgrind"
  chmod +x "$TMP/latch-callgrind"
  BIN="$TMP/latch-callgrind"
fi

# instructions <label>: dumps latch's callgrind counters (which zeroes them) and prints the
# count since the last dump; "–" without BENCH_CALLGRIND.
instructions() {
  [[ "$CALLGRIND" == 1 ]] || { echo "–"; return; }
  timeout 60 callgrind_control --dump="$1" "$LATCH_PID" >/dev/null || die "callgrind_control failed"
  local file
  file=$(grep -l "^desc: Trigger: dump $1\$" "$TMP"/callgrind."$LATCH_PID".out.* | head -n1)
  sed -n 's/^summary: //p' "$file"
}

# start_provider <dir> <redirect uri>: oidc-provider on a free port; sets NODE_PID, ISSUER.
start_provider() {
  local dir="$1" redirect="$2" port=""
  : >"$dir/oidc.out"
  # stdin is not a pipe here: the server stops on SIGTERM (the EXIT trap), not on stdin's EOF.
  CLIENT_ID="$CLIENT_ID" CLIENT_SECRET="$CLIENT_SECRET" REDIRECT_URI="$redirect" PORT=0 \
    EXIT_ON_STDIN_EOF=0 node "$OIDC_DIR/server.js" >"$dir/oidc.out" 2>"$dir/oidc.log" </dev/null &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
  for _ in $(seq 1 600); do
    port=$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$dir/oidc.out")
    [[ -n "$port" ]] && break
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n "$port" ]] || { cat "$dir/oidc.log" >&2; die "oidc-provider did not start"; }
  ISSUER="http://127.0.0.1:$port"
}

# run_load <label> <base> <logins> <users> <prefix> <out>
run_load() {
  local label="$1" base="$2" logins="$3" users="$4" prefix="$5" out="$6"
  log "login_load $logins logins, $WORKERS workers, users=$users: $label"
  timeout $((MAX_SECONDS + 30)) "$LOGIN_LOAD" "$base" oidc "$logins" "$WORKERS" "$users" \
    "$prefix" "$MAX_SECONDS" >"$out" 2>"$out.err" \
    || { cat "$out" "$out.err" >&2; die "login_load failed ($label)"; }
  grep -q '^BENCH ' "$out" || { cat "$out" >&2; die "no BENCH line from login_load"; }
}

if [[ " $STORES " == *" redis "* ]]; then
  mkdir -p "$TMP/redis"
  rport=$(free_port)
  start_redis "$rport" "$TMP/redis"
fi

RESULTS="$TMP/results.tsv"
: >"$RESULTS"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

for store in $STORES; do
  dir="$TMP/$store"
  mkdir -p "$dir"
  port=$(free_port)
  base="http://127.0.0.1:$port"
  case "$store" in
    redis) url="redis://127.0.0.1:$rport" ;;
    sqlite) url="sqlite://$dir/latch.db" ;;
    *) die "unknown store $store (redis, sqlite)" ;;
  esac
  start_provider "$dir" "$base/callback/oidc"
  write_oidc_config "$dir/providers.toml" "$port" "$url" "$ISSUER"
  start_latch "$dir" "$dir/providers.toml"
  idle=$(proc_kb "$LATCH_PID" VmRSS)
  # Discovery, the JWKS, connection pools, node's JIT: not measured.
  run_load "$store warm-up" "$base" "$WARMUP" each "warm" "$dir/warmup.txt"
  for users in $USERS; do
    out="$dir/load-$users.txt"
    instructions "before-$store-$users" >/dev/null
    l0=$(cpu_seconds "$LATCH_PID"); n0=$(cpu_seconds "$NODE_PID")
    r0=0; [[ "$store" == redis ]] && r0=$(cpu_seconds "$REDIS_PID")
    run_load "$store" "$base" "$LOGINS" "$users" "$users" "$out"
    l1=$(cpu_seconds "$LATCH_PID"); n1=$(cpu_seconds "$NODE_PID")
    r1=0; [[ "$store" == redis ]] && r1=$(cpu_seconds "$REDIS_PID")
    ir=$(instructions "$store-$users")
    f() { sed -n "s/^BENCH .*\b$1=\([0-9.]*\).*/\1/p" "$out"; }
    n=$(f logins)
    [[ "$(f failures)" == 0 && "$n" == "$LOGINS" ]] || die "$store/$users: $(cat "$out")"
    per() { awk -v a="$1" -v b="$2" -v n="$n" 'BEGIN { printf "%.0f", (b - a) * 1e6 / n }'; }
    redis_cpu="–"; [[ "$store" == redis ]] && redis_cpu=$(per "$r0" "$r1")
    [[ "$ir" != "–" ]] && ir=$(awk -v i="$ir" -v n="$n" 'BEGIN { printf "%.0f", i / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$store" "$users" "$n" "$(f lps)" \
      "$(f p50_ms)" "$(f p99_ms)" "$(per "$l0" "$l1")" "$ir" "$(per "$n0" "$n1")" "$redis_cpu" \
      "$(awk -v k="$idle" 'BEGIN { printf "%.1f", k / 1024 }')" \
      "$(awk -v k="$(proc_kb "$LATCH_PID" VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }')" \
      >>"$RESULTS"
  done
  stop_pid "$LATCH_PID"
  stop_pid "$NODE_PID"
done

# ---------------------------------------------------------------- report
echo
echo "latch $VERSION — $(date -u +%Y-%m-%d), $(nproc) cores, $LOGINS logins per run," \
  "$WORKERS workers (the driver, node and latch share the cores), after $WARMUP warm-up logins"
echo
echo "| store | users | logins | logins/s | p50 ms | p99 ms | latch CPU µs/login | latch instructions/login | node CPU µs/login | redis CPU µs/login | latch RSS at start MiB | latch peak (VmHWM) MiB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
while IFS=$'\t' read -r store users n lps p50 p99 latch ir node redis idle peak; do
  echo "| $store | $users | $n | $lps | $p50 | $p99 | $latch | $ir | $node | $redis | $idle | $peak |"
done <"$RESULTS"
echo
echo "users: each = a new user per login; worker = one user per worker ($WORKERS users);" \
  "one = every login the same user"
[[ "$CALLGRIND" == 1 ]] && echo "latch ran under callgrind: its CPU and RSS columns are valgrind's"
echo "load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)" \
  "${BENCH_PRELOAD:+; LD_PRELOAD=$BENCH_PRELOAD}"
