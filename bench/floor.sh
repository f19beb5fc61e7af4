#!/usr/bin/env bash
# latch's session checks against the floor, in one run: the ceiling binary (bench/ceiling.rs:
# axum and one Redis GET of the same session record) beside latch on the same Redis, the same
# wrk parameters, runs alternating round by round. The report is each route's req/s as a share
# of the floor's, p99 against the floor's, latch's CPU per request and its peak RSS (VmHWM).
# See bench/README.md.
#
#   bench/floor.sh                         # what the figures in bench/README.md come from
#   BENCH_ROUNDS=1 BENCH_DURATION=5s bench/floor.sh   # a quick look
#
# Environment (and the knobs of bench/run.sh: BENCH_THREADS, BENCH_KEEP, BENCH_REV, LATCH_BIN,
# BENCH_PRELOAD, CARGO_TARGET_DIR):
#   BENCH_CONNECTIONS  wrk connections                                   (default 32)
#   BENCH_DURATION     wrk duration per measured run                     (default 10s)
#   BENCH_WARMUP       unrecorded wrk run per target before the first round (default 2s; 0 = none)
#   BENCH_ROUNDS       measured runs per target, alternating             (default 3)
#   BENCH_TARGETS      which targets, in round order (default: all of them, see TARGETS below;
#                      POST /refresh on each store is driven by bench/refresh_load.rs)
#   CEILING_BIN        use this ceiling binary (with LATCH_BIN; default: built with latch)
#   REFRESH_LOAD_BIN   use this POST /refresh driver (bench/refresh_load.rs; default: built)
#
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-32}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
ROUNDS="${BENCH_ROUNDS:-3}"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

require_tools redis-server redis-cli
build_latch
CEILING=$(example_bin ceiling "${CEILING_BIN:-}")
REFRESH_LOAD=$(example_bin refresh_load "${REFRESH_LOAD_BIN:-}")

# ---------------------------------------------------------------- the servers
rport=$(free_port)
mkdir -p "$TMP/redis" "$TMP/latch-redis" "$TMP/latch-sqlite" "$TMP/ceiling"
start_redis "$rport" "$TMP/redis"
REDIS_URL="redis://127.0.0.1:$rport"

# redis: with the session cache (the default); uncached: the same with `session_cache = 0`,
# so every check is one Redis round trip; sqlite: the embedded store.
STORES=(redis uncached sqlite)
mkdir -p "$TMP/latch-uncached"
declare -A BASE PID
for store in "${STORES[@]}"; do
  dir="$TMP/latch-$store"
  port=$(free_port)
  url="$REDIS_URL"; [[ "$store" == sqlite ]] && url="sqlite://$dir/latch.db"
  extra=""; [[ "$store" == uncached ]] && extra="session_cache = 0"
  write_config "$dir/providers.toml" "$port" "$url" "$extra"
  # The refresh load makes thousands of /token and /refresh calls from one address.
  printf '\n[limits]\ntoken = "off"\nrefresh = "off"\n' >>"$dir/providers.toml"
  start_latch "$dir" "$dir/providers.toml"
  BASE[$store]="http://127.0.0.1:$port"
  PID[$store]=$LATCH_PID
done

