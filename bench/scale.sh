#!/usr/bin/env bash
# Sessions at scale: latch's GET /session with 1,000 and with 1,000,000 sessions in Redis,
# what a session costs Redis in memory, and what `latch sessions revoke --user` and sign-out
# everywhere cost for a user with k sessions amid all the others. See bench/README.md.
#
#   bench/scale.sh                          # what the figures in bench/README.md come from
#   BENCH_LARGE=200000 bench/scale.sh       # a quicker run
#
# Environment (and the knobs of bench/run.sh: BENCH_THREADS, BENCH_CONNECTIONS, BENCH_KEEP,
# BENCH_REV, LATCH_BIN, BENCH_PRELOAD, CARGO_TARGET_DIR):
#   BENCH_SMALL      sessions in the small Redis                        (default 1000)
#   BENCH_LARGE      sessions in the large Redis                        (default 1000000)
#   BENCH_PER_USER   sessions per user in both loads                    (default 2)
#   BENCH_PROFILE    profile shape of the loaded sessions: google | dev (default google)
#   BENCH_DURATION   wrk duration per measured run                      (default 10s)
#   BENCH_WARMUP     unrecorded wrk run per setup before the first round (default 3s; 0 = none)
#   BENCH_ROUNDS     measured wrk runs per setup, alternating small/large (default 3)
#   BENCH_KS         session counts k of the users whose sessions are revoked (default "1 10 1000 10000")
#   BENCH_REPEAT     revocations measured per k and setup; the median is shown (default 3)
#   SCALE_LOAD_BIN   use this loader binary (with LATCH_BIN; default: built with latch)
#
# Two redis-servers (small, large), each with its own `latch serve`, run side by side, so the
# wrk runs of the two alternate on the same machine state. Everything listens on 127.0.0.1
# only; every process started here is stopped on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SMALL="${BENCH_SMALL:-1000}"
LARGE="${BENCH_LARGE:-1000000}"
PER_USER="${BENCH_PER_USER:-2}"
PROFILE="${BENCH_PROFILE:-google}"
DURATION="${BENCH_DURATION:-10s}"
WARMUP="${BENCH_WARMUP:-3s}"
ROUNDS="${BENCH_ROUNDS:-3}"
KS="${BENCH_KS:-1 10 1000 10000}"
REPEAT="${BENCH_REPEAT:-3}"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

require_tools redis-server redis-cli
build_latch --bin latch --example scale_load
LOADER="${SCALE_LOAD_BIN:-$TARGET_DIR/release/examples/scale_load}"
[[ -x "$LOADER" ]] || die "no loader at $LOADER (cargo build --release --example scale_load)"
cp "$LOADER" "$TMP/scale_load" && LOADER="$TMP/scale_load"

json() { python3 -c 'import json, sys; v = json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[k]
print(v)' "$1"; }

now_ms() { awk -v n="$(date +%s%N)" 'BEGIN { printf "%.1f", n / 1e6 }'; }

# Redis commands since the last `CONFIG RESETSTAT`, not counting CONFIG and INFO themselves:
# "<all> <scan+keys> <name:calls,...>" (most called first).
commands() {
  redis-cli -h 127.0.0.1 -p "$1" INFO commandstats | tr -d '\r' | awk -F'[:=,]' '
    /^cmdstat_/ {
      name = substr($1, 9)
      if (name ~ /^(config|info)/) next
      all += $3
      if (name == "scan" || name == "keys") scan += $3
      calls[name] = $3
    }
    END {
      list = ""
      while (length(calls) > 0) {
        top = ""
        for (n in calls) if (top == "" || calls[n] > calls[top]) top = n
        list = list (list == "" ? "" : ",") top ":" calls[top]
        delete calls[top]
      }
      printf "%d %d %s\n", all, scan + 0, (list == "" ? "-" : list)
    }'
}

# "get:2000,eval:1000" over 1000 requests -> "GET 2.00, EVAL 1.00"
per_request() {
  awk -v list="$1" -v n="$2" 'BEGIN {
    k = split(list, parts, ",")
    for (i = 1; i <= k; i++) {
      split(parts[i], p, ":")
      if (p[2] / n < 0.005) continue
      printf "%s%s %.2f", (i > 1 ? ", " : ""), toupper(p[1]), p[2] / n
    }
  }'
}

