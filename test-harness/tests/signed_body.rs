//! Install-key request signatures through the built filter (issue #9): a route whose signature
//! covers `content-digest` holds the request at its headers, buffers the body and decides at
//! the end of the stream.
//!
//! The filter is `build/attestgate.wasm`, or the file `ATTESTGATE_WASM` names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use attestgate_harness::host::{Action, Host, HostOptions, HttpRequest, Profile};
use attestgate_policy::mint::{InstallSigner, SigningKey};
use attestgate_policy::signature::SignOptions;
use attestgate_policy::Request;
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const BODY: &[u8] = br#"{"amount": 100}"#;

fn host() -> Host {
    let path = std::env::var_os("ATTESTGATE_WASM").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/attestgate.wasm"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no filter at {}: run `make filter`",
        path.display()
    );
    Host::from_file(path, HostOptions::new(Profile::Envoy)).unwrap()
}

fn config() -> Vec<u8> {
    json!({
        "keys": { "approov_secret": SECRET },
        "rules": [{
            "name": "pay",
            "path_prefix": "/v1/pay",
            "signature": { "mode": "required", "components": ["@method", "@target-uri", "content-digest"] }
        }]
    })
    .to_string()
    .into_bytes()
}

fn install() -> InstallSigner {
    InstallSigner::from_slice(&[5; 32]).unwrap()
}

fn token() -> String {
    let claims = json!({ "exp": NOW + 300, "ipk": install().ipk() });
    SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

/// A signed POST as the app sends it: the headers, to be sent with `body`.
fn signed_post(path: &str, body: &[u8]) -> Vec<(String, String)> {
    let request = Request::new("POST", path)
        .with_host("api.example.com")
        .with_header("approov-token", token())
        .with_body(body.to_vec());
    let options = SignOptions::new(["@method", "@target-uri", "content-digest"], NOW);
    let signed = install().sign_request(request, &options).unwrap();
    signed.headers
}

fn http(path: &str, headers: &[(String, String)], body: &[u8]) -> HttpRequest {
    let mut request = HttpRequest::new("POST", path).body(body.to_vec());
    for (name, value) in headers {
        request = request.header(&name.to_ascii_lowercase(), value);
    }
    request
}

/// What one request came to: the action at the headers, the action at the body, the local
/// reply's status and reason, and the headers that went upstream.
type Run = (Action, Action, Option<(u32, String)>, Vec<(String, String)>);

/// Runs headers (not end of stream), then the whole body.
fn run(request: &HttpRequest) -> Run {
    let mut vm = host().vm(&config()).now(NOW).start().unwrap();
    let stream = vm.open(request).unwrap();
    let at_headers = vm.request_headers(stream, false).unwrap();
    assert!(
        vm.local_response(stream).is_none(),
        "decided before the body arrived"
    );
    let at_body = vm.request_body(stream, true).unwrap();
    let reply = vm.local_response(stream).map(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        (
            r.status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    });
    let upstream = vm.request_headers_of(stream);
    vm.close(stream).unwrap();
    assert!(vm.failure().is_none(), "{:?}", vm.failure());
    (at_headers, at_body, reply, upstream)
}

#[test]
fn a_signed_post_body_is_buffered_checked_and_let_through() {
    let headers = signed_post("/v1/pay?to=alice", BODY);
    let (at_headers, at_body, reply, upstream) = run(&http("/v1/pay?to=alice", &headers, BODY));
    assert_eq!(
        at_headers,
        Action::Pause,
        "the filter must wait for the body"
    );
    assert_eq!(reply, None);
    assert_eq!(at_body, Action::Continue);
    // The token header does not go upstream (forward: false), the signature headers do.
    assert!(upstream.iter().all(|(n, _)| n != "approov-token"));
    assert!(upstream.iter().any(|(n, _)| n == "signature"));
}

#[test]
fn a_tampered_body_or_missing_signature_is_refused_after_the_body() {
    let headers = signed_post("/v1/pay", BODY);
    let (at_headers, at_body, reply, _) = run(&http("/v1/pay", &headers, br#"{"amount": 900}"#));
    assert_eq!(at_headers, Action::Pause);
    assert_eq!(at_body, Action::Pause);
    assert_eq!(reply, Some((401, "request_signature_invalid".to_owned())));

    let unsigned: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(n, _)| !n.to_ascii_lowercase().starts_with("signature"))
        .collect();
    let (_, _, reply, _) = run(&http("/v1/pay", &unsigned, BODY));
    assert_eq!(reply, Some((401, "request_signature_missing".to_owned())));
}

#[test]
fn routes_without_a_body_signature_decide_at_the_headers() {
    let mut vm = host().vm(&config()).now(NOW).start().unwrap();
    let request = HttpRequest::new("POST", "/v1/other")
        .header("approov-token", &token())
        .body(BODY.to_vec());
    let outcome = vm.send(&request).unwrap();
    assert!(outcome.reached_upstream());
    // And a bodiless request to the signed route is decided at once (empty body).
    let headers = signed_post("/v1/pay", b"");
    let mut request = HttpRequest::new("POST", "/v1/pay");
    for (name, value) in &headers {
        request = request.header(&name.to_ascii_lowercase(), value);
    }
    let outcome = vm.send(&request).unwrap();
    assert!(outcome.reached_upstream(), "{:?}", outcome.local_response);
}
