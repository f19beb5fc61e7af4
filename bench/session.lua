-- wrk script for latch: GET <path> with the session cookie from $LATCH_COOKIE
-- (e.g. "latch.session-token=..."). The same script drives /session and the empty
-- route (/healthz), so both see identical request bytes.
--
--   LATCH_COOKIE='latch.session-token=...' wrk -t2 -c64 -d15s --latency \
--       -s bench/session.lua http://127.0.0.1:3000/session
--
-- At the end it prints one machine-readable line that bench/run.sh parses:
--   BENCH rps=<requests/s> p50_us=<> p90_us=<> p99_us=<> max_us=<> requests=<> non2xx=<> socket_errors=<>

local cookie = os.getenv("LATCH_COOKIE")
if cookie and cookie ~= "" then
  wrk.headers["Cookie"] = cookie
end
wrk.method = "GET"

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d requests=%d non2xx=%d socket_errors=%d\n",
    summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))
end
