//! The Kong (>= 3.11) plugin's schema (`native/kong/attestgate/schema.lua`), generated from
//! the config model's JSON Schema (`attestgate_policy::config_schema`, Draft 4) into Kong's Lua
//! schema format: objects become records (or maps), arrays arrays, string enums `one_of`,
//! bounds `between` / `len_min` / `len_max`, a required-one-of `entity_checks`. What Kong's
//! format cannot say (regex patterns, `not`, cross-field rules, key material, Rego) the
//! library checks: the schema's `custom_validator` loads the config with it.
//!
//! Kong's own rules for a plugin schema hold here (`kong/db/schema/metaschema.lua` and
//! `entity.lua`, checked by hand against Kong's source and by the stand-in in
//! `native/kong/spec/`): a description is 10 to 500 bytes; a nested record without
//! `required = false` is made required and filled in by Kong (`make_records_required`), so
//! every optional record says `required = false`; a `json` field Kong fills with null when it
//! is absent, so its inline JSON schema admits null.

use serde_json::Value;

/// The generated `schema.lua`.
///
/// ```
/// let lua = attestgate::kong::schema_lua(&attestgate_policy::config_schema()).unwrap();
/// assert!(lua.contains(r#"name = "attestgate""#));
/// ```
pub fn schema_lua(schema: &Value) -> Result<String, String> {
    let mut config = String::new();
    // The model's own description speaks of the proxy-wasm filter; this is the plugin's.
    let mut root = schema.clone();
    if let Some(object) = root.as_object_mut() {
        object.insert(
            "description".to_owned(),
            Value::String(ROOT_DESCRIPTION.to_owned()),
        );
    }
    record(&root, "config", 1, &mut config)?;
    Ok(format!(
        r#"-- GENERATED from attestgate_policy::config_schema() by
--   cargo run -q -p attestgate-native --example kong_schema > native/kong/attestgate/schema.lua
-- (make kong-plugin); do not edit. The config is the gate's JSON config; what this format cannot
-- express, the library checks: custom_validator loads the config with libattestgate.so.
local typedefs = require "kong.db.schema.typedefs"

local config = {config}

config.custom_validator = function(conf)
  local attestgate = require "attestgate"
  local handler = require "kong.plugins.attestgate.handler"
  local text, err = handler.config_json(conf, config)
  if not text then
    return nil, err
  end
  local gate, load_err = attestgate.new(text)
  if not gate then
    return nil, load_err
  end
  return true
end

return {{
  name = "attestgate",
  fields = {{
    {{ consumer = typedefs.no_consumer }},
    {{ protocols = typedefs.protocols_http }},
    {{ config = config }},
  }},
}}
"#
    ))
}

const ROOT_DESCRIPTION: &str =
    "The gate's JSON config (the filter's config in Envoy) as plugin fields; \
the library loads it and checks what this schema cannot (key material, Rego, cross-field rules).";

/// Kong's metaschema bounds on `description` (`len_min = 10, len_max = 500`, in bytes).
const DESCRIPTION_BYTES: std::ops::RangeInclusive<usize> = 10..=500;

/// A field's description as Kong accepts it: one shorter than Kong's minimum is prefixed
/// with the field's name; one that still does not fit is an error, not a schema Kong refuses.
fn description(name: &str, text: &str) -> Result<String, String> {
    let text = if text.len() < *DESCRIPTION_BYTES.start() {
        format!("`{name}`: {text}")
    } else {
        text.to_owned()
    };
    if DESCRIPTION_BYTES.contains(&text.len()) {
        Ok(quote(&text))
    } else {
        Err(format!(
            "the description of `{name}` is {} bytes; Kong accepts 10 to 500: {text:?}",
            text.len()
        ))
    }
}

fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn pad(depth: usize) -> String {
    "  ".repeat(depth)
}

/// The node's types other than `null`, and whether `null` is one.
fn types(node: &Value) -> (Vec<String>, bool) {
    let list: Vec<String> = match node.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let nullable = list.iter().any(|t| t == "null");
    (list.into_iter().filter(|t| t != "null").collect(), nullable)
}

/// The string values of an enum, through `oneOf` / `anyOf` alternatives.
fn string_enum(node: &Value, out: &mut Vec<String>) -> bool {
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        for value in values {
            match value {
                Value::String(s) => {
                    if !out.contains(s) {
                        out.push(s.clone());
                    }
                }
                Value::Null => {}
                _ => return false,
            }
        }
        return true;
    }
    let mut found = false;
    for key in ["oneOf", "anyOf"] {
        if let Some(alternatives) = node.get(key).and_then(Value::as_array) {
            for alternative in alternatives {
                if types(alternative) == (Vec::new(), true) {
                    continue; // {type: null}
                }
                if !string_enum(alternative, out) {
                    return false;
                }
                found = true;
            }
        }
    }
    found
}

