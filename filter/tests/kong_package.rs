//! The Kong package in `filter/kong/`: `attestgate.meta.json` (the Draft-4 JSON Schema Kong
//! validates filter configs with), the example `kong.yml` and `kong.conf`.
//!
//! No Kong can be installed here, so this checks what can be checked without one:
//! 1. the metadata file has the shape Kong reads, and its schema is a valid Draft-4 schema that
//!    keeps to the keywords Kong's validator (lua-resty-ljsonschema) supports;
//! 2. every example gate config in the repo validates against the schema and loads in the gate;
//! 3. the schema (generated from the config model: `cli/tests/schema.rs` holds the file to
//!    `attestgate schema --kong`) says what the parser (`Gate::from_json`) does: a bad value for
//!    every declared property and an unknown field at every level are refused by both, and a
//!    config setting every property is accepted by both and survives the parser's round trip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use attestgate_policy::{Config, Gate};
use serde_json::{json, Value};

const META: &str = include_str!("../kong/attestgate.meta.json");
const KONG_YML: &str = include_str!("../kong/kong.yml");
const KONG_CONF: &str = include_str!("../kong/kong.conf");

/// The Draft-4 keywords the schema may use: ones lua-resty-ljsonschema (Kong's validator) runs
/// the official Draft-4 test suite for, without `$ref`/`definitions`/`format` (the schema is
/// self-contained and needs no formats), plus annotations.
const KONG_KEYWORDS: &[&str] = &[
    "$schema",
    "title",
    "description",
    "default",
    "type",
    "enum",
    "properties",
    "additionalProperties",
    "required",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "anyOf",
    "allOf",
    "oneOf",
    "not",
];

const JWK_LEVEL: &str = "keys.keys[]";

/// A valid HS256 secret (32 bytes, base64).
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the filter crate sits in the workspace")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn meta() -> Value {
    serde_json::from_str(META).expect("filter/kong/attestgate.meta.json is not valid JSON")
}

fn schema() -> Value {
    meta()["config_schema"].clone()
}

/// One of the test JWKs of the policy engine's tests (public keys).
fn jwk(name: &str) -> Value {
    let path = repo().join(format!("policy-engine/tests/data/keys/{name}.pub.json"));
    let jwks: Value = serde_json::from_str(&read(&path)).unwrap();
    jwks["keys"][0].clone()
}

fn policy() -> Value {
    json!({ "modules": { "p.rego":
        "package attestgate\nimport rego.v1\ndecision := {\"allow\": true, \"reasons\": []}\n" } })
}

/// The schema and the parser, side by side.
struct Judges {
    validator: jsonschema::Validator,
}

impl Judges {
    fn new() -> Judges {
        let validator = jsonschema::draft4::new(&schema())
            .unwrap_or_else(|err| panic!("config_schema does not compile as Draft 4: {err}"));
        Judges { validator }
    }

    fn schema_errors(&self, config: &Value) -> Vec<String> {
        self.validator
            .iter_errors(config)
            .map(|err| format!("{err} (at `{}`)", err.instance_path()))
            .collect()
    }

    fn parser(&self, config: &Value) -> Result<Gate, String> {
        Gate::from_json(&config.to_string()).map_err(|err| err.to_string())
    }

    fn assert_accepted(&self, what: &str, config: &Value) -> Gate {
        let errors = self.schema_errors(config);
        assert!(
            errors.is_empty(),
            "{what}: the schema refuses it:\n  {}",
            errors.join("\n  ")
        );
        self.parser(config).unwrap_or_else(|err| {
            panic!("{what}: the schema accepts it but the parser refuses it: {err}")
        })
    }

    /// Both must refuse; returns (schema errors, parser error).
    fn assert_rejected(&self, what: &str, config: &Value) -> (Vec<String>, String) {
        let errors = self.schema_errors(config);
        let parsed = self.parser(config);
        match (errors.is_empty(), parsed) {
            (false, Err(err)) => (errors, err),
            (true, Err(err)) => {
                panic!("{what}: the parser refuses it ({err}) but the schema accepts it")
            }
            (false, Ok(_)) => panic!(
                "{what}: the schema refuses it but the parser accepts it:\n  {}",
                errors.join("\n  ")
            ),
            (true, Ok(_)) => panic!("{what}: both the schema and the parser accept it"),
        }
    }
}

// ---- schema paths -------------------------------------------------------------------------

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// (parent path, property name)
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('.').unwrap_or(("", path))
}

/// Every property the schema declares, by path, with its schema. Descends `properties` and
/// `items`; a map (`policy.modules`, `policy.data`) is a leaf.
fn schema_properties(node: &Value, path: &str, out: &mut BTreeMap<String, Value>) {
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            let sub_path = join(path, name);
            out.insert(sub_path.clone(), sub.clone());
            schema_properties(sub, &sub_path, out);
        }
    }
    if let Some(items) = node.get("items") {
        schema_properties(items, &format!("{path}[]"), out);
    }
}

/// The object levels of the schema (paths of nodes with `properties`), with their property names.
fn schema_levels(node: &Value, path: &str, out: &mut BTreeMap<String, BTreeSet<String>>) {
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        out.insert(path.to_owned(), properties.keys().cloned().collect());
        for (name, sub) in properties {
            schema_levels(sub, &join(path, name), out);
        }
    }
    if let Some(items) = node.get("items") {
        schema_levels(items, &format!("{path}[]"), out);
    }
}

