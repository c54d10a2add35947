//! Hybrid mode (`host_verification`): the gateway (Envoy's jwt_authn) verified the signature;
//! the gate checks everything else, and only with the gateway's record of this very token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use attestgate_policy::remote::{Dynamic, HostVerified};
use attestgate_policy::{DecisionCache, Gate, Reason, Request};
use attestgate_testkit::SigningKey;
use serde_json::json;

const NOW: i64 = 1_700_000_000;

fn gate(extra: &str) -> Gate {
    Gate::from_json(&format!(
        r#"{{"host_verification": {{"payload_in_metadata": "attestation"}},
             "claim_to_headers": [{{"claim": "did", "header": "x-device-id"}}]{extra}}}"#
    ))
    .unwrap()
}

fn es256_token(exp: i64) -> String {
    let jwk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/es256.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let claims = json!({"exp": exp, "did": "device-7"});
    SigningKey::from_jwk(&jwk)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn request(token: &str) -> Request {
    Request::new("GET", "/v1/shapes").with_header("approov-token", token)
}

fn check(gate: &Gate, token: &str, record: Option<HostVerified>) -> attestgate_policy::Decision {
    let mut dynamic = Dynamic {
        host_verified: record,
        ..Dynamic::default()
    };
    gate.check_with(&request(token), NOW, &mut dynamic)
}

fn record(exp: i64) -> Option<HostVerified> {
    Some(HostVerified {
        exp: Some(exp as f64),
    })
}

#[test]
fn a_token_the_gateway_verified_is_decided_without_local_keys() {
    let gate = gate("");
    let token = es256_token(NOW + 300);
    let decision = check(&gate, &token, record(NOW + 300));
    assert!(decision.allow, "{decision:?}");
    assert_eq!(decision.headers["x-device-id"], "device-7");
}

#[test]
fn without_the_gateways_record_the_request_is_refused() {
    let gate = gate("");
    let decision = check(&gate, &es256_token(NOW + 300), None);
    assert_eq!(
        (decision.allow, decision.status, decision.reason),
        (false, 401, Reason::SignatureInvalid)
    );
    assert!(decision.reasons[0].contains("attestation"), "{decision:?}");
}

#[test]
fn a_record_of_another_token_does_not_vouch_for_this_one() {
    let gate = gate("");
    let token = es256_token(NOW + 300);
    for other in [record(NOW + 301), Some(HostVerified { exp: None })] {
        let decision = check(&gate, &token, other);
        assert_eq!(
            (decision.allow, decision.reason),
            (false, Reason::SignatureInvalid)
        );
    }
}

#[test]
fn the_gate_still_checks_time_structure_and_policy() {
    let gate = gate(
        r#", "policy": {"modules": {"p.rego":
            "package attestgate\nimport rego.v1\ndefault decision := false\ndecision if input.token.claims.did == \"device-7\""}}"#,
    );
    let expired = es256_token(NOW - 600);
    let decision = check(&gate, &expired, record(NOW - 600));
    assert_eq!(decision.reason, Reason::TokenExpired);
    let decision = check(&gate, "not-a-token", record(NOW + 300));
    assert_eq!(decision.reason, Reason::TokenMalformed);
    let decision = check(&gate, &es256_token(NOW + 300), record(NOW + 300));
    assert!(decision.allow, "{decision:?}");
}

#[test]
fn the_cache_never_serves_a_decision_made_with_a_record_to_a_request_without_one() {
    let gate = gate("");
    let token = es256_token(NOW + 300);
    let mut cache = DecisionCache::new(100);
    let mut with = Dynamic {
        host_verified: record(NOW + 300),
        ..Dynamic::default()
    };
    let (allowed, _) = cache.check_with(&gate, &request(&token), NOW, &mut with);
    assert!(allowed.allow);
    let (again, _) = cache.check_with(&gate, &request(&token), NOW, &mut with);
    assert!(again.allow);
    assert_eq!(cache.stats().decision_hits, 1);
    let mut without = Dynamic::default();
    let (refused, _) = cache.check_with(&gate, &request(&token), NOW, &mut without);
    assert_eq!(
        (refused.allow, refused.reason),
        (false, Reason::SignatureInvalid)
    );
}

#[test]
fn local_keys_beside_host_verification_are_refused() {
    let err = Gate::from_json(
        r#"{"host_verification": {"payload_in_metadata": "attestation"},
            "keys": {"approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("keys"), "{err}");
    let err = Gate::from_json(r#"{"host_verification": {"payload_in_metadata": ""}}"#).unwrap_err();
    assert!(err.to_string().contains("host_verification"), "{err}");
    // Without host verification, keys are still required.
    assert!(Gate::from_json("{}").is_err());
}
