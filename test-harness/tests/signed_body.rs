//! Install-key request signatures through the built filter (issue #9): a route whose signature
//! covers `content-digest` holds the request at its headers, buffers the body and decides at
//! the end of the stream.
//!
//! The filter is `build/attestgate.wasm`, or the file `ATTESTGATE_WASM` names (tests/common).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attestgate_harness::host::{Action, Host, HostOptions, HttpRequest, Profile};
use attestgate_policy::signature::{AccountKey, SignOptions};
use attestgate_policy::Request;
use attestgate_testkit::{ApproovSigner, InstallSigner, SigningKey};
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const BODY: &[u8] = br#"{"amount": 100}"#;

fn host() -> Host {
    host_with(Profile::Envoy)
}

fn host_with(profile: Profile) -> Host {
    Host::from_file(common::filter_path(), HostOptions::new(profile)).unwrap()
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

    // Unsigned: nothing covers the body, so the request is refused at its headers.
    let unsigned: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(n, _)| !n.to_ascii_lowercase().starts_with("signature"))
        .collect();
    let mut vm = host().vm(&config()).now(NOW).start().unwrap();
    let stream = vm.open(&http("/v1/pay", &unsigned, BODY)).unwrap();
    assert_eq!(vm.request_headers(stream, false).unwrap(), Action::Pause);
    let reply = vm.local_response(stream).expect("refused at the headers");
    assert_eq!(reply.status, 401);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"], "request_signature_missing");
}

/// The issue #15 config: the install signature required over `@method`, `@target-uri` and the
/// token; the app covers more, and `content-digest` only on requests with a body.
fn sdk_config(max_body_bytes: usize) -> Vec<u8> {
    json!({
        "keys": { "approov_secret": SECRET },
        "signature": {
            "mode": "required",
            "components": ["@method", "@target-uri", "approov-token"],
            "account_secret": ACCOUNT,
            "max_body_bytes": max_body_bytes
        }
    })
    .to_string()
    .into_bytes()
}

const ACCOUNT: &str = "YWNjb3VudC1tZXNzYWdlLXNpZ25pbmcta2V5LTMyYnl0ZXMhIQ==";

/// A request signed as Approov's SDK signs it: install and account members.
fn sdk_signed(method: &str, path: &str, body: Option<&[u8]>) -> HttpRequest {
    let mut request = Request::new(method, path)
        .with_host("api.example.com")
        .with_header("approov-token", token())
        .with_header("authorization", "Bearer user-1");
    if let Some(body) = body {
        request = request
            .with_header("content-type", "application/json")
            .with_body(body.to_vec());
    }
    let signer = ApproovSigner {
        install: Some(install()),
        account: Some(AccountKey::from_base64(ACCOUNT).unwrap()),
    };
    let signed = signer.sign_request(request, NOW).unwrap();
    let mut http = HttpRequest::new(method, path);
    for (name, value) in &signed.headers {
        http = http.header(&name.to_ascii_lowercase(), value);
    }
    match &signed.body {
        Some(body) => http.body(body.clone()),
        None => http,
    }
}

#[test]
fn one_config_passes_the_sdks_signed_get_and_post() {
    let mut vm = host().vm(&sdk_config(1024)).now(NOW).start().unwrap();
    // GET: no body, no digest: decided at the headers.
    let get = sdk_signed("GET", "/v1/shapes", None);
    let outcome = vm.send(&get).unwrap();
    assert!(outcome.reached_upstream(), "{:?}", outcome.local_response);
    // POST: the signature covers content-digest, so the filter waits for the body.
    let post = sdk_signed("POST", "/v1/pay", Some(BODY));
    let stream = vm.open(&post).unwrap();
    assert_eq!(vm.request_headers(stream, false).unwrap(), Action::Pause);
    assert!(vm.local_response(stream).is_none());
    assert_eq!(vm.request_body(stream, true).unwrap(), Action::Continue);
    assert!(vm.local_response(stream).is_none());
    vm.close(stream).unwrap();
    // The same POST with another body: refused once the body is in.
    let tampered = sdk_signed("POST", "/v1/pay", Some(BODY)).body(br#"{"amount": 900}"#.to_vec());
    let outcome = vm.send(&tampered).unwrap();
    let reply = outcome.local_response.expect("refused");
    assert_eq!(reply.status, 401);
    assert!(vm.failure().is_none(), "{:?}", vm.failure());
}

#[test]
fn a_body_over_max_body_bytes_is_refused_with_413_without_buffering_more() {
    let mut vm = host().vm(&sdk_config(8)).now(NOW).start().unwrap();
    let post = sdk_signed("POST", "/v1/pay", Some(BODY));
    let stream = vm.open(&post).unwrap();
    assert_eq!(vm.request_headers(stream, false).unwrap(), Action::Pause);
    // The first chunk already passes the cap: decided there, before the end of the stream.
    vm.request_body(stream, false).unwrap();
    let reply = vm.local_response(stream).expect("refused at the cap");
    assert_eq!(reply.status, 413);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"], "body_too_large");
    assert!(vm.failure().is_none(), "{:?}", vm.failure());
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
