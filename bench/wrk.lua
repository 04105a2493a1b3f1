-- wrk.lua - the wrk script of every HTTP workload of `make bench` (bench/run.py).
--
-- The request is configured from the environment, so that one script serves
-- every workload and no secret lands on a command line:
--
--   BENCH_METHOD   GET (default) or POST
--   BENCH_TOKEN    bearer token; sent as "Authorization: Bearer ..." when set
--   BENCH_BODY     request body (sent with Content-Type: application/json)
--
-- The path comes from the URL given to wrk. Every request is the same, on
-- keep-alive connections (wrk -c N opens N and keeps them).
--
-- done() prints one line "BENCH_RESULT {json}" with the request count,
-- duration, errors and the latency percentiles in microseconds, which
-- run.py parses (more robust than scraping wrk's human-readable summary).

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
   wrk.headers["Authorization"] = "Bearer " .. token
end

local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean))
end
