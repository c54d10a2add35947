//! The filter under the `kong` profile, which reproduces what a real ngx_wasm_module host (the
//! commit Kong 3.10 pins, on nginx 1.27.4 and the wasmtime 26 C API) was seen to do (issue #14):
//!
//! - a removed request header is hidden from the filter but still forwarded by nginx's proxy
//!   module; only replacing a header that came once changes what the upstream gets;
//! - a pause at the request headers is never resumed: the request hangs; the body callback
//!   comes once, with the whole body, only for a non-empty body the headers let on;
//! - a config `on_configure` refuses kills the worker (tests/host.rs covers the config).
//!
//! Every test here fails on the filter of before issue #14 (it leaked the token, let client
//! copies of the gate's headers through and hung on signed bodies) and passes on the one now.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attestgate_harness::host::{HttpOutcome, HttpRequest, Profile, Vm};
use attestgate_policy::signature::AccountKey;
use attestgate_policy::Request;
use attestgate_testkit::{ApproovSigner, InstallSigner, SigningKey};
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const ACCOUNT: &str = "YWNjb3VudC1tZXNzYWdlLXNpZ25pbmcta2V5LTMyYnl0ZXMhIQ==";
const BODY: &[u8] = br#"{"to":"alice","amount":100}"#;

fn install() -> InstallSigner {
    InstallSigner::from_slice(&[21; 32]).unwrap()
}

