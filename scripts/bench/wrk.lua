-- wrk script for scripts/bench-gateway.sh: one thread (wrk -t1), GET /v1/shapes with the
-- token in `approov-token` and `authorization: Bearer bench-user` (the token's binding).
--
-- Environment:
--   BENCH_TOKENS  a file of tokens, one per line
--   BENCH_FRESH   1: a fresh token per request, taken in order from line BENCH_START + 1 on
--                 (so the measured run goes on where the warm-up stopped and no token repeats);
--                 otherwise the first line, repeated (wrk's static request: no Lua per request)
--   BENCH_ZIPF    1: the file is a fleet, one token per device; each request picks a device
--                 Zipf-distributed (exponent 1, fixed seed), so popular devices repeat and
--                 the long tail does not
--   BENCH_SIGNED  1: each line is `token<TAB>Signature-Input<TAB>Signature` (with BENCH_FRESH):
--                 a signed request, sent once
--   BENCH_START   lines already used (default 0)
--   BENCH_RESULT  where done() writes its JSON summary
--
-- No response() callback: it would make wrk parse every response into Lua tables and slow the
-- client. The script checks statuses from wrk's count of answers >= 400 and Envoy's stats.

local fresh = os.getenv("BENCH_FRESH") == "1"
local zipf = os.getenv("BENCH_ZIPF") == "1"
local signed = os.getenv("BENCH_SIGNED") == "1"
local start = tonumber(os.getenv("BENCH_START") or "0")
local worker = nil

local function read_tokens(limit)
  local tokens = {}
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if line ~= "" then
      tokens[#tokens + 1] = line
      if limit and #tokens >= limit then break end
    end
  end
  assert(#tokens > 0, "no tokens in " .. os.getenv("BENCH_TOKENS"))
  return tokens
end

function setup(thread)
  worker = thread
end

function init(args)
  wrk.method = "GET"
  wrk.path = "/v1/shapes"
  wrk.headers["authorization"] = "Bearer bench-user"
  if not fresh and not zipf then
    wrk.headers["approov-token"] = read_tokens(1)[1]
    return
  end
  tokens = read_tokens()
  if zipf then
    -- The cumulative Zipf weights 1/k over the devices; a request bisects it.
    cdf, total = {}, 0
    for k = 1, #tokens do
      total = total + 1 / k
      cdf[k] = total
    end
    math.randomseed(20261201)
  end
  pool_size = #tokens
  sent = start
  -- The request with a marker where the token goes, split once: each request is then two
  -- concatenations (wrk.format per request would be slower).
  wrk.headers["approov-token"] = "@@TOKEN@@"
  if signed then
    -- The three fields of a line go where the three markers are.
    wrk.headers["signature-input"] = "@@INPUT@@"
    wrk.headers["signature"] = "@@SIGNATURE@@"
    local template = wrk.format()
    pieces = {}
    local rest = template
    for _, marker in ipairs({"@@TOKEN@@", "@@INPUT@@", "@@SIGNATURE@@"}) do
      local from, to = rest:find(marker, 1, true)
      pieces[#pieces + 1] = { marker = marker, at = from }
    end
    table.sort(pieces, function(a, b) return a.at < b.at end)
    order, parts = {}, {}
    local cursor = 1
    for i, piece in ipairs(pieces) do
      local from, to = template:find(piece.marker, cursor, true)
      parts[i] = template:sub(cursor, from - 1)
      order[i] = ({ ["@@TOKEN@@"] = 1, ["@@INPUT@@"] = 2, ["@@SIGNATURE@@"] = 3 })[piece.marker]
      cursor = to + 1
    end
    parts[4] = template:sub(cursor)
    -- Each line split once, up front.
    for i, line in ipairs(tokens) do
      local t, input, signature = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)$")
      assert(t, "line " .. i .. " of " .. os.getenv("BENCH_TOKENS") .. " is not token, input, signature")
      tokens[i] = { t, input, signature }
    end
    return
  end
  local template = wrk.format()
  local from, to = template:find("@@TOKEN@@", 1, true)
  prefix, suffix = template:sub(1, from - 1), template:sub(to + 1)
end

if zipf then
  function request()
    sent = sent + 1
    local u, lo, hi = math.random() * total, 1, #tokens
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
    end
    return prefix .. tokens[lo] .. suffix
  end
elseif signed then
  function request()
    sent = sent + 1
    local fields = tokens[(sent - 1) % #tokens + 1]
    return parts[1] .. fields[order[1]] .. parts[2] .. fields[order[2]] .. parts[3]
      .. fields[order[3]] .. parts[4]
  end
elseif fresh then
  function request()
    sent = sent + 1
    -- Past the end of the pool tokens would repeat; done() reports it and the script fails.
    return prefix .. tokens[(sent - 1) % #tokens + 1] .. suffix
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local out = string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d, "status": %d}, "latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"max": %d}, "fresh": %s, "zipf": %s, "start": %d, "sent": %d, "pool": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, fresh and "true" or "false", zipf and "true" or "false", start,
    (fresh or zipf) and worker:get("sent") or 0, (fresh or zipf) and worker:get("pool_size") or 0)
  local file = assert(io.open(os.getenv("BENCH_RESULT"), "w"))
  file:write(out)
  file:close()
end