fn declared_properties() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    schema_properties(&schema(), "", &mut out);
    out
}

fn declared_levels() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    schema_levels(&schema(), "", &mut out);
    out
}

/// The property paths an instance sets, walked along the schema: (declared, undeclared).
fn instance_paths(
    value: &Value,
    node: &Value,
    path: &str,
    declared: &mut BTreeSet<String>,
    undeclared: &mut BTreeSet<String>,
) {
    match value {
        Value::Object(map) => {
            let Some(properties) = node.get("properties").and_then(Value::as_object) else {
                return; // a map such as policy.modules
            };
            for (name, sub_value) in map {
                let sub_path = join(path, name);
                match properties.get(name) {
                    Some(sub) => {
                        declared.insert(sub_path.clone());
                        instance_paths(sub_value, sub, &sub_path, declared, undeclared);
                    }
                    None => {
                        undeclared.insert(sub_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.get("items") {
                for item in items {
                    instance_paths(
                        item,
                        item_schema,
                        &format!("{path}[]"),
                        declared,
                        undeclared,
                    );
                }
            }
        }
        _ => {}
    }
}

/// Every subschema, with where it is, for keyword checks.
fn visit_subschemas(node: &Value, at: &str, visit: &mut dyn FnMut(&Value, &str)) {
    visit(node, at);
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, sub) in properties {
            visit_subschemas(sub, &format!("{at}/properties/{name}"), visit);
        }
    }
    if let Some(sub) = node.get("additionalProperties").filter(|v| v.is_object()) {
        visit_subschemas(sub, &format!("{at}/additionalProperties"), visit);
    }
    match node.get("items") {
        Some(Value::Array(items)) => {
            for (i, sub) in items.iter().enumerate() {
                visit_subschemas(sub, &format!("{at}/items/{i}"), visit);
            }
        }
        Some(sub) => visit_subschemas(sub, &format!("{at}/items"), visit),
        None => {}
    }
    for keyword in ["anyOf", "allOf", "oneOf"] {
        if let Some(branches) = node.get(keyword).and_then(Value::as_array) {
            for (i, sub) in branches.iter().enumerate() {
                visit_subschemas(sub, &format!("{at}/{keyword}/{i}"), visit);
            }
        }
    }
    if let Some(sub) = node.get("not") {
        visit_subschemas(sub, &format!("{at}/not"), visit);
    }
}

// ---- configs ------------------------------------------------------------------------------

fn set(config: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
    let key = key.replace("~1", "/").replace("~0", "~");
    match config.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(key, value);
        }
        Some(Value::Array(items)) => {
            let index: usize = key.parse().expect("an array index");
            items[index] = value;
        }
        other => panic!("cannot set {pointer}: its parent is {other:?}"),
    }
}

fn remove(config: &mut Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
    let key = key.replace("~1", "/").replace("~0", "~");
    config
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|map| map.remove(&key))
        .unwrap_or_else(|| panic!("nothing at {pointer} to remove"))
}

fn with(mut config: Value, pointer: &str, value: Value) -> Value {
    set(&mut config, pointer, value);
    config
}

fn without(mut config: Value, pointer: &str) -> Value {
    remove(&mut config, pointer);
    config
}

/// A minimal hybrid-mode config: the gateway verifies, so no keys (and none allowed).
fn hybrid() -> Value {
    json!({ "host_verification": { "payload_in_metadata": "attestation" } })
}

/// A valid value for the property at `path`, to set in `base`: a sample for properties
/// without a usable default, else what `base` holds there, else a non-default enum value or
/// boolean, else the default.
/// A minimal remote source (JWKS or denylist).
fn remote() -> Value {
    json!({ "upstream": "keyserver", "authority": "keys.example.com", "path": "/jwks.json" })
}

fn rate_limit() -> Value {
    json!({ "requests": 3, "per_seconds": 60 })
}

