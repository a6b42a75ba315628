-- wrk script: Greeter.Hello {"name":"John"} with Go Micro's http transport
-- headers, as a Go Micro client sends them.
--   wrk -t1 -c64 -d5s -s bench/greeter.lua http://127.0.0.1:PORT/
-- BENCH_SIZE=N in the environment sends a name of N 'x' bytes instead
-- (the 1 KB payload variant is BENCH_SIZE=1024). BENCH_CODEC=protobuf
-- sends greeter.proto's Request (field 1 = name) as application/protobuf.
local size = tonumber(os.getenv("BENCH_SIZE") or "0") or 0
local name = "John"
if size > 0 then
   name = string.rep("x", size)
end
wrk.method = "POST"
if os.getenv("BENCH_CODEC") == "protobuf" then
   -- tag 0x0a, the length as a varint, the bytes
   local n, len = #name, ""
   while n >= 128 do
      len = len .. string.char(128 + n % 128)
      n = math.floor(n / 128)
   end
   wrk.body = string.char(10) .. len .. string.char(n) .. name
   wrk.headers["Content-Type"] = "application/protobuf"
else
   wrk.body = '{"name":"' .. name .. '"}'
   wrk.headers["Content-Type"] = "application/json"
end
wrk.headers["Micro-Endpoint"] = "Greeter.Hello"
wrk.headers["Micro-Service"] = "greeter"
wrk.headers["Micro-Method"] = "Greeter.Hello"
wrk.headers["Micro-Id"] = "1"
wrk.headers["Timeout"] = "5000000000"

-- One machine-readable line after wrk's own report. Latencies are in
-- microseconds; errors counts socket errors plus non-2xx/3xx replies.
function done(summary, latency, requests)
   local e = summary.errors
   local errs = e.connect + e.read + e.write + e.timeout + e.status
   io.write(string.format(
      'WRKJSON {"calls_per_s":%.0f,"p50_us":%.1f,"p99_us":%.1f,' ..
      '"p999_us":%.1f,"errors":%d}\n',
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50), latency:percentile(99),
      latency:percentile(99.9), errs))
end