median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
sessions_word() { [[ "$1" == 1 ]] && echo session || echo sessions; }
reset_stats() { redis-cli -h 127.0.0.1 -p "$1" CONFIG RESETSTAT >/dev/null; }

# ---------------------------------------------------------------- two setups
declare -A RPORT BASE CONFIG LPID RPID COOKIE
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
for setup in small large; do
  dir="$TMP/$setup"
  mkdir -p "$dir"
  RPORT[$setup]=$(free_port)
  start_redis "${RPORT[$setup]}" "$dir"
  RPID[$setup]=$REDIS_PID
  port=$(free_port)
  BASE[$setup]="http://127.0.0.1:$port"
  CONFIG[$setup]="$dir/providers.toml"
  write_config "${CONFIG[$setup]}" "$port" "redis://127.0.0.1:${RPORT[$setup]}"
  start_latch "$dir" "${CONFIG[$setup]}"
  LPID[$setup]=$LATCH_PID
  COOKIE[$setup]=$(sign_in "${BASE[$setup]}" "$dir")
  body=$(curl -fsS -H "Cookie: ${COOKIE[$setup]}" "${BASE[$setup]}/session")
  [[ "$body" == *"\"email\":\"$EMAIL\""* ]] || die "GET /session did not return the user: $body"
  log "$setup: latch on ${BASE[$setup]}, redis on ${RPORT[$setup]}; signed in"
done

# ---------------------------------------------------------------- load and memory
for setup in small large; do
  n=$SMALL; [[ $setup == large ]] && n=$LARGE
  log "$setup: loading $n sessions ($PER_USER per user, $PROFILE profile) through Sessions::create"
  "$LOADER" --redis "redis://127.0.0.1:${RPORT[$setup]}" load --sessions "$n" \
    --per-user "$PER_USER" --profile "$PROFILE" >"$TMP/$setup/load.json"
  log "$setup: $(cat "$TMP/$setup/load.json")"
done
"$LOADER" --redis "redis://127.0.0.1:${RPORT[large]}" sample >"$TMP/sample.json"
log "sample: $(cat "$TMP/sample.json")"

