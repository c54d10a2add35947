-- The Kong plugin (handler.lua, schema.lua) against the real Lua module and libattestgate.so,
-- with a MINIMAL STAND-IN for the PDK calls the handler makes. This is not a running Kong:
-- native/tests/nginx.rs runs it in real NGINX (content_by_lua) and reads the report.
local M = {}

function M.run(dir, tokens, secret)
    local report = {}
    local function check(name, ok, detail)
        report[#report + 1] = (ok and "ok - " or "not ok - ") .. name
            .. ((not ok and detail) and (": " .. tostring(detail)) or "")
    end

    package.loaded["kong.db.schema.typedefs"] = {
        no_consumer = { type = "foreign", reference = "consumers", eq = ngx.null },
        protocols_http = { type = "set", elements = { type = "string" } },
    }
    package.loaded["kong.plugins.attestgate.schema"] = nil
    package.loaded["kong.plugins.attestgate.handler"] = nil
    package.preload["kong.plugins.attestgate.schema"] = function()
        return dofile(dir .. "/attestgate/schema.lua")
    end
    package.preload["kong.plugins.attestgate.handler"] = function()
        return dofile(dir .. "/attestgate/handler.lua")
    end

    local calls
    local function fake_kong(req)
        calls = { cleared = {}, set = {}, logs = {} }
        kong = {
            request = {
                get_raw_path = function() return req.path or "/" end,
                get_raw_query = function() return req.query or "" end,
                get_headers = function() return req.headers or {} end,
                get_method = function() return req.method or "GET" end,
                get_host = function() return "api.example.com" end,
                get_raw_body = function() return req.body or "" end,
            },
            client = { get_forwarded_ip = function() return "127.0.0.1" end },
            service = { request = {
                clear_header = function(n) calls.cleared[#calls.cleared + 1] = n end,
                set_header = function(n, v) calls.set[#calls.set + 1] = n .. "=" .. v end,
            } },
            response = { exit = function(status, body, headers)
                calls.exit = { status = status, body = body, headers = headers }
            end },
            log = {
                err = function(...) calls.logs[#calls.logs + 1] = table.concat({ ... }) end,
                info = function() end,
            },
            ctx = { plugin = {} },
        }
    end
    local function has(list, value)
        for _, v in ipairs(list) do
            if v == value then return true end
        end
        return false
    end

    local schema = require "kong.plugins.attestgate.schema"
    local handler = require "kong.plugins.attestgate.handler"
    local config
    for _, entry in ipairs(schema.fields) do
        if entry.config then config = entry.config end
    end
    check("the schema is a plugin schema with a config record",
        schema.name == "attestgate" and config and config.type == "record")

    -- A config as Kong hands it over: every absent optional field is null, arrays are tables.
    local function conf(extra)
        local c = {
            keys = { approov_secret = secret, keys = ngx.null, remote = ngx.null },
            claim_to_headers = { { claim = "did", header = "X-Device-Id" } },
            rules = {}, audiences = ngx.null, binding = ngx.null, policy = ngx.null,
            issuer = ngx.null, forward = false, cache = { entries = 100 }, denylist = ngx.null,
            signature = ngx.null, token = ngx.null, host_verification = ngx.null,
            mode = "enforce",
        }
        for k, v in pairs(extra or {}) do c[k] = v end
        return c
    end

    local ok, err = config.custom_validator(conf())
    check("the validator accepts a good config (nulls and an empty array)", ok == true, err)
    ok, err = config.custom_validator(conf({ mode = "sideways" }))
    check("the validator refuses a bad mode with the library's message",
        ok == nil and tostring(err):find("sideways", 1, true), err)
    ok, err = config.custom_validator(conf({ keys = { approov_secret = "short" } }))
    check("the validator refuses what the schema cannot see (a short secret)", ok == nil, err)

    local enforce = conf()
    fake_kong({ path = "/v1/shapes", query = "a=1",
        headers = { ["approov-token"] = tokens.good, ["x-device-id"] = { "spoof", "spoof2" } } })
    handler:access(enforce)
    check("allowed: no reply", calls.exit == nil, calls.exit and calls.exit.body)
    check("allowed: the token and the spoofed claim header are cleared",
        has(calls.cleared, "approov-token") and has(calls.cleared, "x-device-id")
        and has(calls.cleared, "x-attestgate-reason"), table.concat(calls.cleared, ","))
    check("allowed: the verified claim is set", has(calls.set, "x-device-id=dev-1"),
        table.concat(calls.set, ","))
    check("allowed: the decision is in kong.ctx.plugin",
        kong.ctx.plugin.decision and kong.ctx.plugin.decision.reason == "allowed")

    fake_kong({ path = "/v1/shapes", headers = { ["approov-token"] = tokens.expired } })
    handler:access(enforce)
    check("denied: 401 token_expired with the JSON body",
        calls.exit and calls.exit.status == 401
        and calls.exit.headers["x-attestgate-reason"] == "token_expired"
        and calls.exit.headers["content-type"] == "application/json"
        and calls.exit.body:find('"error":"token_expired"', 1, true) ~= nil
        and #calls.set == 0 and #calls.cleared == 0)

    fake_kong({ path = "/v1/shapes", headers = {} })
    handler:access(conf({ mode = "monitor" }))
    check("monitor: a denial goes on with the decision headers",
        calls.exit == nil and has(calls.set, "x-attestgate-decision=deny")
        and has(calls.set, "x-attestgate-reason=token_missing"), table.concat(calls.set, ","))

    fake_kong({ path = "/v1/shapes", headers = { ["approov-token"] = tokens.good } })
    handler:access(conf({ mode = "sideways" }))
    check("a config the library refuses: 500 config_invalid, logged",
        calls.exit and calls.exit.status == 500
        and calls.exit.headers["x-attestgate-reason"] == "config_invalid" and #calls.logs == 1)

    -- Counted in the shared dict the test's nginx.conf declares, under the filter's names.
    local dict = ngx.shared.attestgate_counters
    local function count(name) return dict and dict:get(name) or 0 end
    check("every decision is counted under the filter's names",
        count("attestgate.allowed") == 1 and count("attestgate.denied.token_expired") == 1
        and count("attestgate.monitored_denied.token_missing") == 1
        and count("attestgate.denied.config_invalid") == 1 and count("attestgate.denied") == 2,
        dict and table.concat(dict:get_keys(0), ",") or "no shared dict")

    return table.concat(report, "\n") .. "\n"
end

return M
