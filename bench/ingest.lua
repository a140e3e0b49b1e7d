-- wrk script for the ingest benchmark: every request is a different signed generic callback.
--
-- wrk -t1 -c32 -d10s -s bench/ingest.lua http://127.0.0.1:PORT -- REQUESTS_FILE
--
-- REQUESTS_FILE: line 1 is the body before the transcript id, line 2 the body after it; then
-- one line per callback: path \t webhook-id \t webhook-timestamp \t webhook-signature \t id.
-- Threads take interleaved items, so no callback is sent twice until the file is used up
-- (`generated` > `items` in the summary says it was, and the run is then not valid for
-- Callboard: the extra requests were duplicates).

local threads = {}
local items, prefix, rest = {}, "", ""
n, count, nthreads, index = 0, 0, 1, 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads - 1)
end

function init(args)
  local f = assert(io.open(args[1], "r"))
  prefix = f:read("*l")
  rest = f:read("*l")
  for line in f:lines() do
    local path, id, ts, sig, tid = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)$")
    if path then
      n = n + 1
      items[n] = { path, id, ts, sig, tid }
    end
  end
  f:close()
  nthreads = tonumber(args[2] or "1")
end

function request()
  local i = (index + count * nthreads) % n + 1
  count = count + 1
  local it = items[i]
  return wrk.format("POST", it[1], {
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "generic-transcripts/1.0",
    ["webhook-id"] = it[2],
    ["webhook-timestamp"] = it[3],
    ["webhook-signature"] = it[4],
  }, prefix .. it[5] .. rest)
end

function done(summary, latency, requests)
  local generated, items_n = 0, 0
  for _, t in ipairs(threads) do
    generated = generated + t:get("count")
    items_n = t:get("n")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d,"generated":%d,"items":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean, e.connect, e.read, e.write,
    e.status, e.timeout, generated, items_n))
end
