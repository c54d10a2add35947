-- A STAND-IN for the Kong (>= 3.11) runtime around this plugin, in plain NGINX with the
-- lua-nginx-module (native/tests/nginx.rs runs it; this is not a running Kong). Each piece
-- does what Kong's source (master 22246ef) was read to do, on the real request:
--
--   * the PDK calls the handler makes, over ngx.* as kong/pdk/*.lua implement them:
--     get_headers(max) checks 1 <= max <= 1000 and passes ngx.req.get_headers' table (with
--     lua-resty-core's __index metatable) and its "truncated"; get_raw_body() reads the body
--     and returns nil and an error when NGINX buffered it to a file; kong.response.exit in the
--     access phase records a delayed response and YIELDS (the handler runs in a coroutine
--     that is never resumed), then the runloop sends it; set_serialize_value keeps the
--     values in ngx.ctx.serialize_values;
--   * the schema: the plugin's schema goes through the metaschema and make_records_required
--     (kong_schema_standin.lua) when NGINX starts, and each config through the Admin API's
--     insert validation, then select processing, as stored and read back;
--   * plugins_iterator.lua: the config table the handler receives also holds route_id,
--     service_id, consumer_id, plugin_instance_name, __plugin_id, __ws_id, __key__ and
--     __seq__; each rebuild of the plugin list hands over NEW tables, first to
--     handler:configure(configs) (every config of the plugin, or nil), then to access(conf);
--   * Kong's Prometheus plugin's exporter (get_prometheus():counter(name, help, labels),
--     metric:inc(n, label_values)), counting into the shared dict prometheus_metrics;
--   * NGINX itself runs with `underscores_in_headers on`, as Kong's template sets it.
local schema_standin = require "kong_schema_standin"

local M = {}

local function handler_path(dir, name)
    return dir .. "/attestgate/" .. name .. ".lua"
end

-- kong.db.schema.typedefs, as far as the plugin's schema uses it.
local typedefs = {
    no_consumer = { type = "foreign", reference = "consumers", eq = ngx.null },
    protocols_http = { type = "set", required = true,
        default = { "grpc", "grpcs", "http", "https" },
        elements = { type = "string", one_of = { "grpc", "grpcs", "http", "https" } } },
}

local prometheus -- the exporter stand-in's instance

local function new_prometheus()
    local registry = {}
    local p = {}
    function p:counter(name, help, label_names)
        assert(ngx.re.find(name, "^[a-zA-Z_:][a-zA-Z0-9_:]*$", "jo"), "bad metric name " .. name)
        for _, label in ipairs(label_names or {}) do
            assert(label ~= "le" and ngx.re.find(label, "^[a-zA-Z_][a-zA-Z0-9_]*$", "jo"),
                "bad label name " .. label)
        end
        if registry[name] then
            ngx.log(ngx.ERR, "Duplicate metric ", name) -- Kong's prometheus.lua logs and
            return nil                                  -- returns nothing
        end
        local metric = { name = "kong_" .. name, labels = label_names or {} }
        function metric:inc(value, label_values)
            if #(label_values or {}) ~= #self.labels then
                ngx.log(ngx.ERR, "metric '", self.name, "' has inconsistent labels count")
                return
            end
            local parts = {}
            for i, label in ipairs(self.labels) do
                parts[i] = label .. '="' .. tostring(label_values[i]) .. '"'
            end
            local key = self.name .. (#parts > 0 and ("{" .. table.concat(parts, ",") .. "}") or "")
            ngx.shared.prometheus_metrics:incr(key, value, 0)
            -- For the test: what this request counted.
            local seen = ngx.ctx.test_counted or {}
            seen[#seen + 1] = tostring(label_values and label_values[1] or self.name)
            ngx.ctx.test_counted = seen
        end
        registry[name] = metric
        return metric
    end
    return p
end

local function pdk()
    local log = function(level)
        return function(...) ngx.log(level, "[kong] ", ...) end
    end
    return {
        request = {
            get_method = function() return ngx.req.get_method() end,
            get_raw_path = function()
                local uri = ngx.var.request_uri or ""
                local s = uri:find("?", 2, true)
                return s and uri:sub(1, s - 1) or uri
            end,
            get_raw_query = function() return ngx.var.args or "" end,
            get_host = function() return ngx.var.host end,
            get_headers = function(max_headers)
                if max_headers == nil then return ngx.req.get_headers() end
                if type(max_headers) ~= "number" then error("max_headers must be a number", 2)
                elseif max_headers < 1 then error("max_headers must be >= 1", 2)
                elseif max_headers > 1000 then error("max_headers must be <= 1000", 2) end
                return ngx.req.get_headers(max_headers)
            end,
            get_raw_body = function(max_allowed_file_size)
                ngx.req.read_body()
                local body = ngx.req.get_body_data()
                if body then return body end
                local file = ngx.req.get_body_file()
                if not file then return "" end
                if not max_allowed_file_size or max_allowed_file_size < 0 then
                    return nil, "request body did not fit into client body buffer, "
                        .. "consider raising 'client_body_buffer_size'"
                end
                local f, err = io.open(file, "r")
                if not f then return nil, "failed to open cached request body: " .. err end
                local size = f:seek("end") or 0
                if max_allowed_file_size > 0 and size > max_allowed_file_size then
                    f:close()
                    return nil, ("request body file too big: %d > %d"):format(size,
                        max_allowed_file_size)
                end
                f:seek("set")
                local data = f:read("*a")
                f:close()
                return data
            end,
        },
        client = { get_forwarded_ip = function() return ngx.var.remote_addr end },
        service = { request = {
            clear_header = function(name)
                if type(name) ~= "string" then error("header name must be a string", 2) end
                ngx.req.clear_header(name)
            end,
            set_header = function(name, value)
                if type(name) ~= "string" then error("header name must be a string", 2) end
                if type(value) ~= "string" then error("header value must be a string", 2) end
                ngx.req.set_header(name, value)
            end,
        } },
        response = {
            exit = function(status, body, headers)
                if type(status) ~= "number" then error("code must be a number", 2) end
                if body ~= nil and type(body) ~= "string" and type(body) ~= "table" then
                    error("body must be a nil, string or table", 2)
                end
                if headers ~= nil and type(headers) ~= "table" then
                    error("headers must be a nil or table", 2)
                end
                local ctx = ngx.ctx
                ctx.KONG_EXITED = true
                if ctx.delay_response and not ctx.delayed_response then
                    ctx.delayed_response = { status_code = status, content = body,
                                             headers = headers }
                    coroutine.yield()
                    error("the stand-in never resumes a handler after kong.response.exit")
                end
                error("kong.response.exit outside the access phase's plugin loop")
            end,
        },
        log = {
            err = log(ngx.ERR), warn = log(ngx.WARN), notice = log(ngx.NOTICE),
            info = log(ngx.INFO), debug = log(ngx.DEBUG),
            set_serialize_value = function(key, value, options)
                if type(key) ~= "string" then error("key must be a string", 2) end
                local t = type(value)
                if not (value == nil or t == "string" or t == "number" or t == "boolean"
                    or t == "table") then
                    error("value must be a string, number, boolean or table", 2)
                end
                local values = ngx.ctx.serialize_values or {}
                values[#values + 1] = { key = key, value = value,
                                        mode = options and options.mode or "set" }
                ngx.ctx.serialize_values = values
            end,
        },
        -- kong.ctx.plugin is per plugin and per request: the runloop swaps it in.
        ctx = setmetatable({}, { __index = function(_, k)
            if k == "plugin" then
                ngx.ctx.kong_plugin_ctx = ngx.ctx.kong_plugin_ctx or {}
                return ngx.ctx.kong_plugin_ctx
            end
        end }),
    }
end

local state = {} -- per worker: the handler, the stored configs, the live config tables

--- In init_by_lua: installs the stand-in, loads and checks the plugin's schema (an error
--- stops NGINX from starting, as Kong does not start with a schema its metaschema refuses)
--- and validates each config as the Admin API would (`configs`: plugin config tables).
function M.install(dir, library, configs)
    package.loaded["kong.db.schema.typedefs"] = typedefs
    package.preload["kong.plugins.attestgate.schema"] = function()
        return dofile(handler_path(dir, "schema"))
    end
    package.preload["kong.plugins.attestgate.handler"] = function()
        return dofile(handler_path(dir, "handler"))
    end
    local attestgate = require "attestgate"
    attestgate.library = library
    kong = pdk()
    local schema = require "kong.plugins.attestgate.schema"
    local config_record, err = schema_standin.load_plugin_schema(schema)
    if not config_record then
        error("kong stand-in: the plugin's schema is refused: " .. err, 0)
    end
    state.config_record = config_record
    state.stored = {}
    for i, conf in ipairs(configs or {}) do
        if conf.unchecked then
            -- Stored without the Admin API's validation: what a data plane may hold when its
            -- library refuses what the control plane's accepted.
            conf = conf.unchecked
        else
            local ok, verr = schema_standin.validate_config(config_record, conf)
            if not ok then
                error("kong stand-in: config " .. i .. " is refused: " .. tostring(verr), 0)
            end
        end
        local inserted = schema_standin.process({ fields = { { config = config_record } } },
            { config = conf }, "insert").config
        state.stored[i] = inserted
    end
    state.handler = require "kong.plugins.attestgate.handler"
end

local seq = 0

-- plugins_iterator.lua's get_plugin_config: a fresh table read back (select), with Kong's keys.
local function live_config(i)
    local cfg = schema_standin.process({ fields = { { config = state.config_record } } },
        { config = state.stored[i] }, "select").config
    seq = seq + 1
    cfg.route_id = nil
    cfg.service_id = "5f1d6c8e-4a77-4a59-9d3e-7c1f0e2b9a10"
    cfg.consumer_id = nil
    cfg.plugin_instance_name = "attestgate-" .. i
    cfg.__plugin_id = "0c3f7d7e-2a1b-4f5e-8a6c-" .. string.format("%012d", i)
    cfg.__ws_id = "7a0e6c3d-1b2a-4c5d-9e8f-000000000001"
    cfg.__key__ = "plugins:attestgate::" .. cfg.service_id .. "::::" .. cfg.__ws_id
    cfg.__seq__ = seq
    return cfg
end

--- A rebuild of the plugin list (init_worker, then whenever Kong's config changes): new
--- config tables, handed to handler:configure(configs) as the iterator does.
function M.rebuild()
    local configs = {}
    for i in ipairs(state.stored) do configs[i] = live_config(i) end
    state.live = configs
    if state.handler.configure then
        local ok, err = pcall(state.handler.configure, state.handler, #configs > 0 and configs or nil)
        if not ok then ngx.log(ngx.ERR, "failed to execute plugin 'attestgate:configure' (", err, ")") end
    end
end

--- In init_worker_by_lua: the Prometheus exporter (when `with_prometheus`), the handler's
--- init_worker, then the first rebuild.
function M.init_worker(with_prometheus)
    if with_prometheus then
        prometheus = new_prometheus()
        package.loaded["kong.plugins.prometheus.exporter"] = {
            get_prometheus = function() return prometheus end,
        }
    end
    if state.handler.init_worker then state.handler:init_worker() end
    M.rebuild()
end

-- Kong's flush of a delayed response: status, headers, and the body (a table is sent as
-- JSON by Kong; this handler sends strings).
local function flush(response)
    ngx.status = response.status_code
    for name, value in pairs(response.headers or {}) do ngx.header[name] = value end
    local body = response.content or ""
    if type(body) == "table" then body = '{"message":"An unexpected error occurred"}' end
    ngx.header["Content-Length"] = #body
    ngx.print(body)
    return ngx.exit(ngx.HTTP_OK)
end

--- In access_by_lua: the access phase's plugin loop for config number `i` (default 1).
function M.access(i)
    local ctx = ngx.ctx
    ctx.delay_response = true
    local co = coroutine.create(state.handler.access)
    local ok, err = coroutine.resume(co, state.handler, state.live[i or 1])
    if not ok then
        ngx.log(ngx.ERR, err)
        ctx.delayed_response = { status_code = 500,
                                 content = { message = "An unexpected error occurred" } }
    end
    ctx.delay_response = nil
    if ctx.delayed_response then
        return flush(ctx.delayed_response)
    end
end

-- A serialized value as file-log writes it (cjson.encode): ngx.null as null, a table with
-- cjson's array metatable (attestgate.array_mt here, where there is no cjson) or a [1] as an
-- array, any other table as an object (keys sorted here, for the test). Kong's serializer
-- refuses what is not a string, number, boolean, ngx.null or a table of those.
local function encode(value)
    local t = type(value)
    if value == ngx.null then
        return "null"
    elseif t == "string" then
        return '"' .. value:gsub('[%c"\\]', function(c)
            return string.format("\\u%04x", c:byte())
        end) .. '"'
    elseif t == "number" or t == "boolean" then
        return tostring(value)
    elseif t == "table" then
        local parts = {}
        if getmetatable(value) == require("attestgate").array_mt or rawget(value, 1) ~= nil then
            for i = 1, #value do parts[i] = encode(value[i]) end
            return "[" .. table.concat(parts, ",") .. "]"
        end
        local keys = {}
        for k in pairs(value) do keys[#keys + 1] = k end
        table.sort(keys)
        for i, k in ipairs(keys) do parts[i] = encode(tostring(k)) .. ":" .. encode(value[k]) end
        return "{" .. table.concat(parts, ",") .. "}"
    end
    error("kong stand-in: a serialized value Kong refuses: a " .. t)
end

--- For header_filter_by_lua: what the handler left for Kong's log plugins (each value as
--- file-log's JSON writes it) and Prometheus, as response headers the test reads.
function M.report_headers()
    local parts = {}
    for _, v in ipairs(ngx.ctx.serialize_values or {}) do
        parts[#parts + 1] = v.key .. "=" .. encode(v.value)
    end
    ngx.header["x-test-serialized"] = table.concat(parts, ";")
    ngx.header["x-test-counted"] = table.concat(ngx.ctx.test_counted or {}, ",")
end

--- For content_by_lua: the Prometheus stand-in's shared dict, one `key value` a line.
function M.metrics()
    local dict = ngx.shared.prometheus_metrics
    local keys = dict:get_keys(0)
    table.sort(keys)
    local lines = {}
    for _, k in ipairs(keys) do lines[#lines + 1] = k .. " " .. tostring(dict:get(k)) end
    local body = table.concat(lines, "\n") .. "\n"
    ngx.header["Content-Length"] = #body
    ngx.print(body)
end

M.state = state
return M
