-- attestgate as a Kong (>= 3.11) plugin: the native library (libattestgate.so) through the
-- LuaJIT FFI module `attestgate` (native/lua/attestgate.lua), with Kong's PDK as the host.
-- Kong 3.4 to 3.10 can run the proxy-wasm filter instead (filter/kong/).
--
-- NOT TESTED AGAINST A RUNNING KONG: native/tests/nginx.rs runs this handler in real NGINX
-- with the real library and Lua module, but with a minimal stand-in for the PDK calls below.

local attestgate = require "attestgate"

local Handler = {
    -- After authentication plugins (which may set the consumer), before the proxy.
    PRIORITY = 1090,
    VERSION = "0.1.0",
}

-- The plugin's config as the gate's JSON config. Kong fills every absent optional field with
-- null; the gate applies its own defaults to an absent field, so nulls are left out. An empty
-- Lua table is ambiguous (object or array): the schema says which each field is, so the
-- encoder here is schema-driven rather than cjson's guess.
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

local function encode_array(value, elements, out)
    out[#out + 1] = "["
    local n = 0
    for _, v in ipairs(value) do
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
            -- Free-form JSON: a table with [1] is an array, anything else an object.
            if value[1] ~= nil then
                return encode_array(value, nil, out)
            end
        end
        local specs = {}
        if field and field.fields then
            for _, entry in ipairs(field.fields) do
                local name, spec = next(entry)
                specs[name] = spec
            end
        end
        local keys = {}
        for k in pairs(value) do
            if type(k) ~= "string" then
                return nil, "an object key that is not a string"
            end
            keys[#keys + 1] = k
        end
        table.sort(keys)
        out[#out + 1] = "{"
        local n = 0
        for _, k in ipairs(keys) do
            local v = value[k]
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

-- One gate per plugin config, per worker. Kong hands the same conf table to every request
-- until the config changes; a changed config is a new table, so a new gate.
local gates = setmetatable({}, { __mode = "k" })

local function gate_for(conf)
    local entry = gates[conf]
    if entry then
        return entry.gate, entry.err
    end
    local text, err = Handler.config_json(conf)
    local gate
    if text then
        gate, err = attestgate.new(text)
    end
    gates[conf] = { gate = gate, err = err }
    if not gate then
        kong.log.err("attestgate: the config is refused: ", err)
    end
    return gate, err
end

-- Kong's PDK as attestgate's host.
local pdk = {}

function pdk.gather()
    local query = kong.request.get_raw_query()
    local path = kong.request.get_raw_path()
    if query and query ~= "" then
        path = path .. "?" .. query
    end
    -- Kong caps get_headers at 1000 fields; a request with more is refused rather than
    -- decided on part of its headers.
    local headers, err = kong.request.get_headers(1000)
    if not headers then
        return nil, err
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

function pdk.read_body(max)
    local body, err = kong.request.get_raw_body()
    if not body then
        return nil, "cannot read the body: " .. tostring(err)
    end
    return body:sub(1, max + 1)
end

function pdk.clear_header(name)
    kong.service.request.clear_header(name)
end

function pdk.set_header(name, value)
    kong.service.request.set_header(name, value)
end

function pdk.respond(status, headers, body)
    local reply = {}
    for _, h in ipairs(headers) do
        reply[h[1]] = h[2]
    end
    return kong.response.exit(status, body, reply)
end

function pdk.remember(decision)
    kong.ctx.plugin.decision = decision
end

-- Counted in the shared dict attestgate.counters_dict when Kong's config declares it
-- (nginx_http_lua_shared_dict = attestgate_counters 1m).
pdk.count = attestgate.count

function pdk.log(level, ...)
    if level == "err" then
        kong.log.err(...)
    else
        kong.log.info(...)
    end
end

Handler.pdk = pdk

function Handler:access(conf)
    local gate, err = gate_for(conf)
    if not gate then
        -- A config the library refuses: every request is refused, as the filter does.
        pdk.count({ "attestgate.denied", "attestgate.denied.config_invalid" })
        return kong.response.exit(500, '{"error":"config_invalid","reasons":[]}', {
            ["content-type"] = "application/json",
            ["x-attestgate-reason"] = "config_invalid",
        })
    end
    return attestgate.run(gate, pdk)
end

return Handler
