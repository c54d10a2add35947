-- The Kong plugin's schema and config handling under the Kong stand-in (kong_standin.lua,
-- kong_schema_standin.lua), with the real Lua module and libattestgate.so. This is not a
-- running Kong: native/tests/nginx.rs runs it in real NGINX (content_by_lua) and reads the
-- report; the request path is tested there with real requests through the same stand-in.
local M = {}

function M.run(secret)
    local report = {}
    local function check(name, ok, detail)
        report[#report + 1] = (ok and "ok - " or "not ok - ") .. name
            .. ((not ok and detail) and (": " .. tostring(detail)) or "")
    end

    local standin = require "kong_standin"
    local schema_standin = require "kong_schema_standin"
    local attestgate = require "attestgate"
    local handler = require "kong.plugins.attestgate.handler"
    local schema = require "kong.plugins.attestgate.schema"
    local record = standin.state.config_record

    check("the schema passes the metaschema stand-in", schema_standin.check_plugin_schema(schema))
    check("the schema is a plugin schema with a config record",
        schema.name == "attestgate" and record and record.type == "record")

    -- What the Admin API stores and the handler is then given (select), as JSON for the gate.
    local function stored_json(conf)
        local ok, err = schema_standin.validate_config(record, conf)
        if not ok then return nil, err end
        local wrap = { fields = { { config = record } } }
        local inserted = schema_standin.process(wrap, { config = conf }, "insert").config
        local selected = schema_standin.process(wrap, { config = inserted }, "select").config
        return handler.config_json(selected)
    end

    -- Kong makes every nested record without `required = false` required and fills it in:
    -- a minimal config must come through as it was given.
    local minimal = '{"keys":{"approov_secret":"' .. secret .. '"}}'
    local text, err = stored_json({ keys = { approov_secret = secret } })
    check("a minimal config passes Kong's validation and reaches the gate as given",
        text == minimal, text or err)
    check("... and the gate loads it", text and attestgate.new(text) ~= nil)

    -- A json field absent is null to Kong's validation (policy.data).
    local modules = { ["p.rego"] = "package attestgate\nimport rego.v1\ndefault allow := true\n" }
    text, err = stored_json({ keys = { approov_secret = secret },
        policy = { modules = modules, entrypoint = "data.attestgate.allow" } })
    check("a policy without data (a null json field) passes Kong's validation",
        text ~= nil and not text:find('"data"', 1, true), text or err)
    text, err = stored_json({ keys = { approov_secret = secret },
        policy = { modules = modules, entrypoint = "data.attestgate.allow",
                   data = { device_trust = { min = 3 } } } })
    check("policy data (a json object) reaches the gate",
        text ~= nil and text:find('"data":{"device_trust":{"min":3}}', 1, true), text or err)

    local ok
    ok, err = schema_standin.validate_config(record, { keys = { approov_secret = secret },
        mode = "sideways" })
    check("a bad mode is refused", ok == nil and tostring(err):find("mode", 1, true), err)
    ok, err = schema_standin.validate_config(record, { keys = { approov_secret = "short" } })
    check("what the schema cannot see (a short secret) is refused by the library",
        ok == nil and tostring(err):find("secret", 1, true), err)
    ok, err = schema_standin.validate_config(record, { mode = "monitor" })
    check("neither keys nor host_verification is refused (at_least_one_of)", ok == nil, err)
    ok, err = schema_standin.validate_config(record, { keys = { approov_secret = secret },
        moode = "monitor" })
    check("an unknown field is refused", ok == nil and tostring(err):find("moode", 1, true), err)
    ok, err = schema_standin.validate_config(record, { keys = { approov_secret = secret },
        claim_to_headers = { { claim = "did", header = "X-Device-Id" } }, rules = {} })
    check("an empty array and a list of records pass", ok == true, err)

    ok, err = schema_standin.validate_config(record, { keys = { approov_secret = secret },
        token = { prefix = "" } })
    check("an empty string is refused (Kong's strings have len_min 1 unless they say)",
        ok == nil and tostring(err):find("prefix", 1, true), err)

    -- The stand-in itself: it must refuse what Kong refuses, or the checks above prove little.
    local function tiny(description, inner)
        return { name = "tiny", fields = { { config = { type = "record", fields = {
            { a = { type = "string", description = description } },
            { inner = inner },
        } } } } }
    end
    local inner = { type = "record", fields = { { x = { type = "string", required = true } } } }
    check("stand-in: a 9-byte description is refused",
        schema_standin.check_plugin_schema(tiny("Key type.", inner)) == nil)
    check("stand-in: a 501-byte description is refused",
        schema_standin.check_plugin_schema(tiny(string.rep("d", 501), inner)) == nil)
    local tiny_record = schema_standin.load_plugin_schema(tiny("Ten bytes!", inner))
    ok = tiny_record and schema_standin.validate_config(tiny_record, { a = "v" })
    check("stand-in: a nested record without required = false is made required and filled in",
        tiny_record and not ok)
    local optional = { type = "record", required = false, fields = inner.fields }
    tiny_record = schema_standin.load_plugin_schema(tiny("Ten bytes!", optional))
    check("stand-in: ... and one with required = false stays optional",
        tiny_record and schema_standin.validate_config(tiny_record, { a = "v" }) == true)
    local json_record = schema_standin.load_plugin_schema({ name = "tiny", fields = { { config = {
        type = "record", fields = { { d = { type = "json",
            json_schema = { inline = { type = "object" } } } } } } } } })
    check("stand-in: a null json field fails type = object",
        json_record and schema_standin.validate_config(json_record, {}) == nil)

    -- The table the handler receives also holds Kong's own keys: never the gate's business.
    local live = standin.state.live[1]
    check("the stand-in hands over Kong's keys", live.__key__ and live.__seq__
        and live.service_id and live.__plugin_id and live.__ws_id ~= nil)
    text, err = handler.config_json(live)
    check("Kong's keys are not encoded", text and not text:find("__", 1, true)
        and not text:find("service_id", 1, true) and not text:find("plugin_instance_name", 1, true),
        text or err)
    local gate, gate_err = attestgate.new(text or "")
    check("the config Kong hands over loads", gate ~= nil, gate_err)

    return table.concat(report, "\n") .. "\n"
end

return M