# ---------------------------------------------------------------- /session, small vs large
RESULTS="$TMP/results.tsv"
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  for setup in small large; do
    dir="$TMP/$setup"
    if [[ $round == 1 && "$WARMUP" != 0 ]]; then
      run_wrk "$setup /session (warm-up)" "${BASE[$setup]}/session" "${COOKIE[$setup]}" \
        "$dir/wrk-warmup.txt" "$WARMUP"
    fi
    reset_stats "${RPORT[$setup]}"
    cpu0=$(cpu_seconds "${LPID[$setup]}"); rcpu0=$(cpu_seconds "${RPID[$setup]}")
    out="$dir/wrk-$round.txt"
    run_wrk "$setup /session (round $round)" "${BASE[$setup]}/session" "${COOKIE[$setup]}" \
      "$out" "$DURATION"
    cpu1=$(cpu_seconds "${LPID[$setup]}"); rcpu1=$(cpu_seconds "${RPID[$setup]}")
    read -r all scan list < <(commands "${RPORT[$setup]}")
    grep -q '^BENCH ' "$out" || { cat "$out" >&2; die "no BENCH line in wrk output"; }
    non2xx=$(field "$out" non2xx); serr=$(field "$out" socket_errors)
    if [[ "$non2xx" != 0 || "$serr" != 0 ]]; then
      log "WARNING: $setup /session: $non2xx non-2xx responses, $serr socket errors"
    fi
    requests=$(field "$out" requests)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$setup" "$round" \
      "$(field "$out" rps)" "$(field "$out" p50_us)" "$(field "$out" p99_us)" \
      "$(awk -v a="$cpu0" -v b="$cpu1" -v n="$requests" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
      "$(awk -v a="$rcpu0" -v b="$rcpu1" -v n="$requests" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')" \
      "$(awk -v c="$all" -v n="$requests" 'BEGIN { printf "%.2f", c / n }')" "$scan" \
      "$(per_request "$list" "$requests")" >>"$RESULTS"
  done
done
for setup in small large; do
  body=$(curl -fsS -H "Cookie: ${COOKIE[$setup]}" "${BASE[$setup]}/session")
  [[ "$body" == *"\"email\":\"$EMAIL\""* ]] || die "$setup: GET /session after the runs: $body"
done

# ---------------------------------------------------------------- revocation, k sessions
REVOKES="$TMP/revokes.tsv"
: >"$REVOKES"
for setup in small large; do
  rport="${RPORT[$setup]}" base="${BASE[$setup]}" dir="$TMP/$setup"
  for k in $KS; do
    cli_times="" web_times=""
    for rep in $(seq 1 "$REPEAT"); do
      # `latch sessions revoke --user <id>`: the whole process, start-up included.
      "$LOADER" --redis "redis://127.0.0.1:$rport" user --email "cli-$k-$rep@example.com" \
        --sessions "$k" >"$dir/cli-$k.json"
      user=$(json user <"$dir/cli-$k.json")
      [[ "$(json sessions <"$dir/cli-$k.json")" == "$k" ]] || die "user cli-$k has not $k sessions"
      reset_stats "$rport"
      t0=$(now_ms)
      said=$("$BIN" sessions revoke --user "$user" --config "${CONFIG[$setup]}")
      t1=$(now_ms)
      read -r cli_cmds cli_scan cli_list < <(commands "$rport")
      [[ "$said" == "revoked $k $(sessions_word "$k") of user $user" ]] || die "revoke said: $said"
      cli_times+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"

      # Sign-out everywhere: POST /signout with everywhere=1 from one of the k sessions.
      "$LOADER" --redis "redis://127.0.0.1:$rport" user --email "web-$k-$rep@example.com" \
        --sessions "$k" >"$dir/web-$k.json"
      user=$(json user <"$dir/web-$k.json")
      token=$(json token <"$dir/web-$k.json")
      jar="$dir/csrf-$k.txt"
      csrf=$(curl -fsS -c "$jar" "$base/csrf" | json csrfToken)
      csrf_cookie=$(awk '$6 == "latch.csrf-token" { print $7 }' "$jar")
      reset_stats "$rport"
      read -r code secs < <(curl -sS -o /dev/null -w '%{http_code} %{time_total}\n' \
        -H "Cookie: latch.session-token=$token; latch.csrf-token=$csrf_cookie" \
        --data-urlencode "csrfToken=$csrf" --data "everywhere=1" "$base/signout")
      read -r web_cmds web_scan web_list < <(commands "$rport")
      [[ "$code" == 302 ]] || die "POST /signout answered $code"
      left=$(redis-cli -h 127.0.0.1 -p "$rport" SCARD "user_sessions:$user" | tr -d '\r')
      live=$("$BIN" sessions list --user "$user" --config "${CONFIG[$setup]}" | wc -l)
      [[ "$left" == 0 && "$live" == 0 ]] || die "sign-out everywhere left $left index entries, $live sessions"
      web_times+=" $(awk -v s="$secs" 'BEGIN { printf "%.1f", s * 1000 }')"
    done
    cli_ms=$(median <<<"${cli_times# }") web_ms=$(median <<<"${web_times# }")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$setup" "$k" "$cli_ms" "$cli_cmds" "$cli_scan" \
      "$web_ms" "$web_cmds" "$web_scan" "$cli_list" "$web_list" >>"$REVOKES"
    log "$setup k=$k: revoke --user${cli_times} ms ($cli_cmds commands: $cli_list)," \
      "sign-out everywhere${web_times} ms ($web_cmds commands: $web_list)"
  done
done

# ---------------------------------------------------------------- report
cores=$(nproc)
cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)
echo
echo "latch $VERSION — $(date -u +%Y-%m-%d), $cores cores ($cpu), $(redis-server --version | cut -d' ' -f3)," \
  "$PROFILE-profile sessions, $PER_USER per user"
echo
echo "Memory (loaded through Sessions::create):"
echo
printf '| %-8s | %9s | %7s | %22s | %16s |\n' setup sessions 'load s' 'used_memory delta' 'bytes per session'
echo '|----------|----------:|--------:|-----------------------:|-----------------:|'
for setup in small large; do
  f="$TMP/$setup/load.json"
  printf '| %-8s | %9s | %7.1f | %22s | %16.1f |\n' "$setup" "$(json sessions <"$f")" "$(json seconds <"$f")" \
    "$(( $(json used_memory_after <"$f") - $(json used_memory_before <"$f") ))" \
    "$(json used_memory_per_session <"$f")"
