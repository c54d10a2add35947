-- A STAND-IN for the parts of Kong's schema library (kong/db/schema/{metaschema,entity,init}.lua)
-- that decide what happens to this plugin's schema and config. Written from Kong's source
-- (master 22246ef) and checked against Kong's real code run by hand (native/kong/README.md);
-- it models only what a schema made of this generator's field types meets:
--
--   * the metaschema: known field types and attributes, the attributes each type must have,
--     those a type may not have, descriptions of 10 to 500 bytes, json_schema only on json;
--   * Entity.new_subschema's make_records_required: a nested record without
--     `required = false` becomes required;
--   * process_auto_fields: on insert an absent field is null, an absent required record is
--     filled in; on select (what a handler gets) null is dropped, again filling required
--     records, and an empty string in a string field is dropped;
--   * validation: types, `required`, strings non-empty unless len_min says otherwise,
--     one_of / between / len_min / len_max, json fields against their inline JSON schema's
--     `type` (even when null), at_least_one_of, unknown fields refused, custom_validator.
local M = {}

local null = ngx.null

local VALID_TYPES = { array = true, set = true, string = true, number = true, boolean = true,
                      integer = true, foreign = true, map = true, record = true,
                      ["function"] = true, json = true }

-- metaschema.lua's field_schema (plus the validators and the recursive attributes).
local ATTRIBUTES = {}
for _, name in ipairs({ "type", "required", "reference", "description", "examples", "auto",
    "unique", "unique_across_ws", "on_delete", "default", "abstract", "generate_admin_api",
    "immutable", "err", "encrypted", "referenceable", "json_schema", "transient", "deprecation",
    "between", "eq", "ne", "gt", "len_eq", "len_min", "len_max", "match", "not_match",
    "match_all", "match_none", "match_any", "starts_with", "one_of", "not_one_of", "contains",
    "is_regex", "timestamp", "uuid", "custom_validator", "mutually_exclusive_subsets",
    "elements", "keys", "values", "fields", "entity_checks", "shorthand_fields" }) do
    ATTRIBUTES[name] = true
end

local REQUIRED_ATTRIBUTES = { array = { "elements" }, set = { "elements" },
                              map = { "keys", "values" }, record = { "fields" },
                              json = { "json_schema" } }

-- metaschema.lua's attribute_types: the types an attribute is allowed on.
local ATTRIBUTE_TYPES = {
    between = { integer = true, number = true },
    len_eq = { array = true, set = true, string = true, map = true },
    match = { string = true },
    one_of = { string = true, number = true, integer = true },
    contains = { array = true, set = true },
    json_schema = { json = true },
}

local ENTITY_CHECKERS = { at_least_one_of = true, conditional_at_least_one_of = true,
    only_one_of = true, distinct = true, conditional = true, custom_entity_check = true,
    mutually_required = true, mutually_exclusive = true, mutually_exclusive_sets = true }

local JSON_TYPES = { object = true, array = true, string = true, number = true,
                     integer = true, boolean = true, null = true }

local check_field

