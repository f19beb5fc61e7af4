#!/usr/bin/env bash
# latch beside Auth.js, in one run: latch (release build, Redis store) and Auth.js
# (bench/authjs/server.mjs: @auth/express, database sessions through @auth/unstorage-adapter on
# the same redis-server, its own key prefix; versions pinned in bench/authjs/package-lock.json)
# signed in to through the same oidc-provider (tests/oidc-provider) by the same driver
# (bench/login_load.rs, `--flow latch` / `--flow authjs`), then their session routes under the
# same wrk load. See bench/README.md ("latch beside Auth.js").
#
#   bench/compare.sh                                   # what the figures in bench/README.md come from
#   BENCH_LOGINS=100 BENCH_ROUNDS=1 BENCH_DURATION=5s bench/compare.sh   # a quick look
#
# For each round, alternating latch then Auth.js: BENCH_LOGINS complete logins (a new user per
# login), each checked at the session route; the server's CPU time (utime+stime from
# /proc/<pid>/stat) before and after gives CPU per login, and so do the IdP's and Redis's.
# Then, round by round alternating again, `wrk -t2 -c32 --latency` on each one's session route
# (`GET /session`, `GET /auth/session`) with the cookie of one of those logins: req/s, p99 and
# the server's CPU per request. RSS: VmRSS right after start-up (before any request) and
# VmHWM (peak) at the end. The table gives the median over the rounds.
#
# Environment (and BENCH_REV, LATCH_BIN, BENCH_KEEP, CARGO_TARGET_DIR as in bench/run.sh):
#   BENCH_LOGINS         logins per measured run                              (default 300)
#   BENCH_WORKERS        concurrent workers, each its own browser             (default 8)
#   BENCH_WARMUP_LOGINS  unrecorded logins per server before the first round  (default 40)
#   BENCH_ROUNDS         measured rounds, each one login run and one wrk run per server (default 3)
#   BENCH_DURATION       wrk duration per measured run                        (default 10s)
#   BENCH_WARMUP         unrecorded wrk run per server before the first round (default 2s)
#   BENCH_CONNECTIONS    wrk connections                                      (default 32)
#   BENCH_MAX_SECONDS    bound on each run of the driver                      (default 120)
#   LOGIN_LOAD_BIN       use this driver binary (bench/login_load.rs; default: built)
#
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOGINS="${BENCH_LOGINS:-300}"
WORKERS="${BENCH_WORKERS:-8}"
WARMUP_LOGINS="${BENCH_WARMUP_LOGINS:-40}"
ROUNDS="${BENCH_ROUNDS:-3}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-2s}"
MAX_SECONDS="${BENCH_MAX_SECONDS:-120}"
export BENCH_CONNECTIONS="${BENCH_CONNECTIONS:-32}"
CLIENT_ID=compare-bench
CLIENT_SECRET=compare-bench-only-secret
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

require_tools redis-server node npm
OIDC_DIR="$ROOT/tests/oidc-provider"
AUTHJS_DIR="$ROOT/bench/authjs"
for dir in "$OIDC_DIR" "$AUTHJS_DIR"; do
  if [[ ! -d "$dir/node_modules" ]]; then
    log "npm ci --prefix ${dir#"$ROOT"/}"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
  fi
done
build_latch
LOGIN_LOAD=$(example_bin login_load "${LOGIN_LOAD_BIN:-}")
npm_version() { node -p "require('$1/node_modules/$2/package.json').version"; }
VERSIONS="@auth/express $(npm_version "$AUTHJS_DIR" @auth/express), @auth/core $(npm_version "$AUTHJS_DIR" @auth/core), @auth/unstorage-adapter $(npm_version "$AUTHJS_DIR" @auth/unstorage-adapter), unstorage $(npm_version "$AUTHJS_DIR" unstorage), ioredis $(npm_version "$AUTHJS_DIR" ioredis), express $(npm_version "$AUTHJS_DIR" express); oidc-provider $(npm_version "$OIDC_DIR" oidc-provider); node $(node --version); $(redis-server --version | cut -d' ' -f1-3)"