done
echo
printf '| %-7s | %9s | %11s | %12s | %25s |\n' profile 'key bytes' 'value bytes' 'MEMORY USAGE' 'index set (1 member)'
echo '|---------|----------:|------------:|-------------:|--------------------------:|'
for p in dev google; do
  printf '| %-7s | %9s | %11s | %12s | %25s |\n' "$p" "$(json "$p.key_bytes" <"$TMP/sample.json")" \
    "$(json "$p.value_bytes" <"$TMP/sample.json")" "$(json "$p.memory_usage" <"$TMP/sample.json")" \
    "$(json "$p.index_memory_usage" <"$TMP/sample.json")"
done
echo
echo "GET /session with one valid cookie (wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency; small and large alternate):"
echo
row() { printf '| %-8s | %5s | %7s | %6s | %6s | %16s | %16s | %-18s | %9s |\n' "$@"; }
row setup round 'req/s' 'p50 ms' 'p99 ms' 'latch CPU µs/req' 'redis CPU µs/req' 'Redis cmds/req' 'SCAN+KEYS'
echo '|----------|------:|--------:|-------:|-------:|-----------------:|-----------------:|:-------------------|----------:|'
while IFS=$'\t' read -r setup round rps p50 p99 cpu_req rcpu_req cmds scan list; do
  row "$setup" "$round" "$(printf '%.0f' "$rps")" "$(awk -v u="$p50" 'BEGIN{printf "%.2f", u/1000}')" \
    "$(awk -v u="$p99" 'BEGIN{printf "%.2f", u/1000}')" "$cpu_req" "$rcpu_req" "$list" "$scan"
done <"$RESULTS"
echo
awk -F'\t' '
  { n[$1]++; rps[$1] += $3; p99[$1] = p99[$1] " " $5 }
  END {
    split("small large", order, " ")
    for (i = 1; i <= 2; i++) {
      s = order[i]
      if (n[s]) printf "%s: mean %.0f req/s over %d rounds; p99 µs:%s\n", s, rps[s] / n[s], n[s], p99[s]
    }
    if (n["small"] && n["large"])
      printf "large ÷ small req/s = %.2f\n", (rps["large"] / n["large"]) / (rps["small"] / n["small"])
  }' "$RESULTS"
echo
echo "Revoking the k sessions of one user amid the others (median of $REPEAT; revoke: the whole CLI" \
  "process, start-up included; sign-out: curl time_total of POST /signout everywhere=1):"
echo
printf '| %-8s | %5s | %18s | %10s | %9s | %22s | %10s | %9s |\n' setup k 'revoke --user ms' 'Redis cmds' 'SCAN+KEYS' 'sign-out everywhere ms' 'Redis cmds' 'SCAN+KEYS'
echo '|----------|------:|-------------------:|-----------:|----------:|-----------------------:|-----------:|----------:|'
while IFS=$'\t' read -r setup k cli_ms cli_cmds cli_scan web_ms web_cmds web_scan _ _; do
  printf '| %-8s | %5s | %18s | %10s | %9s | %22s | %10s | %9s |\n' "$setup" "$k" "$cli_ms" "$cli_cmds" \
    "$cli_scan" "$web_ms" "$web_cmds" "$web_scan"
done <"$REVOKES"
echo
echo "Redis commands of one revocation (large setup):"
while IFS=$'\t' read -r setup k _ _ _ _ _ _ cli_list web_list; do
  [[ "$setup" == large ]] && echo "  k=$k: revoke --user: $cli_list; sign-out everywhere: $web_list"
done <"$REVOKES"
echo
for setup in small large; do
  printf '%s: redis used_memory %s, %s keys, latch peak RSS %.1f MiB\n' "$setup" \
    "$(redis-cli -h 127.0.0.1 -p "${RPORT[$setup]}" INFO memory | tr -d '\r' | sed -n 's/^used_memory_human://p')" \
    "$(redis-cli -h 127.0.0.1 -p "${RPORT[$setup]}" DBSIZE | tr -d '\r')" \
    "$(awk '{ printf "%.1f", $1 / 1024 }' <<<"$(proc_kb "${LPID[$setup]}" VmHWM)")"
done
echo "load average before: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg)"
