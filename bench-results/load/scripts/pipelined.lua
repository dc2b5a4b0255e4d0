-- 16 pipelined GET /plaintext per write. wrk records one latency
-- sample per batch (batch written -> last response read).
--
-- wrk corrects its histogram for coordinated omission as if every sample
-- were one request: below each sample at n >= 2 * interval it adds copies
-- at n - interval, n - 2 * interval, ... (interval = runtime / (requests /
-- connections)). With 16 requests per sample the interval is 16
-- times too short, most copies land below the histogram's minimum and
-- wrk's percentiles print as 0. done() takes the copies out again and
-- prints the measured percentiles on one line for load.py.

local ffi = require("ffi")
ffi.cdef("typedef struct { uint64_t count, limit, min, max; } load_wrk_stats;")

local CONNECTIONS = 64

function init(args)
  local batch = string.rep(wrk.format("GET", "/plaintext"), 16)
  request = function()
    return batch
  end
end

-- wrk 4's stats struct is { count, limit, min, max, data[] }, one bucket
-- per microsecond; returns the buckets and the range in use.
local function histogram(latency)
  local stats = ffi.cast("load_wrk_stats **", latency)[0]
  local lo, hi = tonumber(stats.min), tonumber(stats.max)
  assert(lo == latency.min and hi == latency.max, "unexpected wrk stats layout")
  return ffi.cast("uint64_t *", stats) + 4, lo, hi
end

-- Measured samples per bucket (index v - lo + 1): the copies at v > interval
-- number the measured samples at v + interval, v + 2 * interval, ...
local function measured_counts(data, lo, hi, interval)
  local counts, above = {}, {}
  for v = hi, lo, -1 do
    local c = tonumber(data[v])
    if interval > 0 and v > interval then
      local r = v % interval
      c = math.max(0, c - (above[r] or 0))
      above[r] = (above[r] or 0) + c
    end
    counts[v - lo + 1] = c
  end
  return counts
end

local function percentiles(counts, lo, ps)
  local total = 0
  for i = 1, #counts do
    total = total + counts[i]
  end
  local out = {}
  for j, p in ipairs(ps) do
    out[j] = -1
    local rank, seen = math.max(1, math.ceil(p / 100 * total)), 0
    for i = 1, #counts do
      seen = seen + counts[i]
      if total > 0 and seen >= rank then
        out[j] = lo + i - 1
        break
      end
    end
  end
  return out, total
end

function done(summary, latency, requests)
  local data, lo, hi = histogram(latency)
  local per_connection = math.floor(summary.requests / CONNECTIONS)
  local interval = 0
  if per_connection > 0 then
    interval = math.floor(summary.duration / per_connection)
  end
  local p, samples = percentiles(measured_counts(data, lo, hi, interval), lo, {50, 75, 90, 99})
  io.write(string.format("@@batch-latency-us p50=%d p75=%d p90=%d p99=%d samples=%d\n",
                         p[1], p[2], p[3], p[4], samples))
end
