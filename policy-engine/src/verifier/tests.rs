//! Project Wycheproof's ECDSA P-256/SHA-256 (P1363 and DER) and RSA PKCS#1 v1.5 2048/SHA-256
//! vectors through the seam: the built-in verifier, and a host verifier that takes DER
//! signatures as BoringSSL does (RustCrypto standing in). Both must give every vector its
//! expected verdict, and each other's on the `acceptable` ones.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64ct::Encoding as _;
use p256::pkcs8::DecodePublicKey;
use rsa::signature::Verifier as _;
use serde_json::{json, Map, Value};

use super::known_answers::KNOWN_ANSWERS;
use super::*;
use crate::keys::Key;

/// A host that checks DER ECDSA signatures and RSA PKCS#1 v1.5, as Envoy's
/// `verify_signature` does, with RustCrypto.
#[derive(Debug)]
struct DerHost;

impl HostVerifier for DerHost {
    fn verify(&self, check: &HostCheck<'_>) -> Option<bool> {
        Some(match check.scheme {
            Scheme::EcdsaP256Sha256 => {
                let key = VerifyingKey::from_public_key_der(check.public_key).ok()?;
                let der = check.der_signature()?;
                let signature = Signature::from_der(&der).ok()?;
                key.verify(check.message, &signature).is_ok()
            }
            Scheme::RsaPkcs1Sha256 => {
                let key = rsa::RsaPublicKey::from_public_key_der(check.public_key).ok()?;
                let signature = rsa::pkcs1v15::Signature::try_from(check.signature).ok()?;
                rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key)
                    .verify(check.message, &signature)
                    .is_ok()
            }
            _ => return None,
        })
    }
}

fn verifiers() -> Vec<(&'static str, Verifier)> {
    let (host, report) = Verifier::probed(Box::new(DerHost));
    assert_eq!(
        report.on_host(),
        [Scheme::EcdsaP256Sha256, Scheme::RsaPkcs1Sha256],
        "{report}"
    );
    #[allow(unused_mut)]
    let mut verifiers = vec![("built in", Verifier::default()), ("host", host)];
    #[cfg(feature = "native-crypto")]
    {
        let (native, report) = Verifier::probed(Box::new(NativeVerifier));
        assert_eq!(report.on_host(), Scheme::ALL, "{report}");
        verifiers.push(("ring", native));
    }
    verifiers
}

