-- wrk script for scripts/load-test.sh: one thread (with one connection) per gate, each
-- cycling through its gate's pre-materialized raw requests (scripts/load/prepare.py) and
-- checking every response against the case's expectation.
--
-- Environment: LOAD_CASES (cases.lua), LOAD_RESULT (where done() writes its tally).
--
-- With one connection per thread, responses arrive in the order requests were sent, so
-- `current` is always the case a response belongs to.

local cases = dofile(os.getenv("LOAD_CASES"))
local threads = {}
local assigned = 0

function setup(thread)
  assigned = assigned + 1
  local gate = cases.gates[assigned]
  if gate == nil then
    error("more wrk threads than gates: run with -t and -c equal to the number of gates")
  end
  thread.addr = wrk.lookup("127.0.0.1", tostring(gate.port))[1]
  thread:set("gate_index", assigned)
  table.insert(threads, thread)
end

function init(args)
  gate = cases.gates[gate_index]
  index = 0
  current = nil
  total, ok = 0, 0
  tally = {}      -- "<status> <reason header> <verdict>" -> count, for the counter check
  bad = {}        -- case name -> count of wrong answers
  sample = {}     -- case name -> the first wrong answer
end

function request()
  index = index % #gate.reqs + 1
  current = gate.reqs[index]
  return current.raw
end

local function header(headers, name)
  local value = headers[name]
  if value == nil or value == "-" then
    return ""
  end
  return value
end

function response(status, headers, body)
  local want = current
  if want == nil then
    return
  end
  current = nil
  total = total + 1
  local reason, verdict
  if status == 200 then
    -- Allowed: the upstream echoes what the filter set on the request (monitor mode).
    reason = header(headers, "x-upstream-reason")
    verdict = header(headers, "x-upstream-decision") == "deny" and "deny" or "allow"
  else
    reason = header(headers, "x-attestgate-reason")
    verdict = "deny"
  end
  local key = status .. " " .. (reason == "" and "-" or reason) .. " " .. verdict
  tally[key] = (tally[key] or 0) + 1

  local want_reason = want.reason
  if want.allow and want.verdict ~= "deny" then
    want_reason = ""   -- an allowed request carries no reason upstream
  end
  local right = status == want.status and reason == want_reason
  if want.verdict ~= "" and verdict ~= want.verdict then
    right = false
  end
  if right then
    ok = ok + 1
  else
    bad[want.name] = (bad[want.name] or 0) + 1
    if sample[want.name] == nil then
      sample[want.name] = string.format("expected %d %s, got %d %s (verdict %s)",
        want.status, want.reason == "" and "(no reason)" or want.reason,
        status, reason == "" and "(no reason)" or reason, verdict)
    end
  end
end

local function quote(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
  local out = {}
  table.insert(out, "{")
  table.insert(out, string.format('"requests": %d, "duration_us": %d,', summary.requests, summary.duration))
  table.insert(out, string.format('"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d},',
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status))
  table.insert(out, string.format('"latency_us": {"p50": %d, "p99": %d, "max": %d},',
    latency:percentile(50), latency:percentile(99), latency.max))
  table.insert(out, '"gates": [')
  for i, thread in ipairs(threads) do
    local g = cases.gates[thread:get("gate_index")]
    local parts = {}
    for k, v in pairs(thread:get("tally") or {}) do
      table.insert(parts, quote(k) .. ": " .. v)
    end
    local wrong = {}
    local bad = thread:get("bad") or {}
    local sample = thread:get("sample") or {}
    for k, v in pairs(bad) do
      table.insert(wrong, quote(k) .. ": {\"count\": " .. v .. ", \"first\": " .. quote(sample[k]) .. "}")
    end
    table.insert(out, string.format('{"name": %s, "cases": %d, "total": %d, "ok": %d, "tally": {%s}, "wrong": {%s}}%s',
      quote(g.name), #g.reqs, thread:get("total") or 0, thread:get("ok") or 0,
      table.concat(parts, ", "), table.concat(wrong, ", "), i < #threads and "," or ""))
  end
  table.insert(out, "]}")
  local file = assert(io.open(os.getenv("LOAD_RESULT"), "w"))
  file:write(table.concat(out, "\n"))
  file:close()
end
