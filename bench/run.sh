#!/usr/bin/env bash
# Benchmark of latch's GET /session (valid session cookie) on Redis and on the embedded
# SQLite store, beside GET /healthz of the same server as the ceiling. See bench/README.md.
#
#   bench/run.sh                      # both stores, 15 s per route
#   BENCH_DURATION=30s bench/run.sh   # longer runs
#   BENCH_STORES=redis bench/run.sh   # one store
#
# Environment:
#   BENCH_DURATION     wrk duration per measured run          (default 15s)
#   BENCH_WARMUP       unrecorded wrk run before each route   (default 3s; 0 to skip)
#   BENCH_THREADS      wrk threads                            (default 2)
#   BENCH_CONNECTIONS  wrk connections                        (default 64)
#   BENCH_STORES       stores to run, in order                (default "redis sqlite")
#   BENCH_KEEP=1       keep the temp directory (configs, logs, raw wrk output)
#   BENCH_REV          build this git revision (e.g. HEAD) from a clean export instead of the
#                      working tree (useful while the working tree is mid-edit)
#   LATCH_BIN          use this latch binary; skips the build
#   BENCH_PRELOAD      LD_PRELOAD for latch, e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
#                      to compare allocators without rebuilding
#   CARGO_TARGET_DIR   where cargo puts target/release/latch (default <repo>/target)
#
# Everything listens on 127.0.0.1 only. Every process started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${BENCH_DURATION:-15s}"
WARMUP="${BENCH_WARMUP:-3s}"
STORES="${BENCH_STORES:-redis sqlite}"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

require_tools
if [[ " $STORES " == *" redis "* ]] && ! command -v redis-server >/dev/null; then
  die "redis-server is required for the Redis run (apt-get install -y redis-server)"
fi
build_latch

# ---------------------------------------------------------------- the runs
RESULTS="$TMP/results.tsv"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
: >"$RESULTS"

for store in $STORES; do
  dir="$TMP/$store"
  mkdir -p "$dir"
  REDIS_PID=""
  case "$store" in
    redis)
      rport=$(free_port)
      start_redis "$rport" "$dir"
      store_url="redis://127.0.0.1:$rport"
      ;;
    sqlite)
      store_url="sqlite://$dir/latch.db"
      ;;
    *) die "unknown store '$store' (redis or sqlite)" ;;
  esac

  port=$(free_port)
  base="http://127.0.0.1:$port"
  write_config "$dir/providers.toml" "$port" "$store_url"
  log "$store: latch serve on $base, store $store_url"
  start_latch "$dir" "$dir/providers.toml"
  rss_start=$(proc_kb "$LATCH_PID" VmRSS)

  cookie=$(sign_in "$base" "$dir")
  body=$(curl -fsS -H "Cookie: $cookie" "$base/session")
  [[ "$body" == *"\"email\":\"$EMAIL\""* ]] || die "GET /session did not return the user: $body"
  log "$store: signed in; /session -> $body"

  for route in healthz session; do
    if [[ "$WARMUP" != 0 ]]; then
      run_wrk "$store /$route (warm-up)" "$base/$route" "$cookie" "$dir/wrk-$route-warmup.txt" "$WARMUP"
    fi
    cpu0=$(cpu_seconds "$LATCH_PID")
    rcpu0=0; [[ -n "$REDIS_PID" ]] && rcpu0=$(cpu_seconds "$REDIS_PID")
    run_wrk "$store /$route" "$base/$route" "$cookie" "$dir/wrk-$route.txt" "$DURATION"
    cpu1=$(cpu_seconds "$LATCH_PID")
    rcpu1=0; [[ -n "$REDIS_PID" ]] && rcpu1=$(cpu_seconds "$REDIS_PID")
    out="$dir/wrk-$route.txt"
    grep -q '^BENCH ' "$out" || { cat "$out" >&2; die "no BENCH line in wrk output"; }
    non2xx=$(field "$out" non2xx); serr=$(field "$out" socket_errors)
    if [[ "$non2xx" != 0 || "$serr" != 0 ]]; then
      log "WARNING: $store /$route: $non2xx non-2xx responses, $serr socket errors"
    fi
    requests=$(field "$out" requests)
    printf '%s\t/%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$store" "$route" \
      "$(field "$out" rps)" "$(field "$out" p50_us)" "$(field "$out" p99_us)" \
      "$(awk -v a="$cpu0" -v b="$cpu1" -v n="$requests" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
      "$(awk -v a="$rcpu0" -v b="$rcpu1" -v n="$requests" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
      "$non2xx" "$serr" >>"$RESULTS"
  done

  # The session must still be valid after the load (nothing was refused along the way).
  body=$(curl -fsS -H "Cookie: $cookie" "$base/session")
  [[ "$body" == *"\"email\":\"$EMAIL\""* ]] || die "GET /session after the runs: $body"

  hwm=$(proc_kb "$LATCH_PID" VmHWM)
  printf '%s\t%s\t%s\n' "$store" "$rss_start" "$hwm" >>"$TMP/rss.tsv"
  stop_pid "$LATCH_PID"
  [[ -n "$REDIS_PID" ]] && stop_pid "$REDIS_PID"
done

# ---------------------------------------------------------------- report
cores=$(nproc)
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)
echo
echo "latch $VERSION — $(date -u +%Y-%m-%d)," \
  "$cores cores ($cpu), wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (wrk and latch share the cores)"
echo
row() { printf '| %-6s | %-8s | %7s | %6s | %6s | %16s | %16s | %12s |\n' "$@"; }
row store route 'req/s' 'p50 ms' 'p99 ms' 'latch CPU µs/req' 'redis CPU µs/req' 'peak RSS MiB'
echo '|--------|----------|--------:|-------:|-------:|-----------------:|-----------------:|-------------:|'
while IFS=$'\t' read -r store route rps p50 p99 cpu_req rcpu_req non2xx serr; do
  hwm=$(awk -v s="$store" '$1 == s { printf "%.1f", $3 / 1024 }' "$TMP/rss.tsv")
  rc="$rcpu_req"; [[ "$store" != redis ]] && rc="–"
  row "$store" "$route" "$(printf '%.0f' "$rps")" "$(awk -v u="$p50" 'BEGIN{printf "%.2f", u/1000}')" \
    "$(awk -v u="$p99" 'BEGIN{printf "%.2f", u/1000}')" "$cpu_req" "$rc" "$hwm"
done <"$RESULTS"
echo
for store in $STORES; do
  awk -F'\t' -v s="$store" '
    $1 == s && $2 == "/healthz" { h = $3 }
    $1 == s && $2 == "/session" { q = $3 }
    END {
      r = q / h
      printf "%s: /session ÷ /healthz = %.2f%s\n", s, r,
        (s == "redis" ? (r >= 0.5 ? "  (aim ≥ 0.5 met)" : "  (aim ≥ 0.5 NOT met)") : "")
    }' "$RESULTS"
done
echo "peak RSS = VmHWM of the latch process after both runs; RSS at start:" \
  "$(awk '{printf "%s%s %.1f MiB", (NR > 1 ? ", " : ""), $1, $2 / 1024}' "$TMP/rss.tsv")"
echo "load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)" \
  "${BENCH_PRELOAD:+; LD_PRELOAD=$BENCH_PRELOAD}"