# One sign-in per store; the Redis one's record is what the ceiling reads.
COOKIE_REDIS=$(sign_in "${BASE[redis]}" "$TMP/latch-redis")
COOKIE_SQLITE=$(sign_in "${BASE[sqlite]}" "$TMP/latch-sqlite")
# Same Redis, same secret: the uncached instance reads the same session.
COOKIE_UNCACHED=$COOKIE_REDIS
mapfile -t keys < <(redis-cli -p "$rport" --scan --pattern 'session:*')
[[ ${#keys[@]} == 1 ]] || die "expected one session record in Redis, found ${#keys[@]}"
KEY="${keys[0]}"

cport=$(free_port)
"$CEILING" "127.0.0.1:$cport" "$REDIS_URL" "$KEY" >"$TMP/ceiling/ceiling.log" 2>&1 &
PID[ceiling]=$!
PIDS+=("${PID[ceiling]}")
BASE[ceiling]="http://127.0.0.1:$cport"
wait_http "${BASE[ceiling]}/get" "${PID[ceiling]}" || { cat "$TMP/ceiling/ceiling.log" >&2; die "ceiling did not come up"; }

# Idle RSS: after start-up and one sign-in, before any load.
declare -A IDLE
for store in "${STORES[@]}"; do IDLE[$store]=$(proc_kb "${PID[$store]}" VmRSS); done

for store in "${STORES[@]}"; do
  cookie=COOKIE_${store^^}
  body=$(curl -fsS -H "Cookie: ${!cookie}" "${BASE[$store]}/session")
  [[ "$body" == *"\"email\":\"$EMAIL\""* ]] || die "$store: GET /session did not return the user: $body"
done

# ---------------------------------------------------------------- the runs
# target: <name> <server> <path> <cookie var>
TARGETS=(
  "empty ceiling /empty COOKIE_REDIS"
  "floor ceiling /get COOKIE_REDIS"
  "healthz redis /healthz COOKIE_REDIS"
  "session redis /session COOKIE_REDIS"
  "verify redis /verify COOKIE_REDIS"
  "session-uncached uncached /session COOKIE_UNCACHED"
  "verify-uncached uncached /verify COOKIE_UNCACHED"
  "session-sqlite sqlite /session COOKIE_SQLITE"
  "verify-sqlite sqlite /verify COOKIE_SQLITE"
  "refresh redis /refresh COOKIE_REDIS"
  "refresh-sqlite sqlite /refresh COOKIE_SQLITE"
)
wanted="${BENCH_TARGETS:-empty floor healthz session verify session-uncached verify-uncached session-sqlite verify-sqlite refresh refresh-sqlite}"
[[ " $wanted " == *" floor "* ]] || wanted="floor $wanted"   # every ratio needs it
# run_refresh: run_wrk's arguments, for POST /refresh (the base URL is the target's without
# the path).
run_refresh() {
  local label="$1" url="$2" cookie="$3" out="$4" duration="$5"
  log "refresh_load $CONNECTIONS connections ${duration} $label"
  "$REFRESH_LOAD" "${url%/refresh}" "$cookie" "$CONNECTIONS" "$duration" >"$out" 2>&1 \
    || { cat "$out" >&2; die "refresh_load failed"; }
}

# Commands Redis has run so far (all kinds, every client): per request, what a target costs
# Redis (the session cache's fences are PINGs shared by the requests waiting together).
redis_calls() {
  redis-cli -p "$rport" INFO commandstats \
    | sed -n 's/^cmdstat_[^:]*:calls=\([0-9]*\),.*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

RESULTS="$TMP/results.tsv"
: >"$RESULTS"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

for round in $(seq 0 "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    read -r name server path cookie_var <<<"$t"
    [[ " $wanted " == *" $name "* ]] || continue
    url="${BASE[$server]}$path"
    out="$TMP/wrk-$name-$round.txt"
    # POST /refresh rotates its token at every call: refresh_load.rs, one family per connection.
    load=run_wrk; [[ "$path" == /refresh ]] && load=run_refresh
    if [[ $round == 0 ]]; then
      [[ "$WARMUP" != 0 ]] && $load "$name (warm-up)" "$url" "${!cookie_var}" "$out" "$WARMUP"
      continue
    fi
    pid=${PID[$server]}
    cpu0=$(cpu_seconds "$pid")
    calls0=$(redis_calls)
    $load "$name round $round" "$url" "${!cookie_var}" "$out" "$DURATION"
    cpu1=$(cpu_seconds "$pid")
    calls1=$(redis_calls)
    grep -q '^BENCH ' "$out" || { cat "$out" >&2; die "no BENCH line in wrk output"; }
    non2xx=$(field "$out" non2xx); serr=$(field "$out" socket_errors)
    [[ "$non2xx" == 0 && "$serr" == 0 ]] \
      || log "WARNING: $name round $round: $non2xx non-2xx responses, $serr socket errors"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$(field "$out" rps)" \
      "$(field "$out" p99_us)" \
      "$(awk -v a="$cpu0" -v b="$cpu1" -v n="$(field "$out" requests)" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
      "$non2xx" \
      "$(awk -v a="$calls0" -v b="$calls1" -v n="$(field "$out" requests)" 'BEGIN { printf "%.2f", (b - a) / n }')" \
      >>"$RESULTS"
  done
done

for store in "${STORES[@]}"; do
  cookie=COOKIE_${store^^}
  body=$(curl -fsS -H "Cookie: ${!cookie}" "${BASE[$store]}/session")
  [[ "$body" == *"\"email\":\"$EMAIL\""* ]] || die "$store: GET /session after the runs: $body"
done

# ---------------------------------------------------------------- report
echo
echo "latch $VERSION — $(date -u +%Y-%m-%d), $(nproc) cores," \
  "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS alternating rounds (wrk shares the cores)"
echo
# Per target: median req/s and p99 over the rounds, and the median of the per-round ratios to
# the floor (each round's floor run is the nearest in time).
python3 - "$RESULTS" <<'EOF'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter="\t"))
by = {}
for name, rnd, rps, p99, cpu, _, calls in rows:
    by.setdefault(name, {})[int(rnd)] = (float(rps), float(p99) / 1000, float(cpu), float(calls))
floor = by["floor"]
print("| target | req/s (median) | ÷ floor | p99 ms | p99 ÷ floor's | server CPU µs/req | Redis commands/req |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name, runs in by.items():
    rounds = sorted(runs)
    med = lambda i: statistics.median(runs[r][i] for r in rounds)
    share = statistics.median(runs[r][0] / floor[r][0] for r in rounds)
    p99 = statistics.median(runs[r][1] / floor[r][1] for r in rounds)
    print(f"| {name} | {med(0):.0f} | {share:.2f} | {med(1):.2f} | {p99:.2f} | {med(2):.1f} | {med(3):.2f} |")
EOF
echo
for store in "${STORES[@]}"; do
  printf 'latch on %s: RSS idle %.1f MiB, peak (VmHWM) %.1f MiB\n' "$store" \
    "$(awk -v k="${IDLE[$store]}" 'BEGIN { print k / 1024 }')" \
    "$(awk -v k="$(proc_kb "${PID[$store]}" VmHWM)" 'BEGIN { print k / 1024 }')"
done
printf 'ceiling: peak (VmHWM) %.1f MiB\n' "$(awk -v k="$(proc_kb "${PID[ceiling]}" VmHWM)" 'BEGIN { print k / 1024 }')"
echo "load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)" \
  "${BENCH_PRELOAD:+; LD_PRELOAD=$BENCH_PRELOAD}"
