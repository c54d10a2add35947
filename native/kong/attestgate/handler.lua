-- attestgate as a Kong (>= 3.11) plugin: the native library (libattestgate.so) through the
-- LuaJIT FFI module `attestgate` (native/lua/attestgate.lua), with Kong's PDK as the host.
-- Kong 3.4 to 3.10 can run the proxy-wasm filter instead (filter/kong/).
--
-- NOT TESTED AGAINST A RUNNING KONG: native/tests/nginx.rs runs this handler in real NGINX
-- with the real library and Lua module, under a stand-in for Kong's runtime written from
-- Kong's source (native/kong/spec/kong_standin.lua; what was verified where: README.md).

local attestgate = require "attestgate"

local Handler = {
    -- After authentication plugins (which may set the consumer), before the proxy.
    PRIORITY = 1090,
    VERSION = "0.1.0",
}

-- The plugin's config as the gate's JSON config. Kong fills every absent optional field with
-- null; the gate applies its own defaults to an absent field, so nulls are left out. Kong
-- also adds its own keys to the table it hands the handler (route_id, service_id,
-- consumer_id, plugin_instance_name, __plugin_id, __ws_id, __key__, __seq__:
-- plugins_iterator.lua), which the gate would refuse as unknown fields: a record encodes
-- only the fields its schema declares. An empty Lua table is ambiguous (object or array):
-- the schema says which each field is, so the encoder here is schema-driven rather than
-- cjson's guess.
local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
                  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return escapes[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
end

local function is_null(value)
    return value == nil or value == ngx.null
end

local encode

-- cjson's array marker, when cjson is there (Kong decodes stored JSON with it).
local cjson_ok, cjson = pcall(require, "cjson")

local function is_json_array(value)
    local mt = getmetatable(value)
    if cjson_ok and mt ~= nil and (mt == cjson.array_mt or mt == cjson.empty_array_mt) then
        return true
    end
    return rawget(value, 1) ~= nil
end

local function encode_array(value, elements, out)
    out[#out + 1] = "["
    local n = 0
    for i = 1, #value do
        local v = rawget(value, i)
        if not is_null(v) then
            if n > 0 then out[#out + 1] = "," end
            local ok, err = encode(v, elements, out)
            if not ok then return nil, err end
            n = n + 1
        end
    end
    out[#out + 1] = "]"
    return true
end

encode = function(value, field, out)
    local kind = type(value)
    if kind == "string" then
        out[#out + 1] = encode_string(value)
    elseif kind == "boolean" then
        out[#out + 1] = tostring(value)
    elseif kind == "number" then
        if value ~= value or value == math.huge or value == -math.huge then
            return nil, "a number JSON cannot hold"
        end
        out[#out + 1] = (value % 1 == 0 and math.abs(value) < 2^53)
            and string.format("%d", value) or string.format("%.17g", value)
    elseif kind == "table" then
        local ftype = field and field.type
        if ftype == "array" or ftype == "set" then
            return encode_array(value, field.elements, out)
        end
        if ftype == nil or ftype == "json" then
            -- Free-form JSON: a table with [1] (or cjson's array marker) is an array,
            -- anything else an object.
            if is_json_array(value) then
                return encode_array(value, nil, out)
            end
        end
        local specs = {}
        local keys = {}
        if field and field.fields then
            -- A record: only its declared fields, whatever else the table holds.
            for _, entry in ipairs(field.fields) do
                local name, spec = next(entry)
                specs[name] = spec
                keys[#keys + 1] = name
            end
        else
            for k in pairs(value) do
                if type(k) ~= "string" then
                    return nil, "an object key that is not a string"
                end
                keys[#keys + 1] = k
            end
        end
        table.sort(keys)
        out[#out + 1] = "{"
        local n = 0
        for _, k in ipairs(keys) do
            local v = rawget(value, k)
            if not is_null(v) then
                if n > 0 then out[#out + 1] = "," end
                out[#out + 1] = encode_string(k) .. ":"
                local spec = specs[k] or (field and field.values)
                local ok, err = encode(v, spec, out)
                if not ok then return nil, err end
                n = n + 1
            end
        end
        out[#out + 1] = "}"
    else
        return nil, "a " .. kind .. " JSON cannot hold"
    end
    return true
end

local schema -- the config record of schema.lua, loaded once

local function config_record()
    if not schema then
        local plugin_schema = require "kong.plugins.attestgate.schema"
        for _, entry in ipairs(plugin_schema.fields) do
            if entry.config then
                schema = entry.config
            end
        end
    end
    return schema
end

--- The gate's JSON config text of a plugin config (also used by the schema's validator).
function Handler.config_json(conf, record)
    local out = {}
    local ok, err = encode(conf, record or config_record(), out)
    if not ok then
        return nil, "cannot encode the config: " .. tostring(err)
    end
    return table.concat(out)
end

-- Gates, per worker, keyed by their config's JSON text: Kong hands the handler new config
-- tables on every rebuild of its plugin list (plugins_iterator.lua), so a gate (and its
-- decision cache) keyed by the table would be lost each time. `by_conf` remembers which
-- entry a table encodes to, so a request does not encode its config again.
local by_text = {}
local by_conf = setmetatable({}, { __mode = "k" })

local function entry_for(conf)
    local entry = by_conf[conf]
    if entry then
        return entry
    end
    local text, err = Handler.config_json(conf)
    if text then
        entry = by_text[text]
        if not entry then
            local gate, load_err = attestgate.new(text)
            entry = { gate = gate, err = load_err, text = text }
            if not gate then
                kong.log.err("attestgate: the config is refused: ", load_err)
            end
            by_text[text] = entry
        end
    else
        entry = { err = err }
        kong.log.err("attestgate: the config is refused: ", err)
    end
    by_conf[conf] = entry
    return entry
end

--- Kong (>= 3.4) calls configure on every worker whenever it rebuilds its plugin list, with
--- every config of this plugin (nil when there is none): the gates are built here, before a
--- request needs them. A config seen before keeps its gate and caches; gates no config uses
--- any more are let go.
function Handler:configure(configs)
    local keep = {}
    for _, conf in ipairs(configs or {}) do
        local entry = entry_for(conf)
        if entry.text then
            keep[entry.text] = entry
        end
    end
    by_text = keep
end

-- Counters through Kong's Prometheus plugin, when Kong runs it: one counter,
-- kong_attestgate_total{counter="attestgate.denied.token_missing"}, labelled with the
-- filter's counter names. Registered per worker in init_worker (the exporter is initialised
-- when Kong loads the Prometheus plugin); the module is only looked up, never loaded here.
local metric

function Handler:init_worker()
    local exporter = package.loaded["kong.plugins.prometheus.exporter"]
    local prometheus = exporter and exporter.get_prometheus and exporter.get_prometheus()
    if prometheus then
        metric = prometheus:counter("attestgate_total",
            "attestgate decisions, errors and decision-cache lookups, by the filter's counter names",
            { "counter" })
        -- Fetches of keys.remote / denylist.remote are counted there too.
        attestgate.fetch_count_hook = function(names)
            for _, name in ipairs(names) do
                metric:inc(1, { name })
            end
        end
    end
    -- The timer that fetches keys.remote / denylist.remote (attestgate.lua), per worker.
    local ok, err = attestgate.init_worker()
    if not ok then
        kong.log.err(err)
    end
end

-- Kong's PDK as attestgate's host.
local pdk = {}

function pdk.gather()
    local query = kong.request.get_raw_query()
    local path = kong.request.get_raw_path()
    if query and query ~= "" then
        path = path .. "?" .. query
    end
    -- Kong caps get_headers at 1000 fields and then returns the first 1000 and "truncated":
    -- a request with more is refused rather than decided on part of its headers.
    local headers, err = kong.request.get_headers(1000)
    if not headers then
        return nil, err
    end
    if err == "truncated" then
        return nil, "more than 1000 request headers (kong.request.get_headers' limit)"
    end
    return {
        method = kong.request.get_method(),
        path = path,
        host = kong.request.get_host(),
        headers = headers,
        client_addr = kong.client.get_forwarded_ip(),
        now = ngx.time(),
    }
end

-- The body, at most max + 1 bytes (enough for the gate to refuse a longer one with 413).
-- kong.request.get_raw_body() returns nil and an error, having read nothing of it, when NGINX
-- buffered the body to a file (over client_body_buffer_size); given a size, it refuses a
-- larger file outright. So the file is read here, bounded, as the NGINX host does.
function pdk.read_body(max)
    local body, err = kong.request.get_raw_body()
    if body then
        return body:sub(1, max + 1)
    end
    local path = ngx.req.get_body_file()
    if not path then
        return nil, "cannot read the body: " .. tostring(err)
    end
    local file, open_err = io.open(path, "rb")
    if not file then
        return nil, "cannot read the buffered body: " .. tostring(open_err)
    end
    local chunk = file:read(max + 1) or ""
    file:close()
    return chunk
end

function pdk.clear_header(name)
    kong.service.request.clear_header(name)
end

function pdk.set_header(name, value)
    kong.service.request.set_header(name, value)
end

-- The record of a refusal the gate did not decide (a refused config, an internal error): the
-- decision record's fields, with nothing verified.
local function refusal_record(status, reason)
    local null = ngx.null
    return { verdict = "deny", allowed = false, mode = "enforce", status = status,
             reason = reason or "internal_error",
             policy_reasons = setmetatable({}, attestgate.array_mt), policy_reasons_dropped = 0,
             rule = null, device = null, platform = null, app_version = null, cache = null }
end

-- The decision for later phases (kong.ctx.plugin.decision) and for Kong's log plugins:
-- kong.log.set_serialize_value("attestgate", record) puts the core's decision record
-- (DecisionRecord: verdict, allowed, mode, status, reason, policy_reasons, rule, device,
-- platform, app_version, cache, ...) into what file-log, http-log, ... write, as an object.
function pdk.remember(decision)
    kong.ctx.plugin.decision = decision
    local record, err
    if decision.record then
        record, err = attestgate.record_table(decision.record)
        if not record then
            kong.log.err("attestgate: ", err)
        end
    end
    kong.log.set_serialize_value("attestgate",
        record or refusal_record(decision.status, decision.reason))
end

-- kong.response.exit does not return in the access phase (Kong yields the handler's
-- coroutine and sends the reply itself): everything must be recorded before it.
function pdk.respond(status, headers, body)
    local reply = {}
    local reason
    for _, h in ipairs(headers) do
        reply[h[1]] = h[2]
        if h[1] == "x-attestgate-reason" then
            reason = h[2]
        end
    end
    local decided = kong.ctx.plugin.decision
    if decided == nil or decided.allow then
        -- A refusal the gate did not decide (a refused config, an internal error).
        pdk.remember({ allow = false, monitored = false, status = status, reason = reason })
    end
    return kong.response.exit(status, body, reply)
end

-- Counted through Kong's Prometheus plugin (above), and in the shared dict
-- attestgate.counters_dict when Kong's config declares one
-- (nginx_http_lua_shared_dict = attestgate_counters 1m), as the NGINX host counts.
function pdk.count(names)
    attestgate.count(names)
    if metric then
        for _, name in ipairs(names) do
            metric:inc(1, { name })
        end
    end
end

function pdk.log(level, ...)
    if level == "err" then
        kong.log.err(...)
    else
        kong.log.info(...)
    end
end

Handler.pdk = pdk

function Handler:access(conf)
    local ok, entry = pcall(entry_for, conf)
    if not ok then
        kong.log.err("attestgate: cannot load the config: ", tostring(entry))
        return attestgate.run(nil, pdk) -- logs, counts and refuses: 500 internal_error
    end
    if not entry.gate then
        -- A config the library refuses: every request is refused, as the filter does.
        pdk.count({ "attestgate.denied", "attestgate.denied.config_invalid" })
        return pdk.respond(500, {
            { "content-type", "application/json" },
            { "x-attestgate-reason", "config_invalid" },
        }, '{"error":"config_invalid","reasons":[]}')
    end
    return attestgate.run(entry.gate, pdk)
end

return Handler
