//! Claims-schema examples (tests/data/claims_cases.yaml) through the whole gate with the
//! default policy, policies/device_trust.rego: minted, verified, decided.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use attestgate_policy::{Gate, Reason, Request};
use attestgate_testkit::SigningKey;
use serde::Deserialize;
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    settings: Value,
    claims: Value,
    allow: bool,
    reasons: Vec<String>,
}

#[test]
fn claims_examples_pass_and_fail_the_default_policy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let policy = std::fs::read_to_string(root.join("../policies/device_trust.rego")).unwrap();
    let cases: Vec<Case> = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("tests/data/claims_cases.yaml")).unwrap(),
    )
    .unwrap();
    let key = SigningKey::hs256_from_base64_secret(SECRET).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let settings = if case.settings.is_null() {
            json!({})
        } else {
            case.settings.clone()
        };
        let config = json!({
            "keys": { "approov_secret": SECRET },
            "policy": {
                "modules": { "device_trust.rego": policy },
                "data": { "device_trust": settings },
            },
        });
        let gate = Gate::from_json(&config.to_string()).unwrap();
        let claims = json!({ "exp": NOW + 300, "iat": NOW, "did": "device-1", "att": case.claims });
        let token = key.sign(claims.as_object().unwrap()).unwrap();
        let decision = gate.check(
            &Request::new("GET", "/v1/items").with_header("approov-token", token.as_str()),
            NOW,
        );
        let want_reason = if case.allow {
            Reason::Allowed
        } else {
            Reason::PolicyDenied
        };
        if decision.allow != case.allow
            || decision.reason != want_reason
            || decision.reasons != case.reasons
        {
            failures.push(format!(
                "{}: expected allow={} reasons={:?}, got allow={} reason={} reasons={:?} detail={:?}",
                case.name, case.allow, case.reasons, decision.allow, decision.reason,
                decision.reasons, decision.detail
            ));
        }
    }
    println!(
        "claims cases: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(cases.len() >= 25);
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
