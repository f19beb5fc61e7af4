# Shared machinery of bench/run.sh and bench/scale.sh: sourced, not run. See bench/README.md.
#
# Expects ROOT (the repository) to be set; sets BENCH_DIR, TMP, PIDS and the EXIT trap that
# stops every process started through it (add pids to PIDS).
# shellcheck shell=bash

BENCH_DIR="$ROOT/bench"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-64}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
EMAIL="${EMAIL:-bench@example.com}"

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

require_tools() {
  if ! command -v wrk >/dev/null; then
    log "wrk not found; installing it with apt"
    as_root apt-get install -y wrk >/dev/null || {
      as_root apt-get update >/dev/null && as_root apt-get install -y wrk >/dev/null
    } || die "could not install wrk (apt-get install -y wrk)"
  fi
  for tool in curl python3 "$@"; do
    command -v "$tool" >/dev/null || die "$tool is required"
  done
}

# build_latch [cargo build args...]: builds the release binary (of BENCH_REV's clean export
# when set; nothing with LATCH_BIN) and copies it to $TMP, so a parallel build in a shared
# CARGO_TARGET_DIR cannot swap it mid-run. Sets BIN, SRC and VERSION.
build_latch() {
  SRC="$ROOT"
  if [[ -n "${BENCH_REV:-}" ]]; then
    # A stable path, and git archive keeps commit mtimes, so cargo rebuilds only what changed.
    SRC="${TMPDIR:-/tmp}/latch-bench-src"
    rm -rf "$SRC" && mkdir -p "$SRC"
    git -C "$ROOT" archive "$BENCH_REV" | tar -x -C "$SRC"
    VERSION="$(git -C "$ROOT" rev-parse --short "$BENCH_REV")"
  else
    VERSION="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    [[ -n "$(git -C "$ROOT" status --porcelain -- src bench Cargo.toml Cargo.lock 2>/dev/null)" ]] \
      && VERSION="$VERSION+working-tree"
  fi
  BIN="${LATCH_BIN:-$TARGET_DIR/release/latch}"
  if [[ -n "${LATCH_BIN:-}" ]]; then
    VERSION="$LATCH_BIN"
  else
    log "building latch in $SRC (cargo build --release $*, CARGO_TARGET_DIR=$TARGET_DIR)"
    (cd "$SRC" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --quiet "$@")
  fi
  [[ -x "$BIN" ]] || die "no binary at $BIN"
  cp "$BIN" "$TMP/latch" && BIN="$TMP/latch"
}

# example_bin <name> [<path>]: prints the path of Cargo example <name>'s release binary,
# copied to $TMP like build_latch's. Built in a cargo run of its own: an example turns on the
# dev-dependencies' features (tokio "full"), which must not change the latch binary being
# measured. With <path> (a *_BIN override), that binary, not built.
example_bin() {
  local name="$1" bin="${2:-}"
  if [[ -z "$bin" ]]; then
    (cd "$SRC" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --quiet --example "$name") >&2
    bin="$TARGET_DIR/release/examples/$name"
  fi
  [[ -x "$bin" ]] || die "no $name binary at $bin (cargo build --release --example $name)"
  cp "$bin" "$TMP/$name-bin" && printf '%s\n' "$TMP/$name-bin"
}

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

# start_redis <port> <dir>: a non-persistent redis-server; sets REDIS_PID.
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

# write_config <file> <port> <store url> [<more [store] lines>]: a latch config with the dev
# provider.
write_config() {
  local file="$1" port="$2" store_url="$3" store_extra="${4:-}"
  cat >"$file" <<EOF
# Generated by bench/lib.sh (same structure as the sample providers.toml).
[server]
listen = "127.0.0.1:$port"
public_url = "http://127.0.0.1:$port"
base_path = ""
secret = "bench-only-secret-0123456789abcdef-0123456789"
trusted_origins = []

[store]
url = "$store_url"
$store_extra

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

# start_latch <dir> <config>: `latch serve` in the background, polled until /healthz answers;
# sets LATCH_PID.
# write_oidc_config <file> <port> <store url> <issuer>: write_config plus an `oidc` provider
# at <issuer> with CLIENT_ID and CLIENT_SECRET, and the sign-in limits off (every login of a
# bench comes from 127.0.0.1).
write_oidc_config() {
  write_config "$1" "$2" "$3"
  cat >>"$1" <<EOF

# Every login comes from 127.0.0.1.
[limits]
signin = "off"
callback = "off"

[providers.oidc]
type = "oidc"
name = "oidc-provider"
issuer = "$4"
client_id = "$CLIENT_ID"
client_secret = "$CLIENT_SECRET"
EOF
}

start_latch() {
  local dir="$1" config="$2" base
  base=$(sed -n 's/^public_url = "\(.*\)"$/\1/p' "$config")
  RUST_LOG=warn LD_PRELOAD="${BENCH_PRELOAD:-}" "$BIN" serve --config "$config" >"$dir/latch.log" 2>&1 &
  LATCH_PID=$!
  PIDS+=("$LATCH_PID")
  wait_http "$base/healthz" "$LATCH_PID" || { cat "$dir/latch.log" >&2; die "latch did not come up"; }
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

# run_wrk <label> <url> <cookie> <out-file> <duration>; the BENCH line of session.lua ends up
# in <out-file>.
run_wrk() {
  local label="$1" url="$2" cookie="$3" out="$4" duration="$5"
  log "wrk -t$THREADS -c$CONNECTIONS -d$duration --latency $label"
  LATCH_COOKIE="$cookie" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency \
    -s "$BENCH_DIR/session.lua" "$url" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
}

field() { sed -n "s/^BENCH .*\b$2=\([0-9.]*\).*/\1/p" "$1"; }