/// A record for an object with properties (and its `anyOf` of `required` lists).
fn record(node: &Value, name: &str, depth: usize, out: &mut String) -> Result<(), String> {
    let properties = node
        .get("properties")
        .and_then(Value::as_object)
        .ok_or("a record without properties")?;
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.push_str("{\n");
    out.push_str(&format!("{}type = \"record\",\n", pad(depth)));
    if let Some(text) = node.get("description").and_then(Value::as_str) {
        out.push_str(&format!(
            "{}description = {},\n",
            pad(depth),
            description(name, text)?
        ));
    }
    out.push_str(&format!("{}fields = {{\n", pad(depth)));
    for (child_name, child) in properties {
        out.push_str(&format!("{}{{ [{}] = ", pad(depth + 1), quote(child_name)));
        let place = Place::Field {
            required: required.contains(&child_name.as_str()),
        };
        field(child, child_name, place, depth + 2, out)?;
        out.push_str(" },\n");
    }
    out.push_str(&format!("{}}},\n", pad(depth)));
    // anyOf: [{required: [a]}, {required: [b]}] → at least one of a, b.
    if let Some(alternatives) = node.get("anyOf").and_then(Value::as_array) {
        let mut names = Vec::new();
        for alternative in alternatives {
            let Some(list) = alternative.get("required").and_then(Value::as_array) else {
                return Err("an anyOf alternative without `required`".to_owned());
            };
            for name in list.iter().filter_map(Value::as_str) {
                names.push(quote(name));
            }
        }
        out.push_str(&format!(
            "{}entity_checks = {{ {{ at_least_one_of = {{ {} }} }} }},\n",
            pad(depth),
            names.join(", ")
        ));
    }
    out.push_str(&pad(depth.saturating_sub(1)));
    out.push('}');
    Ok(())
}

/// Where a spec sits: a record's field (required or not), or an array's elements / a map's
/// values (whose `required` Kong sets itself).
#[derive(Clone, Copy)]
enum Place {
    Field { required: bool },
    Inner,
}