# wait_listening <file> <pid>: the port of the `LISTENING <port>` line a node server prints.
wait_listening() {
  local file="$1" pid="$2" port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's/^LISTENING \([0-9]*\)$/\1/p' "$file")
    [[ -n "$port" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  printf '%s' "$port"
}

# ---------------------------------------------------------------- the servers
# $TMP/latch is the binary (build_latch): each server's files go to $TMP/run-<server>.
mkdir -p "$TMP/redis" "$TMP/oidc" "$TMP/run-latch" "$TMP/run-authjs"
rport=$(free_port)
start_redis "$rport" "$TMP/redis"
REDIS_URL="redis://127.0.0.1:$rport"
lport=$(free_port)
aport=$(free_port)
declare -A BASE PID IDLE SESSION_PATH
BASE[latch]="http://127.0.0.1:$lport"
BASE[authjs]="http://127.0.0.1:$aport"
SESSION_PATH[latch]=/session
SESSION_PATH[authjs]=/auth/session

# One oidc-provider for both, with both callbacks registered for the one client.
# stdin is not a pipe here: the server stops on SIGTERM (the EXIT trap), not on stdin's EOF.
: >"$TMP/oidc/oidc.out"
CLIENT_ID="$CLIENT_ID" CLIENT_SECRET="$CLIENT_SECRET" PORT=0 EXIT_ON_STDIN_EOF=0 \
  REDIRECT_URI="${BASE[latch]}/callback/oidc,${BASE[authjs]}/auth/callback/oidc" \
  node "$OIDC_DIR/server.js" >"$TMP/oidc/oidc.out" 2>"$TMP/oidc/oidc.log" </dev/null &
PID[idp]=$!
PIDS+=("${PID[idp]}")
oport=$(wait_listening "$TMP/oidc/oidc.out" "${PID[idp]}")
[[ -n "$oport" ]] || { cat "$TMP/oidc/oidc.log" >&2; die "oidc-provider did not start"; }
ISSUER="http://127.0.0.1:$oport"

write_oidc_config "$TMP/run-latch/providers.toml" "$lport" "$REDIS_URL" "$ISSUER"
start_latch "$TMP/run-latch" "$TMP/run-latch/providers.toml"
PID[latch]=$LATCH_PID
IDLE[latch]=$(proc_kb "${PID[latch]}" VmRSS)

# Auth.js: AUTH_SECRET is per run, never written out.
: >"$TMP/run-authjs/authjs.out"
AUTH_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') \
  PORT="$aport" ISSUER="$ISSUER" CLIENT_ID="$CLIENT_ID" CLIENT_SECRET="$CLIENT_SECRET" \
  REDIS_URL="$REDIS_URL" KEY_PREFIX="authjs:" NODE_ENV=production \
  node "$AUTHJS_DIR/server.mjs" >"$TMP/run-authjs/authjs.out" 2>"$TMP/run-authjs/authjs.log" </dev/null &
PID[authjs]=$!
PIDS+=("${PID[authjs]}")
[[ -n "$(wait_listening "$TMP/run-authjs/authjs.out" "${PID[authjs]}")" ]] \
  || { cat "$TMP/run-authjs/authjs.log" >&2; die "the Auth.js server did not start"; }
IDLE[authjs]=$(proc_kb "${PID[authjs]}" VmRSS)
wait_http "${BASE[authjs]}/auth/providers" "${PID[authjs]}" \
  || { cat "$TMP/run-authjs/authjs.log" >&2; die "the Auth.js server does not answer"; }

# run_load <server> <label> <logins> <prefix> <out> [driver options...]
run_load() {
  local server="$1" label="$2" logins="$3" prefix="$4" out="$5"
  shift 5
  log "login_load $logins logins, $WORKERS workers: $server $label"
  timeout $((MAX_SECONDS + 30)) "$LOGIN_LOAD" "${BASE[$server]}" oidc "$logins" "$WORKERS" each \
    "$prefix" "$MAX_SECONDS" --flow "$server" "$@" >"$out" 2>"$out.err" \
    || { cat "$out" "$out.err" >&2; die "login_load failed ($server $label)"; }
  grep -q '^BENCH ' "$out" || { cat "$out" >&2; die "no BENCH line from login_load"; }
}

# check_session <server> <cookie>: the session route names a user of the bench.
check_session() {
  local body
  body=$(curl -fsS --max-time 5 -H "Cookie: $2" "${BASE[$1]}${SESSION_PATH[$1]}") \
    || die "$1: GET ${SESSION_PATH[$1]} failed"
  [[ "$body" == *'"email":"'*'@example.test"'* ]] \
    || die "$1: GET ${SESSION_PATH[$1]} did not name the user: $body"
}

SERVERS=(latch authjs)
LOGINS_TSV="$TMP/logins.tsv"
SESSION_TSV="$TMP/session.tsv"
: >"$LOGINS_TSV"
: >"$SESSION_TSV"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- logins
# Discovery, the JWKS, connection pools, node's JIT: not measured.
for server in "${SERVERS[@]}"; do
  run_load "$server" "warm-up" "$WARMUP_LOGINS" "warm-$server" "$TMP/run-$server/warmup.txt"
done
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) * 1e6 / n }'; }
for round in $(seq 1 "$ROUNDS"); do
  for server in "${SERVERS[@]}"; do
    out="$TMP/run-$server/logins-$round.txt"
    s0=$(cpu_seconds "${PID[$server]}"); i0=$(cpu_seconds "${PID[idp]}"); r0=$(cpu_seconds "$REDIS_PID")
    run_load "$server" "round $round" "$LOGINS" "r$round-$server" "$out" \
      --cookie-out "$TMP/run-$server/cookie"
    s1=$(cpu_seconds "${PID[$server]}"); i1=$(cpu_seconds "${PID[idp]}"); r1=$(cpu_seconds "$REDIS_PID")
    n=$(field "$out" logins)
    [[ "$(field "$out" failures)" == 0 && "$n" == "$LOGINS" ]] || die "$server round $round: $(cat "$out")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$round" "$(field "$out" lps)" \
      "$(field "$out" p50_ms)" "$(field "$out" p99_ms)" "$(per "$s0" "$s1" "$n")" \
      "$(per "$i0" "$i1" "$n")" "$(per "$r0" "$r1" "$n")" >>"$LOGINS_TSV"
  done