fn suite(name: &str) -> Value {
    let path = format!("{}/tests/data/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn key(jwk: &Value, alg: &str) -> Key {
    let mut jwk: Map<String, Value> = jwk.as_object().unwrap().clone();
    jwk.insert("alg".into(), json!(alg));
    jwk.remove("kid");
    Key::from_jwk(0, &jwk).unwrap()
}

/// Runs every case of `suite` through every verifier; `signature` turns the vector's into
/// what a JWS or RFC 9421 signature carries (`None`: it cannot be carried, so it must be one
/// Wycheproof calls invalid). Returns how many cases were checked.
fn run(suite: &Value, jwk: &str, alg: &str, signature: impl Fn(&[u8]) -> Option<Vec<u8>>) -> usize {
    let verifiers = verifiers();
    let mut checked = 0;
    for group in suite["testGroups"].as_array().unwrap() {
        let key = key(&group[jwk], alg);
        for case in group["tests"].as_array().unwrap() {
            let id = &case["tcId"];
            let result = case["result"].as_str().unwrap();
            let Some(sig) = signature(&hex(case["sig"].as_str().unwrap())) else {
                assert_eq!(
                    result, "invalid",
                    "case {id} cannot be carried but is {result}"
                );
                continue;
            };
            let msg = hex(case["msg"].as_str().unwrap());
            let verdicts: Vec<bool> = verifiers
                .iter()
                .map(|(_, verifier)| key.verify_signature(verifier, &msg, &sig))
                .collect();
            for ((name, _), verdict) in verifiers.iter().zip(&verdicts) {
                match result {
                    "valid" => assert!(verdict, "{name}: case {id} ({}) refused", case["comment"]),
                    "invalid" => {
                        assert!(!verdict, "{name}: case {id} ({}) accepted", case["comment"])
                    }
                    _ => {}
                }
            }
            assert!(
                verdicts.windows(2).all(|w| w[0] == w[1]),
                "case {id}: {verdicts:?}"
            );
            checked += 1;
        }
    }
    checked
}

/// The P-256 suites' groups as JWKs, from the uncompressed point (not every group has one).
fn with_point_jwks(mut suite: Value) -> Value {
    for group in suite["testGroups"].as_array_mut().unwrap() {
        let point = hex(group["publicKey"]["uncompressed"].as_str().unwrap());
        let b64 = |bytes: &[u8]| base64ct::Base64UrlUnpadded::encode_string(bytes);
        group["jwk"] =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
    }
    suite
}

#[test]
fn wycheproof_ecdsa_p1363_vectors_decide_alike() {
    let suite = with_point_jwks(suite("ecdsa_secp256r1_sha256_p1363_test.json"));
    let checked = run(&suite, "jwk", "ES256", |sig| Some(sig.to_vec()));
    assert_eq!(checked, 262);
}

#[test]
fn wycheproof_ecdsa_der_vectors_decide_alike_where_r_s_can_carry_them() {
    let suite = with_point_jwks(suite("ecdsa_secp256r1_sha256_test.json"));
    // Strict DER only; JWS and RFC 9421 carry r || s, so a BER or malformed encoding cannot
    // reach the verifier at all (`run` checks each of those is one Wycheproof calls invalid).
    let checked = run(&suite, "jwk", "ES256", |der| {
        Signature::from_der(der).ok().map(|s| s.to_bytes().to_vec())
    });
    assert_eq!(checked, 197);
}

#[test]
fn wycheproof_rsa_pkcs1_vectors_decide_alike() {
    let checked = run(
        &suite("rsa_signature_2048_sha256_test.json"),
        "keyJwk",
        "RS256",
        |sig| Some(sig.to_vec()),
    );
    assert_eq!(checked, 259);
}

#[test]
fn a_host_that_fails_its_known_answers_checks_nothing() {
    #[derive(Debug)]
    struct Says(Option<bool>);
    impl HostVerifier for Says {
        fn verify(&self, _: &HostCheck<'_>) -> Option<bool> {
            self.0
        }
    }
    for (answer, refusal) in [
        (Some(true), Refusal::AcceptedForgery),
        (Some(false), Refusal::RefusedValid),
        (None, Refusal::Unavailable),
    ] {
        let (verifier, report) = Verifier::probed(Box::new(Says(answer)));
        assert!(report.on_host().is_empty());
        assert!(report.refused().iter().all(|(_, why)| *why == refusal));
        assert!(verifier.host.is_none());
    }
    let (_, report) = Verifier::probed(Box::new(Says(Some(true))));
    assert_eq!(
        report.to_string(),
        "every signature by the built-in verifier (the host accepted a signature over another \
         message for ES256; accepted a signature over another message for RS256; accepted a \
         signature over another message for RS384; accepted a signature over another message \
         for RS512)"
    );
}

#[test]
fn malformed_ecdsa_signatures_never_reach_the_host() {
    #[derive(Debug)]
    struct Panics;
    impl HostVerifier for Panics {
        fn verify(&self, check: &HostCheck<'_>) -> Option<bool> {
            // Only well-formed r || s reach here: the known answers, and the valid case below.
            if check.scheme == Scheme::EcdsaP256Sha256 {
                assert_eq!(check.signature.len(), 64);
            }
            let answer = KNOWN_ANSWERS.iter().find(|a| a.scheme == check.scheme)?;
            let (valid, _) = answer.checks()?;
            Some(check.message == valid.message)
        }
    }
    let (verifier, report) = Verifier::probed(Box::new(Panics));
    assert_eq!(report.on_host().len(), 4, "{report}");
    let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    let public = *key.verifying_key();
    let n = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let mut r_is_n = n.clone();
    r_is_n.extend_from_slice(&[1; 32]);
    for bad in [vec![0u8; 64], vec![1u8; 63], vec![1u8; 65], r_is_n, {
        let mut zero_s = vec![1u8; 32];
        zero_s.extend_from_slice(&[0; 32]);
        zero_s
    }] {
        assert!(!verifier.ecdsa_p256(&public, None, b"m", &bad));
    }
}