/// A config with every field the parser has set, to a non-default value where it can be.
fn maximal_config() -> Value {
    let mut hs = jwk("hs256");
    let extras = json!({
        "key_ops": ["verify"],
        "x5u": "https://keys.example.com/hs.pem",
        "x5c": ["MIIBkTCB+wIJAKHBfpegPjMCMA0GCSqGSIb3DQEBCwUA"],
        "x5t": "7oWRdRZLpmNVZ0b5ufD6ykcZ2uM",
        "x5t#S256": "rZ9xQlVFe4mF0Dkrzb9PsYnWRuU2f0hXfDXE5TE9a3o",
        "ext": true
    });
    for (name, value) in extras.as_object().unwrap() {
        hs[name] = value.clone();
    }
    json!({
        "token": {
            "header": "authorization",
            "prefix": "Bearer ",
            "max_bytes": 4096,
            "max_json_depth": 8
        },
        "keys": {
            "keys": [hs, jwk("es256"), jwk("rs256"), jwk("ps256"), jwk("eddsa")],
            "approov_secret": SECRET,
            "remote": {
                "upstream": "keyserver",
                "authority": "keys.example.com",
                "path": "/jwks.json",
                "refresh_seconds": 60,
                "timeout_ms": 2000,
                "max_bytes": 8192
            }
        },
        "denylist": {
            "devices": ["stolen-1"],
            "remote": {
                "upstream": "lists",
                "authority": "lists.example.com",
                "path": "/denylist.json",
                "refresh_seconds": 120,
                "timeout_ms": 1000,
                "max_bytes": 4096
            },
            "claim": "att.install"
        },
        "issuer": "approov.io",
        "audiences": ["api.example.com", "admin.example.com"],
        "leeway_seconds": 30,
        "require_exp": false,
        "binding": { "headers": ["x-session", "x-request-id"], "claim": "bind", "required": true },
        "policy": {
            "modules": policy()["modules"],
            "module_files": [],
            "entrypoint": "data.attestgate.decision",
            "data": { "device_trust": { "min_app_version": "2.0.0" } }
        },
        "mode": "monitor",
        "rules": [
            { "name": "health", "path": "/health", "methods": ["GET", "HEAD"], "mode": "bypass" },
            { "name": "legacy", "path_prefix": "/legacy", "prefix_match": "string", "mode": "monitor" },
            {
                "name": "login",
                "path_prefix": "/login",
                "methods": ["POST"],
                "mode": "enforce",
                "entrypoint": "data.attestgate.decision",
                "rate_limit": { "requests": 5, "per_seconds": 60 },
                "signature": {
                    "mode": "required",
                    "label": "sig1",
                    "components": ["@method", "@target-uri", "authorization", "content-digest"],
                    "max_age_seconds": 60,
                    "clock_skew_seconds": 5,
                    "key_claim": "install_key",
                    "scheme": "http",
                    "accept": "both",
                    "account_secret": SECRET,
                    "account_label": "acct",
                    "max_body_bytes": 4096
                }
            }
        ],
        "forward": true,
        "claim_to_headers": [{ "claim": "att.device.platform", "header": "x-device-platform" }],
        "log_decisions": true,
        "decision_log": { "sample_rate": 0.25, "mask": ["claims.did", "headers"] },
        "cache": { "entries": 100 },
        "record_fields": ["platform", "device"],
        "signature": {
            "mode": "optional",
            "label": "install",
            "components": ["@method", "@path", "@query", "@authority"],
            "max_age_seconds": 0,
            "clock_skew_seconds": 0,
            "key_claim": "ipk",
            "scheme": "https",
            "accept": "account",
            "account_secret": SECRET,
            "account_label": "account",
            "max_body_bytes": 1
        }
    })
}

// ---- 1. the metadata file -----------------------------------------------------------------

#[test]
fn meta_json_has_what_kong_reads_and_a_draft4_schema() {
    let meta = meta();
    let object = meta.as_object().expect("the metadata is a JSON object");
    assert_eq!(
        object.keys().collect::<Vec<_>>(),
        ["config_schema"],
        "Kong reads `config_schema` from <filter>.meta.json; nothing else belongs there"
    );
    let schema = schema();
    if let Err(err) = jsonschema::draft4::meta::validate(&schema) {
        panic!("config_schema is not a valid Draft-4 schema: {err}");
    }
    // Kong refuses a meta.json whose $schema names another draft.
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    assert_eq!(schema["type"], "object", "the config is a JSON object");
    let mut problems = Vec::new();
    visit_subschemas(&schema, "#", &mut |node, at| {
        let Some(node) = node.as_object() else {
            problems.push(format!("{at}: a schema must be an object"));
            return;
        };
        for keyword in node.keys() {
            if !KONG_KEYWORDS.contains(&keyword.as_str()) {
                problems.push(format!(
                    "{at}: `{keyword}` is outside Kong's Draft-4 subset"
                ));
            }
        }
    });
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The parser refuses unknown fields everywhere, and so must the schema.
    for (path, property) in declared_properties() {
        if property.get("properties").is_some() {
            assert_eq!(
                property.get("additionalProperties"),
                Some(&json!(false)),
                "`{path}` must set additionalProperties: false, like the parser"
            );
        }
    }
    assert_eq!(schema["additionalProperties"], json!(false));
}

#[test]
fn schema_is_alive() {
    // The validator really validates: an empty object lacks `keys`, a string is no object.
    let judges = Judges::new();
    assert!(!judges.schema_errors(&json!({})).is_empty());
    assert!(!judges.schema_errors(&json!("{}")).is_empty());
    judges.assert_accepted(
        "the minimal config",
        &json!({ "keys": { "approov_secret": SECRET } }),
    );
}

// ---- 2. every example config --------------------------------------------------------------

/// The filter configuration strings in an Envoy config: `configuration: {"@type":
/// ...StringValue, value: "<json>"}` anywhere in the document.
fn envoy_filter_configs(value: &serde_yaml::Value, out: &mut Vec<String>) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            if let Some(serde_yaml::Value::Mapping(configuration)) = map.get("configuration") {
                let string_value = configuration.get("@type").and_then(|t| t.as_str())
                    == Some("type.googleapis.com/google.protobuf.StringValue");
                if let (true, Some(text)) = (
                    string_value,
                    configuration.get("value").and_then(|v| v.as_str()),
                ) {
                    out.push(text.to_owned());
                }
            }
            for (_, sub) in map {
                envoy_filter_configs(sub, out);
            }
        }
        serde_yaml::Value::Sequence(items) => {
            for item in items {
                envoy_filter_configs(item, out);
            }
        }
        _ => {}
    }
}

