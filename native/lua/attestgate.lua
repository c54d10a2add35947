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
} attestgate_decision;

typedef struct attestgate_gate attestgate_gate;

const char *attestgate_version(void);
int attestgate_gate_new(const char *config, size_t config_len, attestgate_gate **out,
                        attestgate_str **error);
void attestgate_gate_free(attestgate_gate *gate);
int attestgate_needs_body(const attestgate_gate *gate, const attestgate_request *request,
                          int *needs_body, size_t *max_body_bytes);
int attestgate_decide(const attestgate_gate *gate, const attestgate_request *request,
                      attestgate_decision **out, attestgate_str **error);
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
    return setmetatable({ handle = handle }, Gate)
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
    return gate
end

--- M.init with the config read from a file.
function M.init_file(path)
    local gate, err = M.new_from_file(path)
    if not gate then
        error("attestgate: refusing to start: " .. path .. ": the config is refused: "
            .. tostring(err), 0)
    end
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
--- set = {{name, value}}, counters = {names} } (set: the request headers to set when
--- allowed, the reply headers when denied; counters: those this decision increments); or
--- nil, err (the caller must then refuse the request).
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
    }
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
    local d, decide_err = gate:decide(r)
    if not d then
        return false, decide_err
    end
    if host.remember then
        host.remember({ allow = d.allow, monitored = d.monitored, status = d.status,
                        reason = d.reason })
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

-- What was decided, for log_by_lua / header_filter_by_lua (and the tests).
function nginx.remember(decision)
    ngx.ctx.attestgate = decision
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