fn token() -> String {
    let claims = json!({
        "exp": NOW + 300,
        "did": "device-1",
        "ipk": install().ipk(),
        "att": { "device": { "platform": "android" } },
    });
    SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn vm(config: &Value) -> Vm {
    common::filter(Profile::Kong)
        .vm(config.to_string().as_bytes())
        .now(NOW)
        .start()
        .unwrap()
}

fn gate_config() -> Value {
    json!({
        "keys": { "approov_secret": SECRET },
        "claim_to_headers": [
            { "claim": "did", "header": "x-device-id" },
            { "claim": "att.device.platform", "header": "x-device-platform" },
        ],
        "rules": [{ "path_prefix": "/beta", "mode": "monitor" }],
    })
}

fn values<'a>(outcome: &'a HttpOutcome, name: &str) -> Vec<&'a str> {
    outcome
        .upstream_headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn reply(outcome: &HttpOutcome) -> (u32, String) {
    let reply = outcome.local_response.as_ref().expect("a local reply");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    (
        reply.status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Issue #14, item 1: the upstream got the token, the client's `x-device-id` before the
/// verified one, its `X-Device-Platform` and its `x-attestgate-*` headers.
#[test]
fn no_token_and_no_client_copy_of_a_gate_header_reaches_the_upstream() {
    let mut vm = vm(&gate_config());
    let request = HttpRequest::get("/v1/shapes")
        .header("approov-token", &token())
        .header("x-device-id", "attacker-device")
        .header("X-Device-Platform", "ios")
        .header("x-attestgate-decision", "allow")
        .header("X-Attestgate-Reason", "allowed");
    let outcome = vm.send(&request).unwrap();
    assert!(outcome.reached_upstream(), "{outcome:?}");
    // What nginx forwards: the token's value is gone (the header blanked in place, as removal
    // does not reach nginx's proxy module), each gate header once, with the gate's value.
    assert_eq!(values(&outcome, "approov-token"), [""]);
    assert_eq!(values(&outcome, "x-device-id"), ["device-1"]);
    assert_eq!(values(&outcome, "x-device-platform"), ["android"]);
    assert_eq!(values(&outcome, "x-attestgate-decision"), [""]);
    assert_eq!(values(&outcome, "x-attestgate-reason"), [""]);
    // Monitor mode sets the decision headers: the client's copies are replaced, not joined.
    let outcome = vm
        .send(
            &HttpRequest::get("/beta/x")
                .header("x-attestgate-decision", "allow")
                .header("x-device-id", "attacker-device"),
        )
        .unwrap();
    assert!(outcome.reached_upstream(), "{outcome:?}");
    assert_eq!(values(&outcome, "x-attestgate-decision"), ["deny"]);
    assert_eq!(values(&outcome, "x-attestgate-reason"), ["token_missing"]);
    assert_eq!(values(&outcome, "x-device-id"), [""]);
    assert!(vm.failure().is_none(), "{:?}", vm.failure());
}

/// A gate header the client sent twice cannot be made exact on this host (replacing one copy
/// leaves the other on the way upstream): refused before anything is forwarded.
#[test]
fn a_repeated_gate_header_is_refused_rather_than_half_replaced() {
    let mut vm = vm(&gate_config());
    let request = HttpRequest::get("/v1/shapes")
        .header("approov-token", &token())
        .header("x-device-id", "a1")
        .header("X-Device-Id", "a2");
    let outcome = vm.send(&request).unwrap();
    assert!(!outcome.reached_upstream());
    assert_eq!(reply(&outcome), (400, "duplicate_header".to_owned()));
    assert_eq!(vm.metric("attestgate.denied.duplicate_header"), Some(1));
}

/// Issue #26: another spelling of a gate header (`_` for `-`) is the same header to an
/// upstream that folds them. Blanked in place where the gate sets nothing under that name;
/// refused where the gate sets the header, since a blank second copy would still arrive.
#[test]
fn other_spellings_of_gate_headers_are_blanked_or_refused() {
    let mut vm = vm(&gate_config());
    let request = HttpRequest::get("/v1/shapes")
        .header("approov-token", &token())
        .header("approov_token", "spoofed")
        .header("X_Attestgate_Decision", "allow");
    let outcome = vm.send(&request).unwrap();
    assert!(outcome.reached_upstream(), "{outcome:?}");
    assert_eq!(values(&outcome, "approov-token"), [""]);
    assert_eq!(values(&outcome, "approov_token"), [""]);
    assert_eq!(values(&outcome, "x_attestgate_decision"), [""]);
    assert_eq!(values(&outcome, "x-device-id"), ["device-1"]);
    let request = HttpRequest::get("/v1/shapes")
        .header("approov-token", &token())
        .header("X_Device_Id", "spoofed");
    let outcome = vm.send(&request).unwrap();
    assert!(!outcome.reached_upstream(), "{outcome:?}");
    assert_eq!(reply(&outcome), (400, "duplicate_header".to_owned()));
    assert!(vm.failure().is_none(), "{:?}", vm.failure());
}

fn signed_config(max_body_bytes: usize) -> Value {
    json!({
        "keys": { "approov_secret": SECRET },
        "signature": {
            "mode": "required",
            "components": ["@method", "@target-uri", "approov-token"],
            "account_secret": ACCOUNT,
            "max_body_bytes": max_body_bytes,
        },
    })
}

/// A request as Approov's SDK signs it, sent as nginx hands it to the filter.
fn signed(method: &str, path: &str, body: Option<&[u8]>) -> HttpRequest {
    let mut request = Request::new(method, path)
        .with_host("api.example.com")
        .with_header("approov-token", token());
    if let Some(body) = body {
        request = request
            .with_header("content-type", "application/json")
            .with_header("content-length", body.len().to_string())
            .with_body(body.to_vec());
    }
    let signer = ApproovSigner {
        install: Some(install()),
        account: Some(AccountKey::from_base64(ACCOUNT).unwrap()),
    };
    // Approov's default components, and content-digest whenever there is a body.
    let signed = signer.sign_request(request, NOW).unwrap();
    let mut http = HttpRequest::new(method, path).authority("api.example.com");
    for (name, value) in &signed.headers {
        http = http.header(name, value);
    }
    match signed.body {
        Some(body) => http.body(body),
        None => http,
    }
}

/// Issue #14, item 2: every request on a route whose signature covers `content-digest` hung
/// (the config here is one the filter of before accepted too).
#[test]
fn signed_bodies_are_decided_at_the_body_instead_of_hanging() {
    let mut vm = vm(&json!({
        "keys": { "approov_secret": SECRET },
        "rules": [{ "path_prefix": "/v1/pay", "signature": {
            "mode": "required", "components": ["@method", "@target-uri", "content-digest"] } }],
    }));
    // A signed POST: let on at the headers, decided at the body callback.
    let post = signed("POST", "/v1/pay", Some(BODY));
    let outcome = vm.send(&post).unwrap();
    assert!(!outcome.hung, "the request hung");
    assert!(outcome.reached_upstream(), "{outcome:?}");
    assert_eq!(values(&outcome, "approov-token"), [""]);
    // The same headers with another body: refused at the body, nothing forwarded.
    let tampered =
        signed("POST", "/v1/pay", Some(BODY)).body(br#"{"to":"mallory","amount":100}"#.to_vec());
    let outcome = vm.send(&tampered).unwrap();
    assert!(!outcome.hung && !outcome.reached_upstream(), "{outcome:?}");
    assert_eq!(
        reply(&outcome),
        (401, "request_signature_invalid".to_owned())
    );
    // A GET elsewhere: decided at the headers.
    let outcome = vm.send(&signed("GET", "/v1/shapes", None)).unwrap();
    assert!(outcome.reached_upstream(), "{outcome:?}");
    // Unsigned: refused at the headers.
    let outcome = vm
        .send(
            &HttpRequest::new("POST", "/v1/pay")
                .header("approov-token", &token())
                .body(BODY.to_vec()),
        )
        .unwrap();
    assert_eq!(
        reply(&outcome),
        (401, "request_signature_missing".to_owned())
    );
    assert!(vm.failure().is_none(), "{:?}", vm.failure());
}

/// nginx never calls the body callback for an empty chunked body, so a request the gate must
/// decide on its body is refused unless it says how long the body is; one over the cap is
/// refused at the body.
#[test]
fn a_signed_body_needs_a_length_and_stays_under_the_cap() {
    let mut vm = vm(&signed_config(8));
    let mut chunked = signed("POST", "/v1/pay", Some(BODY));
    chunked
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("content-length"));
    chunked
        .headers
        .push(("transfer-encoding".to_owned(), "chunked".to_owned()));
    let outcome = vm.send(&chunked).unwrap();
    assert_eq!(reply(&outcome), (411, "length_required".to_owned()));
    let outcome = vm.send(&signed("POST", "/v1/pay", Some(BODY))).unwrap();
    assert_eq!(reply(&outcome), (413, "body_too_large".to_owned()));
}
