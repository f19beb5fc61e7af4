#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: latch's /healthz, /session and
# /verify (Redis and SQLite) beside the ceiling's /empty and one-GET floor (bench/ceiling.rs).
# Unlike req/s on two shared cores, the count does not depend on what else the machine is
# doing (it varies by about ±2% from run to run), so a change to the hot path can be judged
# from one run. See bench/README.md.
#
#   bench/instructions.sh                 # 1,000 requests per route after 200 unmeasured
#   BENCH_REQUESTS=3000 bench/instructions.sh
#   BENCH_KEEP=1 bench/instructions.sh    # keep the callgrind files (callgrind_annotate them)
#
# Environment (and BENCH_REV, LATCH_BIN, CEILING_BIN, CARGO_TARGET_DIR as for floor.sh):
#   BENCH_REQUESTS   measured requests per route, on one keep-alive connection (default 1000)
#   BENCH_LOG        latch's RUST_LOG (default warn; `info`, latch's own default, adds the
#                    request span's cost)
#
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUESTS="${BENCH_REQUESTS:-1000}"
LOG_LEVEL="${BENCH_LOG:-warn}"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

require_tools redis-server valgrind callgrind_control callgrind_annotate
build_latch
CEILING=$(example_bin ceiling "${CEILING_BIN:-}")

# requests <port> <path> <cookie> <count>: GETs on one keep-alive connection; each must be 200.
requests() {
  python3 - "$@" <<'EOF'
import http.client, sys
port, path, cookie, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
c = http.client.HTTPConnection("127.0.0.1", int(port))
for _ in range(n):
    c.request("GET", path, headers={"Cookie": cookie})
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"GET {path} answered {r.status}")
EOF
}

# under_callgrind <dir> <ready url> <command...>: starts it under callgrind; sets VG_PID.
under_callgrind() {
  local dir="$1" ready="$2"
  shift 2
  RUST_LOG="$LOG_LEVEL" valgrind --tool=callgrind --dump-instr=no \
    --callgrind-out-file="$dir/callgrind.out" "$@" >"$dir/valgrind.log" 2>&1 &
  VG_PID=$!
  PIDS+=("$VG_PID")
  wait_http "$ready" "$VG_PID" || { cat "$dir/valgrind.log" >&2; die "$* did not come up under valgrind"; }
}

# measure <label> <dir> <pid> <port> <path> <cookie>: prints "<label>\t<instructions per request>".
measure() {
  local label="$1" dir="$2" pid="$3" port="$4" path="$5" cookie="$6" file total
  requests "$port" "$path" "$cookie" 200
  callgrind_control -z "$pid" >/dev/null
  requests "$port" "$path" "$cookie" "$REQUESTS"
  callgrind_control -d "$label" "$pid" >/dev/null
  file=$(ls -t "$dir"/callgrind.out.* | head -n1)
  total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
  printf '%s\t%s\n' "$label" "$((total / REQUESTS))"
}

RESULTS="$TMP/results.tsv"
: >"$RESULTS"
rport=$(free_port)
mkdir -p "$TMP/redis" "$TMP/ceiling"
start_redis "$rport" "$TMP/redis"

# redis: with the session cache (the default); uncached: `session_cache = 0`, one Redis GET
# per check (it reuses the redis run's session); sqlite: the embedded store.
for store in redis uncached sqlite; do
  dir="$TMP/latch-$store"
  mkdir -p "$dir"
  port=$(free_port)
  url="redis://127.0.0.1:$rport"; [[ "$store" == sqlite ]] && url="sqlite://$dir/latch.db"
  extra=""; [[ "$store" == uncached ]] && extra="session_cache = 0"
  write_config "$dir/providers.toml" "$port" "$url" "$extra"
  # Signed in natively (fast), then the same server again under callgrind.
  if [[ "$store" != uncached ]]; then
    start_latch "$dir" "$dir/providers.toml"
    cookie=$(sign_in "http://127.0.0.1:$port" "$dir")
    stop_pid "$LATCH_PID"
  fi
  under_callgrind "$dir" "http://127.0.0.1:$port/healthz" "$BIN" serve --config "$dir/providers.toml"
  routes="/session /verify"; [[ "$store" == redis ]] && routes="/healthz $routes"
  for path in $routes; do
    log "latch ($store) $path: $REQUESTS requests under callgrind"
    measure "latch $store $path" "$dir" "$VG_PID" "$port" "$path" "$cookie" >>"$RESULTS"
  done
  stop_pid "$VG_PID"
  if [[ "$store" == redis ]]; then
    mapfile -t keys < <(redis-cli -p "$rport" --scan --pattern 'session:*')
    [[ ${#keys[@]} == 1 ]] || die "expected one session record in Redis, found ${#keys[@]}"
    cport=$(free_port)
    under_callgrind "$TMP/ceiling" "http://127.0.0.1:$cport/empty" \
      "$CEILING" "127.0.0.1:$cport" "redis://127.0.0.1:$rport" "${keys[0]}"
    for path in /empty /get; do
      log "ceiling $path: $REQUESTS requests under callgrind"
      measure "ceiling $path" "$TMP/ceiling" "$VG_PID" "$cport" "$path" "$cookie" >>"$RESULTS"
    done
    stop_pid "$VG_PID"
  fi
done

echo
echo "latch $VERSION — $(date -u +%Y-%m-%d), instructions per request (callgrind, $REQUESTS requests each)"
echo
python3 - "$RESULTS" <<'EOF'
import sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
counts = {label: int(n) for label, n in rows}
floor = counts["ceiling /get"]
print("| server | route | instructions/request | ÷ floor (ceiling /get) |")
print("|---|---|---:|---:|")
for label, n in counts.items():
    server, route = label.rsplit(" ", 1)
    print(f"| {server} | {route} | {n:,} | {n / floor:.2f} |")
EOF
