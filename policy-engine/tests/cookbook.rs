//! Known-answer tests from the JOSE cookbook (RFC 7520 §4, RFC 8037 §A.4, RFC 7797 §4.2).
//!
//! The payloads are prose, not JWT claims, so a correct gate verifies the signature and then
//! refuses the claims. The gate reads claims only after the signature verifies, so a refusal
//! at the claims step proves the signature was accepted; a one-bit change to the signature
//! must then turn it into `signature_invalid`.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestgate_policy::{ConfigError, Decision, Gate, Reason, Request};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let path = format!(
        "{}/tests/data/vectors/jose-cookbook/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A one-key gate for the vector's key, with private members removed.
fn gate_for(vector: &Value) -> Result<Gate, ConfigError> {
    let mut key = vector["input"]["key"].as_object().unwrap().clone();
    if key["kty"] != "oct" {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            key.remove(private);
        }
    }
    // RFC 7520 keys carry no `alg`: pin them to the vector's algorithm.
    key.entry("alg").or_insert(vector["input"]["alg"].clone());
    let config = serde_json::json!({ "keys": { "keys": [key] }, "require_exp": false });
    Gate::from_json(&config.to_string())
}

fn check(gate: &Gate, token: &str) -> Decision {
    gate.check(
        &Request::new("GET", "/").with_header("approov-token", token),
        0,
    )
}

fn flip_last_signature_char(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    // Change a middle character of the signature: the last one may carry only padding bits.
    let at = token.rfind('.').unwrap() + 3;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

#[test]
fn signatures_of_all_supported_families_verify() {
    for (name, alg) in [
        ("4_1.rsa_v15_signature.json", "RS256"),
        ("4_2.rsa-pss_signature.json", "PS384"),
        ("4_4.hmac-sha2_integrity_protection.json", "HS256"),
        ("rfc8037_ed25519.json", "EdDSA"),
    ] {
        let v = vector(name);
        assert_eq!(v["input"]["alg"], alg, "{name}");
        let gate = gate_for(&v).unwrap();
        let token = v["output"]["compact"].as_str().unwrap();

        let decision = check(&gate, token);
        assert_eq!(
            decision.reason,
            Reason::TokenMalformed,
            "{name}: {decision:?}"
        );
        assert!(
            decision.reasons.iter().any(|r| r.contains("claims")),
            "{name}: refused before the claims step: {decision:?}"
        );

        let forged = check(&gate, &flip_last_signature_char(token));
        assert_eq!(
            forged.reason,
            Reason::SignatureInvalid,
            "{name}: {forged:?}"
        );
    }
}

#[test]
fn p521_keys_are_refused_at_load() {
    // ES512 over P-521 is not offered: the config fails instead of tokens failing later.
    let err = gate_for(&vector("4_3.ecdsa_signature.json")).unwrap_err();
    assert!(err.to_string().contains("ES512"), "{err}");
}

#[test]
fn unencoded_payload_tokens_are_refused() {
    let v = vector("4.2.hmac-sha2_b64_false.json");
    let gate = gate_for(&v).unwrap();
    let flat = &v["output"]["json_flat"];
    let protected = flat["protected"].as_str().unwrap();
    let signature = flat["signature"].as_str().unwrap();
    // RFC 7797 compact form, with the raw payload and with it detached.
    for token in [
        format!("{protected}.$.02.{signature}"),
        format!("{protected}..{signature}"),
    ] {
        let decision = check(&gate, &token);
        assert_eq!(
            decision.reason,
            Reason::TokenMalformed,
            "{token}: {decision:?}"
        );
    }
    let detached = check(&gate, &format!("{protected}..{signature}"));
    assert!(
        detached.reasons.iter().any(|r| r.contains("b64")),
        "{detached:?}"
    );
}