done

# ---------------------------------------------------------------- the session route
declare -A COOKIE
for server in "${SERVERS[@]}"; do
  COOKIE[$server]=$(<"$TMP/run-$server/cookie")
  check_session "$server" "${COOKIE[$server]}"
done
for round in $(seq 0 "$ROUNDS"); do
  for server in "${SERVERS[@]}"; do
    url="${BASE[$server]}${SESSION_PATH[$server]}"
    out="$TMP/run-$server/wrk-$round.txt"
    if [[ $round == 0 ]]; then
      [[ "$WARMUP" != 0 ]] && run_wrk "$server (warm-up)" "$url" "${COOKIE[$server]}" "$out" "$WARMUP"
      continue
    fi
    c0=$(cpu_seconds "${PID[$server]}"); r0=$(cpu_seconds "$REDIS_PID")
    run_wrk "$server round $round" "$url" "${COOKIE[$server]}" "$out" "$DURATION"
    c1=$(cpu_seconds "${PID[$server]}"); r1=$(cpu_seconds "$REDIS_PID")
    grep -q '^BENCH ' "$out" || { cat "$out" >&2; die "no BENCH line in wrk output"; }
    non2xx=$(field "$out" non2xx); serr=$(field "$out" socket_errors)
    [[ "$non2xx" == 0 && "$serr" == 0 ]] \
      || die "$server round $round: $non2xx non-2xx responses, $serr socket errors"
    reqs=$(field "$out" requests)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$round" "$(field "$out" rps)" \
      "$(field "$out" p99_us)" \
      "$(awk -v a="$c0" -v b="$c1" -v n="$reqs" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
      "$(awk -v a="$r0" -v b="$r1" -v n="$reqs" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
      >>"$SESSION_TSV"
  done
done
# Still the same user after the load (Auth.js answers `null` with a 200 if its store fails).
for server in "${SERVERS[@]}"; do check_session "$server" "${COOKIE[$server]}"; done

PEAKS="$TMP/rss.tsv"
for server in "${SERVERS[@]}"; do
  printf '%s\t%s\t%s\n' "$server" "${IDLE[$server]}" "$(proc_kb "${PID[$server]}" VmHWM)"
done >"$PEAKS"
# The servers before the IdP and Redis they use (the EXIT trap stops in start order).
for pid in "${PID[authjs]}" "${PID[latch]}" "${PID[idp]}"; do stop_pid "$pid"; done

# ---------------------------------------------------------------- report
echo
echo "latch $VERSION beside Auth.js — $(date -u +%Y-%m-%d), $(nproc) cores;" \
  "$LOGINS logins per run, $WORKERS workers (after $WARMUP_LOGINS warm-up logins each);" \
  "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency; medians of $ROUNDS alternating rounds" \
  "(the driver, wrk, node and Redis share the cores)"
echo "$VERSIONS"
echo
python3 - "$LOGINS_TSV" "$SESSION_TSV" "$PEAKS" <<'EOF'
import csv, statistics, sys

def rows(path):
    with open(path) as f:
        return list(csv.reader(f, delimiter="\t"))

logins, session, rss = (rows(p) for p in sys.argv[1:4])
names = {"latch": "latch (Redis)", "authjs": "Auth.js (database sessions, Redis)"}

def med(table, server, col):
    values = [float(r[col]) for r in table if r[0] == server]
    return statistics.median(values), min(values), max(values)

def show(v, fmt):
    m, lo, hi = v
    if lo == hi:
        return fmt.format(m)
    return f"{fmt.format(m)} ({fmt.format(lo)}–{fmt.format(hi)})"

print("| | logins/s | login p99 ms | server CPU ms/login | IdP CPU ms/login | Redis CPU µs/login "
      "| session route req/s | its p99 ms | server CPU µs/req | RSS at start MiB | peak RSS (VmHWM) MiB |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for server in ("latch", "authjs"):
    ms = lambda v: tuple(x / 1000 for x in v)
    idle, peak = next((int(r[1]), int(r[2])) for r in rss if r[0] == server)
    print("| " + " | ".join([
        names[server],
        show(med(logins, server, 2), "{:.0f}"),
        show(med(logins, server, 4), "{:.0f}"),
        show(ms(med(logins, server, 5)), "{:.2f}"),
        show(ms(med(logins, server, 6)), "{:.1f}"),
        show(med(logins, server, 7), "{:.0f}"),
        show(med(session, server, 2), "{:.0f}"),
        show(ms(med(session, server, 3)), "{:.2f}"),
        show(med(session, server, 4), "{:.0f}"),
        f"{idle / 1024:.1f}",
        f"{peak / 1024:.1f}",
    ]) + " |")
print()
lat = {s: med(logins, s, 5)[0] for s in ("latch", "authjs")}
lps = {s: med(logins, s, 2)[0] for s in ("latch", "authjs")}
rps = {s: med(session, s, 2)[0] for s in ("latch", "authjs")}
print(f"latch: {lat['authjs'] / lat['latch']:.1f}× less server CPU per login, "
      f"{lps['latch'] / lps['authjs']:.1f}× the logins/s, "
      f"{rps['latch'] / rps['authjs']:.1f}× the session route's req/s "
      "(medians; ranges in parentheses)")
EOF
echo "session routes: latch GET /session, Auth.js GET /auth/session; RSS at start: before any request"
echo "load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