local function check_fields(path, record, errors)
    if type(record.fields) ~= "table" then
        errors[#errors + 1] = path .. ": fields must be a table"
        return
    end
    for i, entry in ipairs(record.fields) do
        local name, spec = next(entry)
        if type(name) ~= "string" then
            errors[#errors + 1] = path .. ": each key in fields must be a string (" .. i .. ")"
        elseif type(spec) ~= "table" then
            errors[#errors + 1] = path .. "." .. name .. ": must be a table"
        else
            check_field(path .. "." .. name, spec, errors)
        end
    end
    for _, check in ipairs(record.entity_checks or {}) do
        local name, arg = next(check)
        if not ENTITY_CHECKERS[name] or next(check, name) ~= nil then
            errors[#errors + 1] = path .. ": an entity check must be one known checker"
        elseif name == "at_least_one_of" then
            for _, field_name in ipairs(arg) do
                local found = false
                for _, entry in ipairs(record.fields) do
                    if next(entry) == field_name then found = true end
                end
                if not found then
                    errors[#errors + 1] = path .. ": at_least_one_of names no field "
                        .. tostring(field_name)
                end
            end
        end
    end
end

check_field = function(path, field, errors)
    local function fail(message) errors[#errors + 1] = path .. ": " .. message end
    if not VALID_TYPES[field.type] then
        return fail("missing or unknown type " .. tostring(field.type))
    end
    for attr, value in pairs(field) do
        if not ATTRIBUTES[attr] then
            fail("unknown attribute " .. tostring(attr))
        elseif ATTRIBUTE_TYPES[attr] and not ATTRIBUTE_TYPES[attr][field.type] then
            fail("field of type '" .. field.type .. "' cannot have attribute '" .. attr .. "'")
        end
        if (attr == "required" or attr == "unique") and type(value) ~= "boolean" then
            fail(attr .. " must be a boolean")
        end
        if (attr == "len_min" or attr == "len_max" or attr == "len_eq")
            and (type(value) ~= "number" or value % 1 ~= 0) then
            fail(attr .. " must be an integer")
        end
        if attr == "between" and (type(value) ~= "table" or #value ~= 2
            or type(value[1]) ~= "number" or type(value[2]) ~= "number") then
            fail("between must be two numbers")
        end
        if attr == "one_of" and (type(value) ~= "table" or #value == 0) then
            fail("one_of must be an array")
        end
        if attr == "custom_validator" and type(value) ~= "function" then
            fail("custom_validator must be a function")
        end
    end
    if field.description ~= nil then
        local d = field.description
        if type(d) ~= "string" then
            fail("description must be a string")
        elseif #d < 10 or #d > 500 then
            fail("description: length must be from 10 to 500 (is " .. #d .. "): " .. d)
        end
    end
    for _, required in ipairs(REQUIRED_ATTRIBUTES[field.type] or {}) do
        if field[required] == nil then
            fail("field of type '" .. field.type .. "' must declare '" .. required .. "'")
        end
    end
    if field.type == "json" and type(field.json_schema) == "table" then
        local inline = field.json_schema.inline
        if type(inline) ~= "table" then
            fail("json_schema: only inline schemas are modelled here")
        else
            local kinds = type(inline.type) == "table" and inline.type or { inline.type }
            for _, kind in ipairs(kinds) do
                if not JSON_TYPES[kind] then fail("json_schema: unknown JSON type " .. tostring(kind)) end
            end
        end
    end
    for _, nested in ipairs({ "elements", "keys", "values" }) do
        if field[nested] ~= nil then
            if type(field[nested]) ~= "table" then
                fail("'" .. nested .. "' must be a table")
            else
                check_field(path .. "." .. nested, field[nested], errors)
            end
        end
    end
    if field.type == "record" and field.fields then
        check_fields(path, field, errors)
    end
end

--- The metaschema's verdict on a plugin schema: true, or nil and the list of errors.
function M.check_plugin_schema(schema)
    local errors = {}
    if type(schema.name) ~= "string" then errors[#errors + 1] = "name: required" end
    check_fields(tostring(schema.name), schema, errors)
    if #errors > 0 then return nil, errors end
    return true
end

-- Entity.new_subschema: every nested record without `required = false` is required.
local function make_records_required(field)
    if field.required == nil then
        field.required = true
    end
    for _, entry in ipairs(field.fields or {}) do
        local _, f = next(entry)
        if f.type == "record" then
            make_records_required(f)
        end
    end
end

local function copy(value)
    if type(value) ~= "table" then return value end
    local out = {}
    for k, v in pairs(value) do out[copy(k)] = copy(v) end
    return setmetatable(out, getmetatable(value))
end

--- Loads a plugin schema as Kong does: the metaschema's check, then make_records_required on
--- the plugin's fields (the top-level `config` record included). Returns the config record.
function M.load_plugin_schema(schema)
    local ok, errors = M.check_plugin_schema(schema)
    if not ok then
        return nil, "schema violation: " .. table.concat(errors, "; ")
    end
    local loaded = copy(schema)
    local config
    for _, entry in ipairs(loaded.fields) do
        local name, f = next(entry)
        if f.type == "record" then make_records_required(f) end
        if name == "config" then config = f end
    end
    return config
end

local process

-- handle_missing_field: a default, else null when not required, else a required record
-- filled in.
local function missing(field, context)
    if field.default ~= nil then return copy(field.default) end
    if field.required ~= true then return null end
    if field.type == "record" then return process(field, {}, context) end
    return nil
end

local function adjust(field, value, context)
    if field.type == "record" then
        if value ~= null and (value ~= nil or field.required == true) then
            value = value or missing(field, context)
            if type(value) == "table" then return process(field, value, context) end
        end
    elseif type(value) == "table" then
        local inner = (field.type == "array" or field.type == "set") and field.elements
            or field.type == "map" and field.values
        if inner then
            for k, v in pairs(value) do value[k] = adjust(inner, v, context) end
        end
    end
    if value == nil then return missing(field, context) end
    return value
end

--- process_auto_fields(data, context) for a record: "insert" (what validation sees) or
--- "select" (what a handler is given).
process = function(record, data, context)
    data = copy(data)
    for _, entry in ipairs(record.fields) do
        local name, field = next(entry)
        local value = adjust(field, data[name], context)
        if context == "select" then
            if value == null then value = nil end
            if field.type == "string" and (field.len_min or 1) > 0 and value == "" then
                value = nil
            end
        end
        data[name] = value
    end
    if context == "select" then
        for k in pairs(data) do
            local known = false
            for _, entry in ipairs(record.fields) do
                if next(entry) == k then known = true end
            end
            if not known then data[k] = nil end
        end
    end
    return data
end
M.process = process

local function is_sequence(t)
    if type(t) ~= "table" then return false end
    local n = 0
    for k in pairs(t) do
        n = n + 1
        if type(k) ~= "number" or k % 1 ~= 0 or k < 1 then return false end
    end
    return n == #t
end

local function is_nonempty(value)
    return not (value == nil or value == null or (type(value) == "table" and next(value) == nil)
        or value == "")
end

local validate_record

local function validate_field(field, value)
    if value == null then
        if field.required then return nil, "required field missing" end
        return true
    end
    local t = field.type
    if t == "array" or t == "set" then
        if not is_sequence(value) then return nil, "expected an array" end
        for i, v in ipairs(value) do
            local element = copy(field.elements)
            element.required = true
            local ok, err = validate_field(element, v)
            if not ok then return nil, "[" .. i .. "] " .. tostring(err) end
        end
    elseif t == "map" then
        if type(value) ~= "table" then return nil, "expected a map" end
        for k, v in pairs(value) do
            local ok, err = validate_field(field.keys, k)
            if ok then ok, err = validate_field(field.values, v) end
            if not ok then return nil, tostring(k) .. ": " .. tostring(err) end
        end
    elseif t == "record" then
        if type(value) ~= "table" then return nil, "expected a record" end
        local ok, err = validate_record(field, process(field, value, "insert"))
        if not ok then return nil, err end
    elseif t == "integer" then
        if type(value) ~= "number" or value % 1 ~= 0 or value == math.huge
            or value == -math.huge then
            return nil, "expected an integer"
        end
    elseif t == "string" then
        if type(value) ~= "string" then return nil, "expected a string" end
    elseif type(value) ~= t then
        return nil, "expected a " .. t
    end
    if field.one_of then
        local found = false
        for _, v in ipairs(field.one_of) do if v == value then found = true end end
        if not found then return nil, "expected one of: " .. table.concat(field.one_of, ", ") end
    end
    if field.between and (value < field.between[1] or value > field.between[2]) then
        return nil, "value should be between " .. field.between[1] .. " and " .. field.between[2]
    end
    local len_min = field.len_min
    if t == "string" and len_min == nil then len_min = 1 end -- Kong: no empty strings by default
    if len_min or field.len_max then
        local len = #value
        if t == "map" then for _ in pairs(value) do len = len + 1 end end
        if len_min and len < len_min then return nil, "length must be at least " .. len_min end
        if field.len_max and len > field.len_max then
            return nil, "length must be at most " .. field.len_max
        end
    end
    if field.custom_validator then
        local ok, err = field.custom_validator(value)
        if not ok then return nil, err end
    end
    return true
end

-- The inline JSON schema's `type`: Kong validates a json field only against its JSON schema
-- (resty.ljsonschema), null included.
local function validate_json(field, value)
    local inline = field.json_schema.inline
    local kinds = type(inline.type) == "table" and inline.type or { inline.type }
    for _, kind in ipairs(kinds) do
        if kind == "null" and value == null then return true end
        if kind == "object" and type(value) == "table" then return true end
    end
    return nil, "wrong type: expected " .. table.concat(kinds, " or ") .. ", got "
        .. (value == null and "null" or type(value))
end

validate_record = function(record, input)
    local errors = {}
    for k, v in pairs(input) do
        local field
        for _, entry in ipairs(record.fields) do
            local name, f = next(entry)
            if name == k then field = f end
        end
        local ok, err
        if not field then
            ok, err = nil, "unknown field"
        elseif field.type == "json" then
            ok, err = validate_json(field, v)
        else
            ok, err = validate_field(field, v)
        end
        if not ok then errors[#errors + 1] = tostring(k) .. ": " .. tostring(err) end
    end
    for _, entry in ipairs(record.fields) do
        local name, field = next(entry)
        if field.required and (input[name] == nil or input[name] == null) then
            errors[#errors + 1] = name .. ": required field missing"
        end
    end
    for _, check in ipairs(record.entity_checks or {}) do
        local names = check.at_least_one_of
        if names then
            local any = false
            for _, name in ipairs(names) do
                if is_nonempty(input[name]) then any = true end
            end
            if not any then
                errors[#errors + 1] = "at least one of these fields must be non-empty: "
                    .. table.concat(names, ", ")
            end
        end
    end
    if #errors > 0 then
        table.sort(errors)
        return nil, table.concat(errors, "; ")
    end
    return true
end

--- What the Admin API does with a plugin's config (POST /plugins): insert processing, then
--- validation of the config record (its custom_validator last). true, or nil and the errors.
function M.validate_config(config_record, config)
    local processed = process({ fields = { { config = config_record } } },
        { config = config }, "insert").config
    local ok, err = validate_field(config_record, processed)
    if not ok then return nil, "config: " .. tostring(err) end
    return true
end

return M
