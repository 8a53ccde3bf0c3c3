-- wrk script: every connection cycles through the URL list in WRK_URLS (one path per line),
-- each wrk thread starting at its own offset, with an Accept header when WRK_ACCEPT is set; `done` prints one JSON line the harness parses.
local urls = {}
for line in io.lines(os.getenv("WRK_URLS")) do
  if #line > 0 then urls[#urls + 1] = line end
end

local threads = {}
local counter = 1

function setup(thread)
  thread:set("offset", #threads * 7919)
  threads[#threads + 1] = thread
end

function init(args)
  counter = (offset or 0) % #urls
end

local accept = os.getenv("WRK_ACCEPT")
local headers = {}
if accept and #accept > 0 then headers["Accept"] = accept end

function request()
  counter = counter + 1
  if counter > #urls then counter = 1 end
  return wrk.format("GET", urls[counter], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