fn example_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo().join("envoy-examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The one attestgate filter config in a rendered `envoy.yaml` (or, for a filter whose config
/// comes by ECDS, in its rendered `attestgate-ecds.yaml`), as JSON.
fn envoy_example_config(dir: &Path) -> Value {
    let path = dir.join("envoy.yaml");
    let mut configs = Vec::new();
    for file in [path.clone(), dir.join("attestgate-ecds.yaml")] {
        if file.exists() {
            let yaml: serde_yaml::Value = serde_yaml::from_str(&read(&file)).unwrap();
            envoy_filter_configs(&yaml, &mut configs);
        }
    }
    assert_eq!(
        configs.len(),
        1,
        "{}: one wasm filter config expected",
        path.display()
    );
    serde_json::from_str(&configs[0])
        .unwrap_or_else(|err| panic!("{}: the filter config is not JSON: {err}", path.display()))
}

/// The attestgate filters of `kong.yml`: on services, on routes, or at the top level.
fn kong_filters(kong: &Value) -> Vec<Value> {
    fn chains(owner: &Value, out: &mut Vec<Value>) {
        for chain in owner["filter_chains"].as_array().into_iter().flatten() {
            for filter in chain["filters"].as_array().into_iter().flatten() {
                out.push(filter.clone());
            }
        }
    }
    let mut out = Vec::new();
    chains(kong, &mut out);
    for service in kong["services"].as_array().into_iter().flatten() {
        chains(service, &mut out);
        for route in service["routes"].as_array().into_iter().flatten() {
            chains(route, &mut out);
        }
    }
    for route in kong["routes"].as_array().into_iter().flatten() {
        chains(route, &mut out);
    }
    out
}

fn kong_yml() -> Value {
    serde_yaml::from_str(KONG_YML).expect("filter/kong/kong.yml is not valid YAML")
}

/// Kong re-encodes the config with Lua's cjson, where an empty list and an empty object are
/// the same table, and YAML nulls may not survive: the example must not depend on either.
fn no_nulls_or_empty_lists(value: &Value, at: &str, problems: &mut Vec<String>) {
    match value {
        Value::Null => problems.push(format!("{at} is null")),
        Value::Array(items) if items.is_empty() => problems.push(format!("{at} is []")),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                no_nulls_or_empty_lists(item, &format!("{at}[{i}]"), problems);
            }
        }
        Value::Object(map) => {
            for (name, sub) in map {
                no_nulls_or_empty_lists(sub, &join(at, name), problems);
            }
        }
        _ => {}
    }
}

#[test]
fn rendered_envoy_example_configs_validate_and_load() {
    let judges = Judges::new();
    let dirs = example_dirs();
    assert!(
        dirs.len() >= 4,
        "expected the four Envoy examples, found {dirs:?}"
    );
    for dir in dirs {
        let config = envoy_example_config(&dir);
        judges.assert_accepted(&format!("{}/envoy.yaml", dir.display()), &config);
    }
}

#[test]
fn example_gate_yaml_configs_validate_and_load_once_their_rego_is_inlined() {
    // The source configs the Envoy examples are rendered from, with module_files inlined the
    // way `attestgate render` does (by file name).
    let judges = Judges::new();
    let mut seen = 0;
    for dir in example_dirs() {
        let path = dir.join("attestgate.yaml");
        if !path.exists() {
            continue;
        }
        seen += 1;
        let mut config: Value = serde_yaml::from_str(&read(&path)).unwrap();
        if let Some(policy) = config.get_mut("policy").and_then(Value::as_object_mut) {
            let files = policy.remove("module_files").unwrap_or(json!([]));
            let modules = policy.entry("modules").or_insert_with(|| json!({}));
            for file in files.as_array().unwrap() {
                let file = dir.join(file.as_str().unwrap());
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                modules[name] = json!(read(&file));
            }
        }
        judges.assert_accepted(&path.display().to_string(), &config);
    }
    assert!(
        seen >= 4,
        "expected the four example gate configs, found {seen}"
    );
}

#[test]
fn kong_yml_example_validates_loads_and_equals_the_quickstart() {
    let judges = Judges::new();
    let kong = kong_yml();
    assert_eq!(kong["_format_version"], "3.0", "kong.yml: _format_version");
    let filters = kong_filters(&kong);
    assert_eq!(
        filters.len(),
        1,
        "kong.yml: one filter expected, found {filters:?}"
    );
    let filter = &filters[0];
    assert_eq!(
        filter["name"], "attestgate",
        "Kong names a filter after its .wasm file, and reads attestgate.meta.json for it"
    );
    let config = &filter["config"];
    assert!(
        config.is_object(),
        "with a config_schema, Kong takes the config as an object (not a string)"
    );
    let mut problems = Vec::new();
    no_nulls_or_empty_lists(config, "config", &mut problems);
    assert!(problems.is_empty(), "kong.yml: {}", problems.join(", "));

    let gate = judges.assert_accepted("filter/kong/kong.yml", config);
    let quickstart = repo().join("envoy-examples/quickstart");
    let envoy: Config = serde_json::from_value(envoy_example_config(&quickstart)).unwrap();
    let rego = read(&repo().join("policies/device_trust.rego"));
    let inlined = gate
        .config()
        .policy
        .as_ref()
        .and_then(|policy| policy.modules.get("device_trust.rego"));
    assert!(
        inlined == Some(&rego),
        "kong.yml: policy.modules[\"device_trust.rego\"] must be policies/device_trust.rego \
         verbatim (paste it again after changing the policy)"
    );
    assert_eq!(
        gate.config(),
        &envoy,
        "kong.yml's config must load to the same gate config as envoy-examples/quickstart"
    );
}

