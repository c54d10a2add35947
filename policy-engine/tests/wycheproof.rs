//! Project Wycheproof JWS vectors: the gate must reject every invalid one.
//!
//! Each group's key becomes a one-key gate (`require_exp: false`, since the vectors carry no
//! claims). A key the loader refuses (P-521, `use: enc`, `key_ops: [encrypt]`) means the gate
//! cannot even be configured to accept the token, which is also a rejection.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestgate_policy::{Gate, Reason, Request};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    test_groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    public: Option<serde_json::Value>,
    private: Option<serde_json::Value>,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    tc_id: serde_json::Value,
    comment: String,
    jws: serde_json::Value,
    result: String,
}

/// Marked valid upstream, but their HMAC does not match the signing input as received
/// (see ../shared/README.md): a correct verifier rejects them.
const KNOWN_BAD_VALID: [&str; 2] = ["372", "373"];

#[test]
fn every_invalid_wycheproof_jws_is_rejected() {
    let suite: Suite =
        serde_json::from_str(include_str!("data/vectors/json_web_signature_test.json")).unwrap();
    let (mut rejected, mut valid_verified, mut valid_refused_payload) = (0, 0, 0);
    for group in &suite.test_groups {
        let key = group.public.as_ref().or(group.private.as_ref()).unwrap();
        let config = serde_json::json!({ "keys": { "keys": [key] }, "require_exp": false });
        let gate = Gate::from_json(&config.to_string());
        for case in &group.tests {
            // JSON serialization cases arrive as objects; a header carries them as their text.
            let token = match &case.jws {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let decision = gate.as_ref().ok().map(|gate| {
                gate.check(
                    &Request::new("GET", "/").with_header("approov-token", token.as_str()),
                    0,
                )
            });
            let accepted = decision.as_ref().is_some_and(|d| d.allow);
            let tc_id = match &case.tc_id {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let label = format!("tcId {tc_id} ({})", case.comment);
            if case.result == "invalid" || KNOWN_BAD_VALID.contains(&tc_id.as_str()) {
                assert!(!accepted, "{label} was accepted: {decision:?}");
                rejected += 1;
            } else if let Some(decision) = decision {
                // The signature must have verified: only the payload may be refused.
                // Valid signatures over non-object payloads fail only at the claims step, which
                // comes after signature verification; or the vector uses a key with another
                // algorithm than the one its JWK pins.
                if decision.allow {
                    valid_verified += 1;
                } else {
                    let about_claims = decision.reasons.iter().any(|r| r.contains("claims"));
                    let pinned_elsewhere = decision.reason == Reason::AlgNotAllowed
                        && key.get("alg") != Some(&serde_json::Value::String(header_alg(&token)));
                    assert!(
                        (decision.reason == Reason::TokenMalformed && about_claims)
                            || pinned_elsewhere,
                        "{label}: valid vector refused for the wrong reason: {decision:?}"
                    );
                    valid_refused_payload += 1;
                }
            }
        }
    }
    println!(
        "wycheproof: {rejected} invalid rejected, {valid_verified} valid accepted, \
         {valid_refused_payload} valid refused as non-JWT payloads"
    );
    assert!(rejected > 300, "only {rejected} invalid vectors ran");
}

/// The `alg` in a compact token's header.
fn header_alg(token: &str) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    let header = token.split('.').next().unwrap_or_default();
    let header: serde_json::Value =
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(header).unwrap()).unwrap();
    header["alg"].as_str().unwrap_or_default().to_owned()
}
