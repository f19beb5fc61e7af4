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
BENCH_DIR="$ROOT/bench"
DURATION="${BENCH_DURATION:-15s}"
WARMUP="${BENCH_WARMUP:-3s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
STORES="${BENCH_STORES:-redis sqlite}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${LATCH_BIN:-$TARGET_DIR/release/latch}"
EMAIL="bench@example.com"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- processes & cleanup
TMP="$(mktemp -d /tmp/latch-bench.XXXXXX)"
PIDS=()

stop_pid() {
  local pid="$1"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && stop_pid "$pid"
  done
  if [[ "${BENCH_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
    log "logs and raw output kept in $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- prerequisites
as_root() {
  if [[ "$(id -u)" == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"; fi
}

if ! command -v wrk >/dev/null; then
  log "wrk not found; installing it with apt"
  as_root apt-get install -y wrk >/dev/null || {
    as_root apt-get update >/dev/null && as_root apt-get install -y wrk >/dev/null
  } || die "could not install wrk (apt-get install -y wrk)"
fi
for tool in curl python3; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
if [[ " $STORES " == *" redis "* ]] && ! command -v redis-server >/dev/null; then
  die "redis-server is required for the Redis run (apt-get install -y redis-server)"
fi

SRC="$ROOT"
if [[ -n "${BENCH_REV:-}" ]]; then
  # A stable path, and git archive keeps commit mtimes, so cargo rebuilds only what changed.
  SRC="${TMPDIR:-/tmp}/latch-bench-src"
  rm -rf "$SRC" && mkdir -p "$SRC"
  git -C "$ROOT" archive "$BENCH_REV" | tar -x -C "$SRC"
  VERSION="$(git -C "$ROOT" rev-parse --short "$BENCH_REV")"
else
  VERSION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  [[ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]] \
    && VERSION="$VERSION+working-tree"
fi
if [[ -n "${LATCH_BIN:-}" ]]; then
  VERSION="$LATCH_BIN"
else
  log "building latch in $SRC (cargo build --release, CARGO_TARGET_DIR=$TARGET_DIR)"
  (cd "$SRC" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --quiet)
fi
[[ -x "$BIN" ]] || die "no binary at $BIN"
# A private copy: another build in a shared CARGO_TARGET_DIR must not swap it mid-run.
cp "$BIN" "$TMP/latch" && BIN="$TMP/latch"

# ---------------------------------------------------------------- helpers
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Seconds of CPU (user+system) used so far by a process.
cpu_seconds() {
  local ticks
  ticks=$(sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}')
  awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", t / hz }'
}

proc_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

wait_http() {
  local url="$1" pid="$2"
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || return 1
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

start_redis() {
  local port="$1" dir="$2"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" --daemonize no --loglevel warning >"$dir/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    kill -0 "$REDIS_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$dir/redis.log" >&2
  die "redis-server did not start on 127.0.0.1:$port"
}

write_config() {
  local file="$1" port="$2" store_url="$3"
  cat >"$file" <<EOF
# Generated by bench/run.sh (same structure as the sample providers.toml).
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
base_path = ""
secret = "bench-only-secret-0123456789abcdef-0123456789"
trusted_origins = []

[store]
url = "$store_url"

[session]
max_age = "30d"
idle_timeout = "7d"
update_age = "24h"
cookie_domain = ""

[tokens]
access_ttl = "10m"
refresh_ttl = "30d"
audience = ["api"]

[providers.dev]
preset = "dev"
EOF
}

# Drives the development provider with curl; prints "latch.session-token=<value>".
sign_in() {
  local base="$1" dir="$2" jar="$2/cookies.txt" loc code query
  : >"$jar"
  # 1. start the flow: 302 to the dev provider's authorize page, latch.flow cookie set.
  read -r code loc < <(curl -sS -o /dev/null -c "$jar" -b "$jar" \
    -w '%{http_code} %{redirect_url}\n' "$base/signin/dev?callbackUrl=/")
  [[ "$code" == 302 && "$loc" == "$base/dev/dev/authorize?"* ]] \
    || die "GET /signin/dev answered $code -> '$loc'"
  grep -q 'latch\.flow' "$jar" || die "no latch.flow cookie after /signin/dev"
  query="${loc#*\?}"
  # 2. approve at the dev provider: every authorize parameter as a form field, plus the email.
  read -r code loc < <(curl -sS -o /dev/null -c "$jar" -b "$jar" \
    -w '%{http_code} %{redirect_url}\n' \
    --data "$query" --data-urlencode "email=$EMAIL" "$base/dev/dev/authorize")
  [[ "$code" == 302 && "$loc" == "$base/callback/dev?"* ]] \
    || die "POST /dev/dev/authorize answered $code -> '$loc'"
  # 3. the callback: latch exchanges the code and sets the session cookie.
  code=$(curl -sS -o /dev/null -c "$jar" -b "$jar" -D "$dir/callback.headers" \
    -w '%{http_code}' "$loc")
  [[ "$code" == 302 ]] || die "GET /callback/dev answered $code (see $dir/latch.log)"
  local token
  token=$(tr -d '\r' <"$dir/callback.headers" \
    | sed -n 's/^[Ss]et-[Cc]ookie: latch\.session-token=\([^;]*\).*/\1/p' | tail -n1)
  [[ -n "$token" ]] || die "no latch.session-token in the callback's Set-Cookie"
  printf 'latch.session-token=%s' "$token"
}

# run_wrk <label> <url> <cookie> <out-file>; the BENCH line of session.lua ends up in <out-file>.
run_wrk() {
  local label="$1" url="$2" cookie="$3" out="$4" duration="$5"
  log "wrk -t$THREADS -c$CONNECTIONS -d$duration --latency $label"
  LATCH_COOKIE="$cookie" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency \
    -s "$BENCH_DIR/session.lua" "$url" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
}

field() { sed -n "s/^BENCH .*\b$2=\([0-9.]*\).*/\1/p" "$1"; }

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
  RUST_LOG=warn LD_PRELOAD="${BENCH_PRELOAD:-}" "$BIN" serve --config "$dir/providers.toml" >"$dir/latch.log" 2>&1 &
  LATCH_PID=$!
  PIDS+=("$LATCH_PID")
  wait_http "$base/healthz" "$LATCH_PID" || { cat "$dir/latch.log" >&2; die "latch did not come up"; }
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