#[test]
fn kong_conf_turns_wasm_on_and_names_the_filters_path() {
    let settings: BTreeMap<&str, &str> = KONG_CONF
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .expect("kong.conf lines are key = value");
            (key.trim(), value.trim())
        })
        .collect();
    assert_eq!(settings.get("wasm"), Some(&"on"));
    assert!(
        settings
            .get("wasm_filters_path")
            .is_some_and(|p| p.starts_with('/')),
        "kong.conf: wasm_filters_path must be an absolute directory: {settings:?}"
    );
}

// ---- 3a. bad configs: both refuse ---------------------------------------------------------

#[test]
fn bad_configs_are_refused_by_schema_and_parser() {
    let judges = Judges::new();
    let base = json!({
        "token": {},
        "keys": { "keys": [jwk("hs256")], "approov_secret": SECRET },
        "binding": { "headers": ["authorization"] },
        "policy": policy(),
        "rules": [{ "path": "/health", "mode": "bypass", "rate_limit": rate_limit(), "signature": {} }],
        "claim_to_headers": [{ "claim": "did", "header": "x-device-id" }],
        "cache": {},
        "signature": {}
    });
    let mut base = base;
    base["keys"]["remote"] = remote();
    base["denylist"] = json!({ "devices": ["stolen"], "remote": remote(), "claim": "did" });
    base["log_decisions"] = json!(true);
    base["decision_log"] = json!({});
    judges.assert_accepted("the base of the bad configs", &base);
    let set_at = |what: &'static str, at: &'static str, value: Value| {
        (what, at, with(base.clone(), at, value))
    };
    let remove_at = |what: &'static str, at: &'static str| (what, at, without(base.clone(), at));
    judges.assert_accepted("the base of the bad hybrid configs", &hybrid());
    let hybrid_at =
        |what: &'static str, at: &'static str, value: Value| (what, at, with(hybrid(), at, value));
    let cases: Vec<(&str, &str, Value)> = vec![
        // Hybrid mode (no keys).
        hybrid_at(
            "unknown host_verification field",
            "/host_verification/payload",
            json!("x"),
        ),
        hybrid_at(
            "empty verifier filter",
            "/host_verification/filter",
            json!(""),
        ),
        hybrid_at(
            "metadata key not a string",
            "/host_verification/payload_in_metadata",
            json!(5),
        ),
        (
            "host_verification without payload_in_metadata",
            "/host_verification/payload_in_metadata",
            json!({ "host_verification": {} }),
        ),
        hybrid_at(
            "host_verification not an object",
            "/host_verification",
            json!(true),
        ),
        // Unknown fields, at every level.
        set_at("unknown top-level field", "/leway_seconds", json!(5)),
        set_at("unknown token field", "/token/heder", json!("x")),
        set_at("unknown keys field", "/keys/jwks", json!([])),
        set_at("unknown jwk member", "/keys/keys/0/kidd", json!("x")),
        (
            "private member on an EC jwk",
            "/keys/keys/0/d",
            with(
                base.clone(),
                "/keys/keys/0",
                with(
                    jwk("es256"),
                    "/d",
                    json!("870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"),
                ),
            ),
        ),
        set_at("unknown binding field", "/binding/claims", json!("pay")),
        set_at("unknown policy field", "/policy/module", json!({})),
        set_at("unknown rule field", "/rules/0/prefix", json!("/x")),
        set_at(
            "unknown claim_to_headers field",
            "/claim_to_headers/0/name",
            json!("x"),
        ),
        // Wrong types and values, field by field.
        set_at("token not an object", "/token", json!("approov-token")),
        set_at("token.header a number", "/token/header", json!(5)),
        set_at(
            "token.header not a header name",
            "/token/header",
            json!("approov token"),
        ),
        set_at("token.header empty", "/token/header", json!("")),
        set_at("token.prefix a number", "/token/prefix", json!(5)),
        set_at(
            "token.max_bytes a string",
            "/token/max_bytes",
            json!("8192"),
        ),
        set_at("token.max_bytes zero", "/token/max_bytes", json!(0)),
        set_at(
            "token.max_bytes too large",
            "/token/max_bytes",
            json!(65537),
        ),
        set_at("token.max_bytes negative", "/token/max_bytes", json!(-1)),
        set_at("token.max_bytes fractional", "/token/max_bytes", json!(1.5)),
        set_at(
            "token.max_json_depth zero",
            "/token/max_json_depth",
            json!(0),
        ),
        set_at(
            "token.max_json_depth too large",
            "/token/max_json_depth",
            json!(65),
        ),
        set_at(
            "token.max_json_depth null",
            "/token/max_json_depth",
            Value::Null,
        ),
        remove_at("keys missing", "/keys"),
        set_at("keys not an object", "/keys", json!([])),
        ("no key at all", "/keys", json!({ "keys": {} })),
        (
            "no key: empty jwks, no secret",
            "/keys/keys",
            json!({ "keys": { "keys": [] } }),
        ),
        (
            "no key: null secret",
            "/keys/approov_secret",
            json!({ "keys": { "approov_secret": null } }),
        ),
        set_at("keys.keys an object", "/keys/keys", json!({})),
        set_at("keys.keys item a string", "/keys/keys", json!(["k"])),
        set_at(
            "keys.approov_secret a number",
            "/keys/approov_secret",
            json!(5),
        ),
        remove_at("jwk without kty", "/keys/keys/0/kty"),
        set_at("jwk kty unknown", "/keys/keys/0/kty", json!("DSA")),
        set_at("jwk kty a number", "/keys/keys/0/kty", json!(1)),
        set_at("jwk alg none", "/keys/keys/0/alg", json!("none")),
        set_at("jwk alg unknown", "/keys/keys/0/alg", json!("HS1")),
        set_at("jwk use enc", "/keys/keys/0/use", json!("enc")),
        set_at("jwk kid a number", "/keys/keys/0/kid", json!(7)),
        set_at(
            "jwk key_ops without verify",
            "/keys/keys/0/key_ops",
            json!(["sign"]),
        ),
        set_at("jwk key_ops empty", "/keys/keys/0/key_ops", json!([])),
        set_at(
            "jwk key_ops a string",
            "/keys/keys/0/key_ops",
            json!("verify"),
        ),
        (
            "EC jwk on another curve",
            "/keys/keys/0/crv",
            with(
                base.clone(),
                "/keys/keys/0",
                with(jwk("es256"), "/crv", json!("P-384")),
            ),
        ),
        set_at("issuer a number", "/issuer", json!(5)),
        set_at("audiences a string", "/audiences", json!("api")),
        set_at("audiences empty", "/audiences", json!([])),
        set_at("audiences of numbers", "/audiences", json!([5])),
        set_at("leeway_seconds negative", "/leeway_seconds", json!(-1)),
        set_at("leeway_seconds a string", "/leeway_seconds", json!("60")),
        set_at(
            "leeway_seconds above u32",
            "/leeway_seconds",
            json!(4_294_967_296_u64),
        ),
        set_at("require_exp a string", "/require_exp", json!("true")),
        set_at("binding a list", "/binding", json!(["authorization"])),
        remove_at("binding without headers", "/binding/headers"),
        set_at("binding.headers empty", "/binding/headers", json!([])),
        set_at(
            "binding.headers a string",
            "/binding/headers",
            json!("authorization"),
        ),
        set_at(
            "binding.headers bad name",
            "/binding/headers",
            json!(["x y"]),
        ),
        set_at("binding.claim empty", "/binding/claim", json!("")),
        set_at("binding.claim a number", "/binding/claim", json!(1)),
        set_at(
            "binding.required a string",
            "/binding/required",
            json!("yes"),
        ),
        set_at("policy a string", "/policy", json!("device_trust.rego")),
        remove_at("policy without modules", "/policy/modules"),
        set_at("policy.modules empty", "/policy/modules", json!({})),
        set_at(
            "policy.modules a list",
            "/policy/modules",
            json!(["p.rego"]),
        ),
        set_at(
            "policy.modules of numbers",
            "/policy/modules",
            json!({ "p.rego": 1 }),
        ),
        set_at(
            "policy.module_files given",
            "/policy/module_files",
            json!(["p.rego"]),
        ),
        set_at("policy.entrypoint a number", "/policy/entrypoint", json!(1)),
        set_at("policy.data a list", "/policy/data", json!([])),
        set_at("policy.data null", "/policy/data", Value::Null),
        set_at("mode capitalized", "/mode", json!("Enforce")),
        set_at("mode unknown", "/mode", json!("off")),
        set_at("mode bypass at the top level", "/mode", json!("bypass")),
        set_at("mode a number", "/mode", json!(1)),
        set_at("rules an object", "/rules", json!({})),
        set_at("rule a string", "/rules", json!(["/health"])),
        set_at("rule name a number", "/rules/0/name", json!(1)),
        set_at("rule path a number", "/rules/0/path", json!(1)),
        set_at(
            "rule path_prefix a list",
            "/rules/0/path_prefix",
            json!(["/v1"]),
        ),
        set_at(
            "rule path and path_prefix",
            "/rules/0/path_prefix",
            json!("/h"),
        ),
        set_at("rule methods a string", "/rules/0/methods", json!("GET")),
        set_at(
            "rule method not a token",
            "/rules/0/methods",
            json!(["GET POST"]),
        ),
        set_at("rule mode capitalized", "/rules/0/mode", json!("Monitor")),
        set_at("rule mode unknown", "/rules/0/mode", json!("skip")),
        set_at("rule entrypoint a number", "/rules/0/entrypoint", json!(1)),
        set_at("forward a string", "/forward", json!("false")),
        set_at("claim_to_headers an object", "/claim_to_headers", json!({})),
        remove_at(
            "claim_to_headers without header",
            "/claim_to_headers/0/header",
        ),
        remove_at(
            "claim_to_headers without claim",
            "/claim_to_headers/0/claim",
        ),
        set_at(
            "claim_to_headers empty claim",
            "/claim_to_headers/0/claim",
            json!(""),
        ),
        set_at(
            "claim_to_headers bad header",
            "/claim_to_headers/0/header",
            json!("x y"),
        ),
        set_at("log_decisions a string", "/log_decisions", json!("yes")),
        set_at(
            "decision_log.sample_rate 0",
            "/decision_log/sample_rate",
            json!(0),
        ),
        set_at(
            "decision_log.sample_rate over 1",
            "/decision_log/sample_rate",
            json!(1.5),
        ),
        set_at(
            "decision_log.mask a string",
            "/decision_log/mask",
            json!("claims.did"),
        ),
        set_at(
            "unknown decision_log field",
            "/decision_log/every",
            json!(2),
        ),
        set_at("decision_log a number", "/decision_log", json!(0.5)),
        // Remote sources, the denylist and rate limits.
        set_at("unknown keys.remote field", "/keys/remote/url", json!("x")),
        set_at("keys.remote a string", "/keys/remote", json!("jwks")),
        remove_at("keys.remote without upstream", "/keys/remote/upstream"),
        set_at(
            "keys.remote empty upstream",
            "/keys/remote/upstream",
            json!(""),
        ),
        remove_at("keys.remote without authority", "/keys/remote/authority"),
        set_at(
            "keys.remote authority a number",
            "/keys/remote/authority",
            json!(1),
        ),
        set_at(
            "keys.remote relative path",
            "/keys/remote/path",
            json!("jwks.json"),
        ),
        set_at(
            "keys.remote zero refresh",
            "/keys/remote/refresh_seconds",
            json!(0),
        ),
        set_at(
            "keys.remote negative timeout",
            "/keys/remote/timeout_ms",
            json!(-1),
        ),
        set_at(
            "keys.remote zero max_bytes",
            "/keys/remote/max_bytes",
            json!(0),
        ),
        set_at("unknown denylist field", "/denylist/ids", json!([])),
        set_at("denylist a list", "/denylist", json!(["stolen"])),
        set_at("denylist.remote a boolean", "/denylist/remote", json!(true)),
        set_at(
            "denylist devices not strings",
            "/denylist/devices",
            json!([1]),
        ),
        set_at("denylist empty claim", "/denylist/claim", json!("")),
        set_at(
            "unknown denylist.remote field",
            "/denylist/remote/every",
            json!(1),
        ),
        set_at(
            "denylist.remote path a number",
            "/denylist/remote/path",
            json!(7),
        ),
        set_at(
            "denylist.remote upstream a list",
            "/denylist/remote/upstream",
            json!(["a"]),
        ),
        set_at(
            "denylist.remote empty authority",
            "/denylist/remote/authority",
            json!(""),
        ),
        set_at(
            "denylist.remote refresh a string",
            "/denylist/remote/refresh_seconds",
            json!("60"),
        ),
        set_at(
            "denylist.remote zero timeout",
            "/denylist/remote/timeout_ms",
            json!(0),
        ),
        set_at(
            "denylist.remote max_bytes a float",
            "/denylist/remote/max_bytes",
            json!(1.5),
        ),
        set_at(
            "unknown rate_limit field",
            "/rules/0/rate_limit/burst",
            json!(1),
        ),
        remove_at(
            "rate_limit without requests",
            "/rules/0/rate_limit/requests",
        ),
        set_at(
            "rate_limit zero requests",
            "/rules/0/rate_limit/requests",
            json!(0),
        ),
        set_at(
            "rate_limit zero period",
            "/rules/0/rate_limit/per_seconds",
            json!(0),
        ),
        set_at("rate_limit a number", "/rules/0/rate_limit", json!(5)),
        set_at("cache not an object", "/cache", json!(5)),
        set_at("unknown cache field", "/cache/entrys", json!(5)),
        set_at("cache entries negative", "/cache/entries", json!(-1)),
        set_at("signature not an object", "/signature", json!(5)),
        set_at("unknown signature field", "/signature/lable", json!("x")),
        set_at(
            "signature mode unknown",
            "/signature/mode",
            json!("sometimes"),
        ),
        set_at(
            "signature label not a key",
            "/signature/label",
            json!("Install"),
        ),
        set_at(
            "signature components unsupported",
            "/signature/components",
            json!(["@status"]),
        ),
        set_at(
            "signature max_age negative",
            "/signature/max_age_seconds",
            json!(-1),
        ),
        set_at(
            "signature clock_skew negative",
            "/signature/clock_skew_seconds",
            json!(-1),
        ),
        set_at(
            "signature key_claim empty",
            "/signature/key_claim",
            json!(""),
        ),
        set_at("signature scheme ftp", "/signature/scheme", json!("ftp")),
        set_at(
            "signature accept unknown",
            "/signature/accept",
            json!("any"),
        ),
        set_at(
            "signature account_secret not a string",
            "/signature/account_secret",
            json!(5),
        ),
        set_at(
            "signature account_label not a key",
            "/signature/account_label",
            json!("Account"),
        ),
        set_at(
            "signature max_body_bytes zero",
            "/signature/max_body_bytes",
            json!(0),
        ),
        set_at(
            "record_fields names no record field",
            "/record_fields",
            json!(["colour"]),
        ),
        set_at(
            "rule prefix_match unknown",
            "/rules/0/prefix_match",
            json!("regex"),
        ),
        set_at(
            "rule signature accept unknown",
            "/rules/0/signature/accept",
            json!("any"),
        ),
        set_at(
            "rule signature account_secret not a string",
            "/rules/0/signature/account_secret",
            json!(5),
        ),
        set_at(
            "rule signature account_label not a key",
            "/rules/0/signature/account_label",
            json!("Account"),
        ),
        set_at(
            "rule signature max_body_bytes over the cap",
            "/rules/0/signature/max_body_bytes",
            json!(67_108_865),
        ),
        set_at(
            "unknown rule signature field",
            "/rules/0/signature/lable",
            json!("x"),
        ),
        set_at(
            "rule signature mode unknown",
            "/rules/0/signature/mode",
            json!("sometimes"),
        ),
        set_at(
            "rule signature label not a key",
            "/rules/0/signature/label",
            json!("Install"),
        ),
        set_at(
            "rule signature components unsupported",
            "/rules/0/signature/components",
            json!(["@status"]),
        ),
        set_at(
            "rule signature max_age negative",
            "/rules/0/signature/max_age_seconds",
            json!(-1),
        ),
        set_at(
            "rule signature clock_skew negative",
            "/rules/0/signature/clock_skew_seconds",
            json!(-1),
        ),
        set_at(
            "rule signature key_claim empty",
            "/rules/0/signature/key_claim",
            json!(""),
        ),
        set_at(
            "rule signature scheme ftp",
            "/rules/0/signature/scheme",
            json!("ftp"),
        ),
        set_at(
            "rule signature a string",
            "/rules/0/signature",
            json!("required"),
        ),
    ];
    for (what, _, config) in &cases {
        judges.assert_rejected(what, config);
    }
    // Every declared property has a bad value above, and every level an unknown field.
    let touched: BTreeSet<String> = cases.iter().map(|(_, at, _)| schema_path(at)).collect();
    let levels = declared_levels();
    for (level, declared) in &levels {
        assert!(
            touched.iter().any(|path| {
                let (parent, name) = split(path);
                parent == level && !declared.contains(name)
            }),
            "no bad config with an unknown field in `{level}`"
        );
    }
    // JWK members whose content only the key loader checks (key material), or that it ignores.
    let unchecked: BTreeSet<String> = [
        "n", "e", "x", "y", "k", "x5u", "x5c", "x5t", "x5t#S256", "ext",
    ]
    .iter()
    .map(|member| format!("{JWK_LEVEL}.{member}"))
    .collect();
    let missing: Vec<String> = declared_properties()
        .into_keys()
        .filter(|path| !touched.contains(path) && !unchecked.contains(path))
        .collect();
    assert!(missing.is_empty(), "no bad config for: {missing:?}");
}