/// One field's spec.
fn field(
    node: &Value,
    name: &str,
    place: Place,
    depth: usize,
    out: &mut String,
) -> Result<(), String> {
    let (mut kinds, _) = types(node);
    // anyOf [X, {type: null}]: the field is X, optional.
    if kinds.is_empty() && node.get("enum").is_none() {
        if let Some(alternatives) = node.get("anyOf").and_then(Value::as_array) {
            let real: Vec<&Value> = alternatives
                .iter()
                .filter(|a| types(a) != (Vec::new(), true))
                .collect();
            if let [only] = real.as_slice() {
                if only.get("oneOf").is_none() && only.get("enum").is_none() {
                    return field(only, name, place, depth, out);
                }
            }
        }
    }
    let mut enum_values = Vec::new();
    if string_enum(node, &mut enum_values) && !enum_values.is_empty() {
        kinds = vec!["string".to_owned()];
    }
    let kind = match kinds.as_slice() {
        [one] => one.as_str(),
        _ => return Err(format!("no single type in {node}")),
    };
    let mut attributes: Vec<String> = Vec::new();
    let number = |key: &str| node.get(key).and_then(Value::as_f64);
    let lua_number = |n: f64| {
        if n.fract() == 0.0 && n.abs() < 9.0e15 {
            format!("{}", n as i64)
        } else {
            format!("{n}")
        }
    };
    match kind {
        "object" if node.get("properties").is_some() => {
            let mut text = String::new();
            record(node, name, depth, &mut text)?;
            // record() writes `{ type = "record", ... }`; add `required` inside. Kong makes a
            // nested record without `required = false` required and fills it in
            // (entity.lua's make_records_required), so an optional one must say so.
            if let Place::Field { required } = place {
                text = text.replacen(
                    "{\n",
                    &format!("{{\n{}required = {required},\n", pad(depth)),
                    1,
                );
            }
            out.push_str(&text);
            return Ok(());
        }
        "object" => match node.get("additionalProperties") {
            Some(values) if values.is_object() => {
                let mut inner = String::new();
                field(values, name, Place::Inner, depth, &mut inner)?;
                attributes.push("type = \"map\"".to_owned());
                attributes.push("keys = { type = \"string\" }".to_owned());
                attributes.push(format!("values = {inner}"));
                if let Some(n) = number("minProperties") {
                    attributes.push(format!("len_min = {}", lua_number(n)));
                }
            }
            _ => {
                // Any JSON object: Kong's json type, checked by the library. Kong validates
                // a json field against its JSON schema even when absent (null), and only so.
                attributes.push("type = \"json\"".to_owned());
                attributes.push(
                    "json_schema = { inline = { type = { \"object\", \"null\" } } }".to_owned(),
                );
            }
        },
        "array" => {
            let items = node.get("items").ok_or("an array without items")?;
            let mut inner = String::new();
            field(items, name, Place::Inner, depth, &mut inner)?;
            attributes.push("type = \"array\"".to_owned());
            attributes.push(format!("elements = {inner}"));
            if let Some(n) = number("minItems") {
                attributes.push(format!("len_min = {}", lua_number(n)));
            }
            if let Some(n) = number("maxItems") {
                attributes.push(format!("len_max = {}", lua_number(n)));
            }
        }
        "string" => {
            attributes.push("type = \"string\"".to_owned());
            if !enum_values.is_empty() {
                let quoted: Vec<String> = enum_values.iter().map(|v| quote(v)).collect();
                attributes.push(format!("one_of = {{ {} }}", quoted.join(", ")));
            }
            if let Some(n) = number("minLength") {
                attributes.push(format!("len_min = {}", lua_number(n)));
            }
            if let Some(n) = number("maxLength") {
                attributes.push(format!("len_max = {}", lua_number(n)));
            }
        }
        "integer" | "number" | "boolean" => {
            attributes.push(format!("type = {}", quote(kind)));
            match (number("minimum"), number("maximum")) {
                (Some(lo), Some(hi)) => attributes.push(format!(
                    "between = {{ {}, {} }}",
                    lua_number(lo),
                    lua_number(hi)
                )),
                (Some(lo), None) => {
                    attributes.push(format!("between = {{ {}, math.huge }}", lua_number(lo)))
                }
                (None, Some(hi)) => {
                    attributes.push(format!("between = {{ -math.huge, {} }}", lua_number(hi)))
                }
                (None, None) => {}
            }
        }
        other => return Err(format!("type {other} has no Kong equivalent")),
    }
    if let Place::Field { required: true } = place {
        attributes.push("required = true".to_owned());
    }
    if let Some(text) = node.get("description").and_then(Value::as_str) {
        attributes.push(format!("description = {}", description(name, text)?));
    }
    out.push_str(&format!("{{ {} }}", attributes.join(", ")));
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn every_top_level_field_of_the_model_is_in_the_schema() {
        let schema = attestgate_policy::config_schema();
        let lua = schema_lua(&schema).unwrap();
        for name in schema["properties"].as_object().unwrap().keys() {
            assert!(lua.contains(&format!("{{ [\"{name}\"] = ")), "{name}");
        }
        assert!(lua.contains(r#"at_least_one_of = { "keys", "host_verification" }"#));
        assert!(lua.contains(r#"one_of = { "enforce", "monitor", "bypass" }"#));
    }

    /// Kong's metaschema: every description 10 to 500 bytes (`kty`'s "Key type." is 9).
    #[test]
    fn every_description_fits_kongs_metaschema() {
        let lua = schema_lua(&attestgate_policy::config_schema()).unwrap();
        let mut seen = 0;
        for part in lua.split("description = \"").skip(1) {
            let mut text = String::new();
            let mut chars = part.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => text.extend(chars.next()),
                    '"' => break,
                    c => text.push(c),
                }
            }
            assert!((10..=500).contains(&text.len()), "{text:?}");
            seen += 1;
        }
        assert!(seen > 50, "{seen}");
        assert!(lua.contains("description = \"`kty`: Key type.\""));
        let long = serde_json::json!({"properties": {"x": {"type": "string", "description": "y".repeat(501)}}});
        assert!(schema_lua(&long).unwrap_err().contains("500"));
    }

    /// Kong's make_records_required: every optional nested record says `required = false`.
    #[test]
    fn every_nested_record_says_whether_it_is_required() {
        let lua = schema_lua(&attestgate_policy::config_schema()).unwrap();
        let lines: Vec<&str> = lua.lines().collect();
        let mut records = 0;
        for (i, line) in lines.iter().enumerate() {
            // A record as a field's value: `{ ["name"] = {` then `type = "record",`.
            if line.trim_start().starts_with("{ [") && line.ends_with("] = {") {
                let next = lines[i + 1].trim();
                assert!(
                    next == "required = false," || next == "required = true,",
                    "{line} / {next}"
                );
                records += 1;
            }
        }
        assert!(records >= 10, "{records}");
        assert!(lua.contains(r#"type = { "object", "null" }"#));
    }

    #[test]
    fn a_type_kong_cannot_hold_is_an_error_not_a_guess() {
        let schema = serde_json::json!({"properties": {"x": {"type": ["string", "integer"]}}});
        assert!(schema_lua(&schema).is_err());
    }
}
