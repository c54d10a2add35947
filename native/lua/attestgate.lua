-- attestgate for NGINX / OpenResty: the attestgate core (libattestgate.so) through LuaJIT's FFI.
--
--   local attestgate = require "attestgate"
--   local gate, err = attestgate.new(config_json)          -- nil, err on a refused config
--   local d, err = gate:decide{ method = "GET", path = "/v1/shapes", host = "api.example.com",
--                               headers = { ["approov-token"] = token }, client_addr = "127.0.0.1" }
--   attestgate.access(gate)                                -- in access_by_lua_block
--   attestgate.metrics()                                   -- in content_by_lua_block
--
-- Counters (the Envoy filter's names: attestgate.allowed, attestgate.denied.<reason>, ...)
-- are added up across workers in the shared dict named by attestgate.counters_dict (default
-- "attestgate_counters") when the config declares one: lua_shared_dict attestgate_counters 1m;
--
-- Each decision's record (the core's DecisionRecord) is left in the log variables
-- $attestgate_record and $attestgate_<field>, for log_format, when the config declares them
-- (include native/nginx/attestgate_vars.conf in the server).
--
-- The library is loaded from attestgate.library (default "libattestgate.so", found through the
-- dynamic linker's path); set it to an absolute path before the first attestgate.new.
-- The declarations below are those of native/include/attestgate.h (a test keeps them in sync).

local ffi = require "ffi"

local M = { _VERSION = "0.1.0", library = "libattestgate.so",
            counters_dict = "attestgate_counters" }

ffi.cdef [[
typedef struct attestgate_str {
    const char *ptr;
    size_t len;
} attestgate_str;

typedef struct attestgate_header {
    attestgate_str name;
    attestgate_str value;
} attestgate_header;

typedef struct attestgate_request {
    attestgate_str method;
    attestgate_str path;
    attestgate_str host;
    const attestgate_header *headers;
    size_t headers_len;
    attestgate_str client_addr;
    const uint8_t *body;
    size_t body_len;
    int has_body;
    int64_t now;
} attestgate_request;

typedef struct attestgate_decision {
    int allow;
    int monitored;
    uint16_t status;
    attestgate_str reason;
    attestgate_str body;
    const attestgate_str *remove;
    size_t remove_len;
    const attestgate_header *set;
    size_t set_len;
    const attestgate_str *counters;
    size_t counters_len;
    attestgate_str record;
    const attestgate_header *record_fields;
    size_t record_fields_len;
} attestgate_decision;

typedef struct attestgate_remote_source {
    attestgate_str upstream;
    attestgate_str authority;
    attestgate_str path;
    uint32_t refresh_seconds;
    uint32_t timeout_ms;
    size_t max_bytes;
} attestgate_remote_source;

typedef struct attestgate_gate attestgate_gate;

const char *attestgate_version(void);
int attestgate_gate_new(const char *config, size_t config_len, attestgate_gate **out,
                        attestgate_str **error);
void attestgate_gate_free(attestgate_gate *gate);
attestgate_str attestgate_gate_policy_summary(const attestgate_gate *gate);
int attestgate_needs_body(const attestgate_gate *gate, const attestgate_request *request,
                          int *needs_body, size_t *max_body_bytes);
int attestgate_decide(const attestgate_gate *gate, const attestgate_request *request,
                      attestgate_decision **out, attestgate_str **error);
int attestgate_gate_remote(const attestgate_gate *gate, int kind, attestgate_remote_source *out,
                           int *present);
int attestgate_gate_set_document(const attestgate_gate *gate, int kind, const uint8_t *body,
                                 size_t body_len, attestgate_str **error);
void attestgate_decision_free(attestgate_decision *decision);
void attestgate_string_free(attestgate_str *string);
]]

local C -- the loaded library

local function lib()
    if not C then
        C = ffi.load(M.library)
    end
    return C
end

-- The status codes of attestgate.h.
M.OK, M.ERR_NULL, M.ERR_UTF8, M.ERR_TOO_LARGE = 0, -1, -2, -3
M.ERR_CONFIG, M.ERR_THREAD, M.ERR_INTERNAL = -4, -5, -6
M.ERR_DOCUMENT, M.DOC_JWKS, M.DOC_DENYLIST = -7, 1, 2

-- The reply for a failure of the host glue or the library: fail closed, as the filter does.
M.INTERNAL_ERROR_BODY = '{"error":"internal_error","reasons":[]}'

local function str(view)
    if view.len == 0 then
        return ""
    end
    return ffi.string(view.ptr, view.len)
end

-- Takes the library's error message (and frees it).
local function take_error(code, err_box)
    local message = "attestgate error " .. tostring(code)
    if err_box[0] ~= nil then
        message = str(err_box[0][0])
        lib().attestgate_string_free(err_box[0])
        err_box[0] = nil
    end
    return message
end

local Gate = {}
Gate.__index = Gate

--- Loads a gate from its JSON config (a string). Returns the gate, or nil and the reason.
function M.new(config_json)
    if type(config_json) ~= "string" then
        return nil, "attestgate.new: the config must be a JSON string"
    end
    local ok, loaded = pcall(lib)
    if not ok then
        return nil, "cannot load " .. tostring(M.library) .. ": " .. tostring(loaded)
    end
    local out = ffi.new("attestgate_gate *[1]")
    local err_box = ffi.new("attestgate_str *[1]")
    local code = loaded.attestgate_gate_new(config_json, #config_json, out, err_box)
    if code ~= 0 then
        return nil, take_error(code, err_box)
    end
    local handle = ffi.gc(out[0], loaded.attestgate_gate_free)
    local gate = setmetatable({ handle = handle }, Gate)
    -- Which entrypoints run as a compiled plan, which stay interpreted and why.
    gate.policy_summary = str(loaded.attestgate_gate_policy_summary(handle))
    local sources, source_err = M.sources_of(gate)
    if not sources then
        return nil, source_err
    end
    gate.sources = sources
    if #sources > 0 then
        M.fetching[gate] = true
    end
    return gate
end

--- Reads a config file and loads it.
function M.new_from_file(path)
    local file, err = io.open(path, "rb")
    if not file then
        return nil, "cannot read the config: " .. tostring(err)
    end
    local text = file:read("*a")
    file:close()
    return M.new(text)
end

--- Loads a gate or raises an error naming the problem: for init_by_lua*, where an error
--- makes nginx refuse to start.
function M.init(config_json, label)
    local gate, err = M.new(config_json)
    if not gate then
        error("attestgate: refusing to start: " .. (label and (label .. ": ") or "")
            .. "the config is refused: " .. tostring(err), 0)
    end
    M.log_loaded(gate)
    return gate
end

--- Writes the gate's load line (its policy: compiled plan or interpreted) to the NGINX log.
function M.log_loaded(gate)
    if ngx and gate.policy_summary ~= "" then
        ngx.log(ngx.NOTICE, "attestgate: ", gate.policy_summary)
    end
end

--- M.init with the config read from a file.
function M.init_file(path)
    local gate, err = M.new_from_file(path)
    if not gate then
        error("attestgate: refusing to start: " .. path .. ": the config is refused: "
            .. tostring(err), 0)
    end
    M.log_loaded(gate)
    return gate
end

function M.version()
    return ffi.string(lib().attestgate_version())
end

-- Fills the C request from a Lua table; returns the cdata and the strings it points into
-- (kept alive by the caller until the call returns).
local function c_request(r)
    local req = ffi.new("attestgate_request")
    local keep = {}
    local function set_str(field, value)
        value = value or ""
        if type(value) ~= "string" then
            value = tostring(value)
        end
        keep[#keep + 1] = value
        field.ptr = value
        field.len = #value
    end
    set_str(req.method, r.method or "GET")
    set_str(req.path, r.path or "/")
    set_str(req.host, r.host)
    set_str(req.client_addr, r.client_addr)
    -- headers: { {name, value}, ... } in order, or { name = value | {value, ...} }. Read raw:
    -- ngx.req.get_headers' table (lua-resty-core) has an __index that looks any key up as a
    -- header name, so headers[1] is a header named "1", and a client sending one would
    -- otherwise turn the table into an empty list and hide every header from the gate.
    local list = {}
    local headers = r.headers or {}
    if rawget(headers, 1) ~= nil then
        for i = 1, #headers do
            list[#list + 1] = rawget(headers, i)
        end
    else
        for name, value in pairs(headers) do
            if type(value) == "table" then
                for _, v in ipairs(value) do
                    list[#list + 1] = { name, v }
                end
            else
                list[#list + 1] = { name, value }
            end
        end
    end
    local n = #list
    local array = ffi.new("attestgate_header[?]", n > 0 and n or 1)
    keep[#keep + 1] = array
    for i = 1, n do
        set_str(array[i - 1].name, list[i][1])
        set_str(array[i - 1].value, list[i][2])
    end
    req.headers = array
    req.headers_len = n
    if r.body ~= nil then
        local body = r.body
        keep[#keep + 1] = body
        req.body = ffi.cast("const uint8_t *", body)
        req.body_len = #body
        req.has_body = 1
    end
    req.now = r.now or os.time()
    return req, keep
end

--- Whether the request must be decided on its body: needs (boolean), max_body_bytes; or nil,
--- err.
function Gate:needs_body(r)
    local req, keep = c_request(r)
    local needs = ffi.new("int[1]")
    local max = ffi.new("size_t[1]")
    local code = lib().attestgate_needs_body(self.handle, req, needs, max)
    keep = keep -- alive until here
    if code ~= 0 then
        return nil, "attestgate_needs_body: error " .. tostring(code)
    end
    return needs[0] == 1, tonumber(max[0])
end

--- Decides a request: { allow, monitored, status, reason, body, remove = {names},
--- set = {{name, value}}, counters = {names}, record, record_fields = {{name, value}} }
--- (set: the request headers to set when allowed, the reply headers when denied; counters:
--- those this decision increments; record: the core's decision record as JSON text,
--- record_fields: the same as text, in DecisionRecord::FIELDS order); or nil, err (the
--- caller must then refuse the request).
function Gate:decide(r)
    local req, keep = c_request(r)
    local out = ffi.new("attestgate_decision *[1]")
    local err_box = ffi.new("attestgate_str *[1]")
    local C = lib()
    local code = C.attestgate_decide(self.handle, req, out, err_box)
    keep = keep
    if code ~= 0 then
        return nil, take_error(code, err_box)
    end
    local d = out[0]
    local result = {
        allow = d.allow == 1,
        monitored = d.monitored == 1,
        status = tonumber(d.status),
        reason = str(d.reason),
        body = str(d.body),
        remove = {},
        set = {},
        counters = {},
        record = str(d.record),
        record_fields = {},
    }
    for i = 0, tonumber(d.record_fields_len) - 1 do
        local f = d.record_fields[i]
        result.record_fields[#result.record_fields + 1] = { str(f.name), str(f.value) }
    end
    for i = 0, tonumber(d.remove_len) - 1 do
        result.remove[#result.remove + 1] = str(d.remove[i])
    end
    for i = 0, tonumber(d.set_len) - 1 do
        result.set[#result.set + 1] = { str(d.set[i].name), str(d.set[i].value) }
    end
    for i = 0, tonumber(d.counters_len) - 1 do
        result.counters[#result.counters + 1] = str(d.counters[i])
    end
    C.attestgate_decision_free(d)
    return result
end

-- Fetched documents ----------------------------------------------------------------------------
--
-- keys.remote and denylist.remote: the library fetches nothing; this module does, on a timer
-- in every worker (ngx.timer.every, started by attestgate.init_worker() in
-- init_worker_by_lua*, or by the first request a gate decides), with a bounded HTTP/1.1 GET
-- over lua-nginx-module's cosocket. The body goes to the library
-- (attestgate_gate_set_document), which parses it as the filter does and keeps the last good
-- document when it refuses one.
--
-- One fetch serves every worker when the shared dict attestgate.remote_dict (default
-- "attestgate_remote") is declared: a worker claims the fetch (dict:add of a lock), stores
-- the body it fetched there with a new version, and every worker, on its timer and before
-- each decision, hands a stored body with a newer version to its own gate. So a rotated JWKS
-- reaches all workers at their next request, and the key server sees one fetch per interval.
-- Without the dict each worker fetches for itself (the same code, on a per-worker table).
--
-- As the filter: a failed, timed-out, oversized, non-200 or refused response keeps the last
-- good document and is retried after 30 s (or refresh_seconds, if shorter); a key_not_found
-- decision pulls the next JWKS fetch forward at most once per refresh interval. Counters:
-- attestgate.{jwks,denylist}.fetch{ed,_failed}.

M.remote_dict = "attestgate_remote"
M.RETRY_SECONDS = 30
-- Bounds of a response's head: a key server answering more is refused.
M.MAX_HEADER_LINES, M.MAX_HEADER_BYTES = 100, 16384
-- Gates whose config fetches (weak: a gate no longer used is let go).
M.fetching = setmetatable({}, { __mode = "k" })

local KINDS = {
    { kind = 1, name = "jwks", field = "keys.remote",
      counters = { fetched = "attestgate.jwks.fetched", failed = "attestgate.jwks.fetch_failed" } },
    { kind = 2, name = "denylist", field = "denylist.remote",
      counters = { fetched = "attestgate.denylist.fetched",
                   failed = "attestgate.denylist.fetch_failed" } },
}

-- upstream is host:port (as on Kong's ngx_wasm_module): a name (resolved with NGINX's
-- `resolver`), an IPv4 address, or [IPv6]; the port 1-65535.
local function parse_upstream(text)
    local host, port = text:match("^%[([%x:.]+)%]:(%d+)$")
    if not host then
        host, port = text:match("^([%w.-]+):(%d+)$")
    end
    port = tonumber(port)
    if not host or not port or port < 1 or port > 65535 then
        return nil
    end
    return host, port
end

--- The gate's remote sources ({kind, name, host, port, authority, path, refresh, timeout_ms,
--- max_bytes, id}); nil, err when an upstream is not host:port (the config is then refused).
function M.sources_of(gate)
    local sources = {}
    local C = lib()
    for _, k in ipairs(KINDS) do
        local src = ffi.new("attestgate_remote_source[1]")
        local present = ffi.new("int[1]")
        local code = C.attestgate_gate_remote(gate.handle, k.kind, src, present)
        if code ~= 0 then
            return nil, "attestgate_gate_remote: error " .. tostring(code)
        end
        if present[0] == 1 then
            local s = src[0]
            local upstream = str(s.upstream)
            local host, port = parse_upstream(upstream)
            if not host then
                return nil, "`" .. k.field .. ".upstream` must be host:port here (NGINX and Kong"
                    .. " fetch it with a cosocket), not " .. string.format("%q", upstream)
            end
            local source = {
                kind = k.kind, name = k.name, counters = k.counters, host = host, port = port,
                authority = str(s.authority), path = str(s.path),
                refresh = tonumber(s.refresh_seconds), timeout_ms = tonumber(s.timeout_ms),
                max_bytes = tonumber(s.max_bytes), seen = nil,
            }
            source.retry = math.min(source.refresh, M.RETRY_SECONDS)
            local where = k.name .. "\n" .. upstream .. "\n" .. source.authority .. "\n" .. source.path
            source.id = "attestgate:" .. k.name .. ":" .. ((ngx and ngx.md5) and ngx.md5(where) or where)
            sources[#sources + 1] = source
        end
    end
    return sources
end

--- Hands a fetched body to the gate: true, or nil and the library's reason (the gate then
--- keeps its last good document).
function Gate:set_document(kind, body)
    local err_box = ffi.new("attestgate_str *[1]")
    local code = lib().attestgate_gate_set_document(self.handle, kind, body, #body, err_box)
    if code ~= 0 then
        return nil, take_error(code, err_box)
    end
    return true
end

-- The same calls as a shared dict's, on a table of this worker: where documents are kept
-- when no shared dict is declared.
local LocalStore = {}
LocalStore.__index = LocalStore

function LocalStore:get(key)
    local entry = self.t[key]
    if entry and entry.exp and entry.exp <= ngx.now() then
        self.t[key] = nil
        entry = nil
    end
    if entry then
        return entry.value, entry.flags
    end
    return nil
end

function LocalStore:set(key, value, exptime, flags)
    self.t[key] = { value = value, flags = flags,
                    exp = (exptime and exptime > 0) and (ngx.now() + exptime) or nil }
    return true
end

function LocalStore:add(key, value, exptime)
    if self:get(key) ~= nil then
        return false, "exists"
    end
    return self:set(key, value, exptime)
end

function LocalStore:delete(key)
    self.t[key] = nil
end

function LocalStore:incr(key, value, init)
    local new = (self:get(key) or init or 0) + value
    self:set(key, new)
    return new
end

local local_store = setmetatable({ t = {} }, LocalStore)

local function store()
    return (ngx.shared and ngx.shared[M.remote_dict]) or local_store
end

-- Counted by the worker that fetched; M.fetch_count_hook (the Kong plugin's Prometheus
-- counter) sees them too.
local function count_fetch(name)
    M.count({ name })
    if M.fetch_count_hook then
        pcall(M.fetch_count_hook, { name })
    end
end

-- A stored body newer than what this gate holds goes to the gate.
local function sync(gate, source, st)
    local version = st:get(source.id .. ".version")
    if version == nil or version == source.seen then
        return
    end
    local body, flags = st:get(source.id .. ".body")
    if body == nil then
        return
    end
    source.seen = flags
    local ok, err = gate:set_document(source.kind, body)
    if not ok then
        -- Only bodies the library took are stored: this is a bug, not a fetch.
        ngx.log(ngx.ERR, "attestgate: ", source.name, ": stored document refused: ", err)
    end
end

--- One bounded HTTP/1.1 GET: the body of a 200 answer, or nil and why.
function M.http_get(source)
    local deadline = ngx.now() + source.timeout_ms / 1000
    local sock = ngx.socket.tcp()
    local function left()
        local ms = math.floor((deadline - ngx.now()) * 1000)
        if ms < 1 then
            return nil
        end
        sock:settimeout(ms)
        return ms
    end
    local function fail(why)
        sock:close()
        return nil, why
    end
    left()
    local ok, err = sock:connect(source.host, source.port)
    if not ok then
        return fail("cannot connect to " .. source.host .. ":" .. source.port .. ": " .. tostring(err))
    end
    local request = "GET " .. source.path .. " HTTP/1.1\r\nHost: " .. source.authority
        .. "\r\nAccept: application/json\r\nUser-Agent: attestgate/" .. M._VERSION
        .. "\r\nConnection: close\r\n\r\n"
    if not left() then return fail("timed out") end
    ok, err = sock:send(request)
    if not ok then
        return fail("cannot send: " .. tostring(err))
    end
    if not left() then return fail("timed out") end
    local line
    line, err = sock:receive("*l")
    if not line then
        return fail("no status line: " .. tostring(err))
    end
    local status = line:match("^HTTP/1%.[01] (%d%d%d)")
    if not status then
        return fail("not an HTTP/1.x status line")
    end
    local length, chunked, head_bytes = nil, false, #line
    for i = 1, M.MAX_HEADER_LINES + 1 do
        if i > M.MAX_HEADER_LINES then
            return fail("more than " .. M.MAX_HEADER_LINES .. " header lines")
        end
        if not left() then return fail("timed out") end
        line, err = sock:receive("*l")
        if not line then
            return fail("the header ends early: " .. tostring(err))
        end
        head_bytes = head_bytes + #line
        if head_bytes > M.MAX_HEADER_BYTES then
            return fail("a head over " .. M.MAX_HEADER_BYTES .. " bytes")
        end
        if line == "" then
            break
        end
        local name, value = line:match("^([^:]+):%s*(.-)%s*$")
        name = name and name:lower()
        if name == "content-length" then
            if length ~= nil or not value:match("^%d+$") then
                return fail("a bad content-length")
            end
            length = tonumber(value)
        elseif name == "transfer-encoding" then
            chunked = value:lower() == "chunked"
            if not chunked then
                return fail("transfer-encoding " .. value)
            end
        end
    end
    if status ~= "200" then
        return fail("status " .. status)
    end
    local max = source.max_bytes
    local body
    if chunked then
        local parts, total = {}, 0
        while true do
            if not left() then return fail("timed out") end
            line, err = sock:receive("*l")
            local size = line and tonumber(line:match("^(%x+)"), 16)
            if not size then
                return fail("a bad chunk size: " .. tostring(err or line))
            end
            if size == 0 then
                break
            end
            total = total + size
            if total > max then
                return fail("a body over max_bytes (" .. max .. ")")
            end
            if not left() then return fail("timed out") end
            local data
            data, err = sock:receive(size)
            if not data then
                return fail("the body ends early: " .. tostring(err))
            end
            parts[#parts + 1] = data
            if not left() then return fail("timed out") end
            sock:receive("*l")
        end
        body = table.concat(parts)
    elseif length then
        if length > max then
            return fail("a body of " .. length .. " bytes, over max_bytes (" .. max .. ")")
        end
        if not left() then return fail("timed out") end
        body, err = sock:receive(length)
        if not body then
            return fail("the body ends early: " .. tostring(err))
        end
    else
        -- Until the server closes: at most max + 1 bytes.
        if not left() then return fail("timed out") end
        local partial
        body, err, partial = sock:receive(max + 1)
        if not body then
            if err ~= "closed" then
                return fail("reading the body: " .. tostring(err))
            end
            body = partial or ""
        end
        if #body > max then
            return fail("a body over max_bytes (" .. max .. ")")
        end
    end
    sock:close()
    return body
end

-- Fetches `source` for `gate` when it is due and no other worker has claimed it.
local function maybe_fetch(gate, source, st, now)
    if source.busy or now < (st:get(source.id .. ".next") or 0) then
        return
    end
    -- The claim lapses by itself should this worker die mid-fetch.
    local claim_for = math.ceil(source.timeout_ms / 1000) + 5
    if not st:add(source.id .. ".lock", true, claim_for) then
        return
    end
    source.busy = true
    local ok, body, err = pcall(M.http_get, source)
    if ok and body then
        local taken
        taken, err = gate:set_document(source.kind, body)
        if taken then
            local version = st:incr(source.id .. ".seq", 1, 0)
            local stored, store_err = st:set(source.id .. ".body", body, 0, version)
            if stored then
                st:set(source.id .. ".version", version)
            else
                ngx.log(ngx.ERR, "attestgate: ", source.name, ": cannot share the document (",
                    tostring(store_err), "): make lua_shared_dict ", M.remote_dict, " bigger")
            end
            source.seen = version
            st:set(source.id .. ".next", now + source.refresh)
            count_fetch(source.counters.fetched)
            ngx.log(ngx.INFO, "attestgate: ", source.name, ": fetched ", #body, " bytes")
        end
    elseif not ok then
        err = body
    end
    if err then
        st:set(source.id .. ".next", now + source.retry)
        count_fetch(source.counters.failed)
        ngx.log(ngx.WARN, "attestgate: ", source.name, ": fetch failed, keeping the last good",
            " one (retry in ", source.retry, " s): ", tostring(err))
    end
    st:delete(source.id .. ".lock")
    source.busy = false
end

local function tick(premature)
    if premature then
        return
    end
    local st = store()
    local now = ngx.time()
    for gate in pairs(M.fetching) do
        for _, source in ipairs(gate.sources) do
            local ok, err = pcall(sync, gate, source, st)
            if ok then
                ok, err = pcall(maybe_fetch, gate, source, st, now)
            end
            if not ok then
                source.busy = false
                ngx.log(ngx.ERR, "attestgate: ", source.name, ": ", tostring(err))
            end
        end
    end
end

local timer_started = false

--- Starts this worker's fetch timer (once): call it in init_worker_by_lua*. The first
--- request a fetching gate decides starts it too, should that have been left out.
function M.init_worker()
    if timer_started then
        return true
    end
    local ok, err = ngx.timer.every(1, tick)
    if not ok then
        return nil, "attestgate: cannot start the fetch timer: " .. tostring(err)
    end
    timer_started = true
    -- The first fetch now, not in a second.
    ngx.timer.at(0, tick)
    return true
end

-- Before a decision: the documents other workers stored since, and the timer.
local function before_decision(gate)
    if not timer_started then
        local ok, err = M.init_worker()
        if not ok then
            ngx.log(ngx.ERR, err)
        end
    end
    local st = store()
    for _, source in ipairs(gate.sources) do
        sync(gate, source, st)
    end
end

-- After one: an unknown kid pulls the next JWKS fetch forward, once per refresh interval,
-- so forged kids cannot make it fetch in a loop.
local function after_decision(gate, d)
    if d.reason ~= "key_not_found" then
        return
    end
    local st = store()
    for _, source in ipairs(gate.sources) do
        if source.kind == M.DOC_JWKS and st:add(source.id .. ".early", true, source.refresh) then
            st:set(source.id .. ".next", 0)
        end
    end
end

-- The decision record as a Lua table ------------------------------------------------------
--
-- For hosts that log tables (Kong's kong.log.set_serialize_value): the library's JSON record
-- read back as it was written (serde_json: objects, arrays, strings, numbers, true, false,
-- null). null is ngx.null, which Kong's serializer keeps and cjson writes as null; arrays get
-- cjson's array metatable when cjson is there, so an empty list is still written `[]`.

local cjson_ok, cjson = pcall(require, "cjson")
M.array_mt = (cjson_ok and (cjson.array_mt or cjson.empty_array_mt)) or { __jsontype = "array" }

local json_escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
                       n = "\n", r = "\r", t = "\t" }

local function utf8_of(cp)
    if cp < 0x80 then
        return string.char(cp)
    elseif cp < 0x800 then
        return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
    elseif cp < 0x10000 then
        return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40,
            0x80 + cp % 0x40)
    end
    return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
        0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local json_value

local function json_string(text, i)
    local parts = {}
    local j = i + 1
    while true do
        local k = text:find('["\\]', j)
        if not k then
            error("an unterminated string")
        end
        parts[#parts + 1] = text:sub(j, k - 1)
        if text:sub(k, k) == '"' then
            return table.concat(parts), k + 1
        end
        local e = text:sub(k + 1, k + 1)
        if e == "u" then
            local cp = tonumber(text:sub(k + 2, k + 5):match("^%x%x%x%x$") or "", 16)
            if not cp then
                error("a bad \\u escape")
            end
            j = k + 6
            local low = text:match("^\\u(%x%x%x%x)", j)
            if cp >= 0xD800 and cp < 0xDC00 and low then
                cp = 0x10000 + (cp - 0xD800) * 0x400 + (tonumber(low, 16) - 0xDC00)
                j = j + 6
            end
            parts[#parts + 1] = utf8_of(cp)
        elseif json_escapes[e] then
            parts[#parts + 1] = json_escapes[e]
            j = k + 2
        else
            error("a bad escape")
        end
    end
end

local function skip(text, i)
    return text:find("[^ \t\r\n]", i) or #text + 1
end

json_value = function(text, i)
    i = skip(text, i)
    local c = text:sub(i, i)
    if c == '"' then
        return json_string(text, i)
    elseif c == "{" then
        local object = {}
        i = skip(text, i + 1)
        if text:sub(i, i) == "}" then
            return object, i + 1
        end
        while true do
            i = skip(text, i)
            if text:sub(i, i) ~= '"' then
                error("an object key that is not a string")
            end
            local key
            key, i = json_string(text, i)
            i = skip(text, i)
            if text:sub(i, i) ~= ":" then
                error("no ':' after a key")
            end
            object[key], i = json_value(text, i + 1)
            i = skip(text, i)
            local sep = text:sub(i, i)
            if sep == "}" then
                return object, i + 1
            elseif sep ~= "," then
                error("no ',' or '}' in an object")
            end
            i = i + 1
        end
    elseif c == "[" then
        local array = setmetatable({}, M.array_mt)
        i = skip(text, i + 1)
        if text:sub(i, i) == "]" then
            return array, i + 1
        end
        while true do
            array[#array + 1], i = json_value(text, i)
            i = skip(text, i)
            local sep = text:sub(i, i)
            if sep == "]" then
                return array, i + 1
            elseif sep ~= "," then
                error("no ',' or ']' in an array")
            end
            i = i + 1
        end
    elseif text:sub(i, i + 3) == "null" then
        return ngx.null, i + 4
    elseif text:sub(i, i + 3) == "true" then
        return true, i + 4
    elseif text:sub(i, i + 4) == "false" then
        return false, i + 5
    end
    local number = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if not number or not tonumber(number) then
        error("not JSON at byte " .. i)
    end
    return tonumber(number), i + #number
end

--- The decision record (the JSON text of decision.record) as a table: nil, err when it is
--- not JSON (it always is: the library writes it).
function M.record_table(text)
    local ok, value, after = pcall(json_value, text or "", 1)
    if not ok then
        return nil, "the decision record is not JSON: " .. tostring(value)
    end
    if type(value) ~= "table" or skip(text, after) <= #text then
        return nil, "the decision record is not one JSON object"
    end
    return value
end

-- Hosts ------------------------------------------------------------------------------------
--
-- M.run(gate, host) decides the current request and carries out the answer through `host`,
-- a table of functions: gather() -> request table or nil, err; read_body(max) -> body or
-- nil, err; clear_header(name); set_header(name, value); respond(status, headers, body);
-- remember(decision) (optional); count(names) (optional); log(level, ...). M.nginx is
-- NGINX's (ngx.*); the Kong plugin (native/kong/attestgate/handler.lua) passes one made of
-- Kong's PDK.

M.INTERNAL_ERROR_HEADERS = {
    { "content-type", "application/json" },
    { "x-attestgate-reason", "internal_error" },
}

local function run(gate, host)
    local r, err = host.gather()
    if not r then
        return false, err
    end
    local needs, max = gate:needs_body(r)
    if needs == nil then
        return false, max
    end
    if needs then
        local body, body_err = host.read_body(max)
        if not body then
            return false, body_err
        end
        r.body = body
    end
    if gate.sources and #gate.sources > 0 then
        before_decision(gate)
    end
    local d, decide_err = gate:decide(r)
    if not d then
        return false, decide_err
    end
    if gate.sources and #gate.sources > 0 then
        after_decision(gate, d)
    end
    if host.remember then
        host.remember({ allow = d.allow, monitored = d.monitored, status = d.status,
                        reason = d.reason, record = d.record, record_fields = d.record_fields })
    end
    if host.count then
        host.count(d.counters)
    end
    if not d.allow then
        host.log("info", "attestgate: deny ", d.status, " reason=", d.reason)
        host.respond(d.status, d.set, d.body)
        return true
    end
    for _, name in ipairs(d.remove) do
        host.clear_header(name)
    end
    for _, h in ipairs(d.set) do
        host.set_header(h[1], h[2])
    end
    if d.monitored then
        host.log("info", "attestgate: monitored deny reason=", d.reason)
    end
    return true
end

--- Decides the current request through `host` and carries out the answer; anything
--- unexpected (no gate, a Lua error, a library error) refuses it with 500 internal_error.
function M.run(gate, host)
    local ok, done, err
    if gate == nil then
        ok, done, err = true, false, "no gate (attestgate.init makes one)"
    else
        ok, done, err = pcall(run, gate, host)
    end
    if not ok or not done then
        host.log("err", "attestgate: internal error, refusing the request: ",
            tostring(ok and err or done))
        if host.count then
            pcall(host.count, { "attestgate.errors" })
        end
        return host.respond(500, M.INTERNAL_ERROR_HEADERS, M.INTERNAL_ERROR_BODY)
    end
end

-- NGINX -------------------------------------------------------------------------------------

local nginx = {}
M.nginx = nginx

function nginx.gather()
    local headers, err = ngx.req.get_headers(0)
    if err == "truncated" then
        return nil, "request headers truncated"
    end
    return {
        method = ngx.req.get_method(),
        path = ngx.var.request_uri,
        host = ngx.var.host,
        headers = headers,
        client_addr = ngx.var.remote_addr,
        now = ngx.time(),
    }
end

-- The body, at most max + 1 bytes (that is enough to refuse a longer one).
function nginx.read_body(max)
    ngx.req.read_body()
    local data = ngx.req.get_body_data()
    if data then
        return data
    end
    local path = ngx.req.get_body_file()
    if not path then
        return ""
    end
    local file, err = io.open(path, "rb")
    if not file then
        return nil, "cannot read the buffered body: " .. tostring(err)
    end
    local chunk = file:read(max + 1) or ""
    file:close()
    return chunk
end

function nginx.clear_header(name)
    ngx.req.clear_header(name)
end

function nginx.set_header(name, value)
    ngx.req.set_header(name, value)
end

function nginx.respond(status, headers, body)
    ngx.status = status
    for _, h in ipairs(headers) do
        ngx.header[h[1]] = h[2]
    end
    ngx.header["Content-Length"] = #body
    ngx.print(body)
    return ngx.exit(ngx.HTTP_OK)
end

-- The decision record as NGINX variables, for log_format: $attestgate_record (the record as
-- JSON) and $attestgate_<field> for each field (DecisionRecord::FIELDS, from the library).
-- Lua may only assign a variable the config declares (`set $attestgate_verdict "";`, as
-- native/nginx/attestgate_vars.conf does): one the config lacks is left out, and not tried
-- again in this worker (a reload starts new workers).
local undeclared = {}

local function assign(name, value)
    ngx.var[name] = value
end

local function set_var(name, value)
    if undeclared[name] then
        return
    end
    if not pcall(assign, name, value) then
        undeclared[name] = true
    end
end

-- What was decided: for log_by_lua / header_filter_by_lua (and the tests) in ngx.ctx, and
-- for log_format in the variables above.
function nginx.remember(decision)
    ngx.ctx.attestgate = decision
    if decision.record then
        set_var("attestgate_record", decision.record)
        for _, field in ipairs(decision.record_fields or {}) do
            set_var("attestgate_" .. field[1], field[2])
        end
    end
end

-- Counters ------------------------------------------------------------------------------------

--- Adds one to each named counter in the shared dict attestgate.counters_dict, when the
--- config declares it (otherwise counting is off). Used by M.nginx and the Kong plugin.
function M.count(names)
    local dict = ngx.shared[M.counters_dict]
    if not dict then
        return
    end
    for _, name in ipairs(names) do
        local _, err = dict:incr(name, 1, 0)
        if err then
            ngx.log(ngx.WARN, "attestgate: cannot count ", name, ": ", err)
        end
    end
end

--- The counters as { {name, value}, ... } sorted by name; nil, err without the shared dict.
function M.counter_values()
    local dict = ngx.shared[M.counters_dict]
    if not dict then
        return nil, "no lua_shared_dict " .. M.counters_dict .. " (counting is off)"
    end
    local values = {}
    for _, name in ipairs(dict:get_keys(0)) do
        values[#values + 1] = { name, dict:get(name) or 0 }
    end
    table.sort(values, function(a, b) return a[1] < b[1] end)
    return values
end

--- For content_by_lua_block: the counters as text, one "name: value" a line (as Envoy's
--- /stats prints them), or in Prometheus' text format with ?format=prometheus (dots become
--- underscores, as Envoy's /stats/prometheus writes them).
function M.metrics()
    local values, err = M.counter_values()
    if not values then
        ngx.status = 404
        ngx.header["content-type"] = "text/plain"
        ngx.header["Content-Length"] = #err + 1
        ngx.say(err)
        return ngx.exit(ngx.HTTP_OK)
    end
    local prometheus = ngx.var.arg_format == "prometheus"
    local lines = {}
    for _, pair in ipairs(values) do
        if prometheus then
            local name = pair[1]:gsub("[^%w_]", "_")
            lines[#lines + 1] = "# TYPE " .. name .. " counter\n" .. name .. " " .. pair[2]
        else
            lines[#lines + 1] = pair[1] .. ": " .. pair[2]
        end
    end
    local body = table.concat(lines, "\n") .. (#lines > 0 and "\n" or "")
    ngx.header["content-type"] = prometheus and "text/plain; version=0.0.4" or "text/plain"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
    return ngx.exit(ngx.HTTP_OK)
end

nginx.count = M.count

local levels = { err = ngx and ngx.ERR, info = ngx and ngx.INFO }

function nginx.log(level, ...)
    ngx.log(levels[level] or ngx.NOTICE, ...)
end

--- For access_by_lua_block: decides the request, then either lets it on with the gate's
--- header edits or answers it with the denial. Anything unexpected refuses the request (500).
function M.access(gate)
    return M.run(gate, nginx)
end

return M
