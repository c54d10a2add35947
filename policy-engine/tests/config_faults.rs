//! Runs tests/data/config_faults.yaml: every malformed config is refused at load, and the
//! message names the problem. The file's header documents the case format.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use attestgate_policy::Gate;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fault {
    name: String,
    #[serde(default)]
    config: Option<Map<String, Value>>,
    #[serde(default)]
    text: Option<String>,
    error: Vec<String>,
}

fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
}

/// The config every fault starts from: one good HS256 key, which loads.
fn base() -> Value {
    let jwks: Value = serde_json::from_str(
        &std::fs::read_to_string(data_dir().join("keys/hs256.pub.json")).unwrap(),
    )
    .unwrap();
    json!({ "keys": { "keys": jwks["keys"] } })
}

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().unwrap();
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn faults() -> Vec<Fault> {
    let text = std::fs::read_to_string(data_dir().join("config_faults.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn the_base_config_loads() {
    Gate::from_json(&base().to_string()).unwrap();
}

#[test]
fn every_malformed_config_is_refused_with_a_message_naming_the_problem() {
    let faults = faults();
    assert!(faults.len() >= 60, "only {} faults", faults.len());
    let mut failures = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for fault in &faults {
        assert!(names.insert(&fault.name), "{} twice", fault.name);
        assert!(
            !fault.error.is_empty(),
            "{}: no expected message",
            fault.name
        );
        let text = match (&fault.config, &fault.text) {
            (Some(patch), None) => {
                let mut config = base();
                if patch.contains_key("keys") {
                    // A fault's `keys` replaces the good key instead of adding to it.
                    config["keys"] = json!({});
                }
                merge(&mut config, &Value::Object(patch.clone()));
                config.to_string()
            }
            (None, Some(text)) => text.clone(),
            _ => panic!("{}: give `config` or `text`", fault.name),
        };
        match Gate::from_json(&text) {
            Ok(_) => failures.push(format!("{}: accepted\n  config: {text}", fault.name)),
            Err(err) => {
                let message = err.to_string();
                let missing: Vec<_> = fault
                    .error
                    .iter()
                    .filter(|part| !message.contains(part.as_str()))
                    .collect();
                if !missing.is_empty() {
                    failures.push(format!(
                        "{}: message lacks {missing:?}\n  message: {message}",
                        fault.name
                    ));
                }
            }
        }
    }
    println!(
        "config faults: {} refused as expected, {} failed",
        faults.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// regorus compiles a call to an undefined function and fails only when it is evaluated.
/// That cannot be caught at load, so it must fail closed on every request instead.
#[test]
fn an_undefined_function_is_not_caught_at_load_but_fails_closed() {
    let mut config = base();
    config["policy"] =
        json!({ "modules": { "p.rego": "package attestgate\ndecision := no_such_function(1)" } });
    let gate = Gate::from_json(&config.to_string()).unwrap();
    let key: Value =
        serde_json::from_str(&std::fs::read_to_string(data_dir().join("keys/hs256.json")).unwrap())
            .unwrap();
    let now = 1_700_000_000;
    let token = attestgate_testkit::SigningKey::from_jwk(&key)
        .unwrap()
        .sign(json!({ "exp": now + 60 }).as_object().unwrap())
        .unwrap();
    let request = attestgate_policy::Request::new("GET", "/").with_header("approov-token", token);
    let decision = gate.check(&request, now);
    assert!(!decision.allow, "{decision:?}");
    assert_eq!(decision.reason, attestgate_policy::Reason::PolicyError);
    assert!(
        decision
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("no_such_function")),
        "{decision:?}"
    );
}