/// `/keys/keys/0/kty` → `keys.keys[].kty`.
fn schema_path(pointer: &str) -> String {
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        if segment.parse::<usize>().is_ok() {
            path.push_str("[]");
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    path
}

// ---- 3b. every declared property is one the parser knows ----------------------------------

// ---- 3c. every field the parser knows is declared -----------------------------------------

#[test]
fn a_maximal_config_covers_the_schema_and_survives_a_round_trip() {
    let judges = Judges::new();
    let schema = schema();
    let config = maximal_config();
    let (mut set_paths, mut undeclared) = (BTreeSet::new(), BTreeSet::new());
    instance_paths(&config, &schema, "", &mut set_paths, &mut undeclared);
    assert!(
        undeclared.is_empty(),
        "the maximal config sets undeclared fields: {undeclared:?}"
    );
    // Hybrid mode excludes keys: its fields are covered by a maximal hybrid config.
    let hybrid_config = json!({ "host_verification": {
        "filter": "envoy.filters.http.jwt_authn",
        "payload_in_metadata": "jwt_payload"
    } });
    instance_paths(&hybrid_config, &schema, "", &mut set_paths, &mut undeclared);
    judges.assert_accepted("the maximal hybrid config", &hybrid_config);
    let unset: Vec<String> = declared_properties()
        .into_keys()
        .filter(|path| !set_paths.contains(path))
        .collect();
    assert!(unset.is_empty(), "the maximal configs leave out: {unset:?}");
    let gate = judges.assert_accepted("the maximal config", &config);

    // What the parser writes back (as `attestgate render` does) is declared and valid too.
    let written = serde_json::to_value(gate.config()).unwrap();
    let (mut written_paths, mut undeclared) = (BTreeSet::new(), BTreeSet::new());
    instance_paths(&written, &schema, "", &mut written_paths, &mut undeclared);
    assert!(
        undeclared.is_empty(),
        "the parser's config has fields the schema does not declare: {undeclared:?}"
    );
    judges.assert_accepted("the maximal config as the parser writes it", &written);
    let minimal = judges.assert_accepted(
        "the minimal config",
        &json!({ "keys": { "approov_secret": SECRET } }),
    );
    let written = serde_json::to_value(minimal.config()).unwrap();
    judges.assert_accepted("the minimal config as the parser writes it", &written);
    let reread: Config = serde_json::from_value(written).unwrap();
    assert_eq!(&reread, minimal.config());
}
