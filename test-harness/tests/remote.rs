//! Keys and lists that change without a redeploy, through the shipped filter in the harness:
//! the remote JWKS (fetch, failure, garbage, oversized, timeout, rotation, unknown-kid storm,
//! one fetch for all workers), the remote denylist, and per-device rate limits shared by
//! workers.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use attestgate_harness::host::{
    Action, HttpCallResponse, HttpRequest, PendingHttpCall, Profile, SharedData, StreamId, Vm,
};
use attestgate_testkit::SigningKey;
use serde_json::{json, Value};

mod common;
use common::filter;

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn key_file(name: &str) -> Value {
    let path = root().join(format!("policy-engine/tests/data/keys/{name}"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn jwks(name: &str) -> String {
    key_file(&format!("{name}.pub.json")).to_string()
}

/// An ES256 token from the named test key, valid from the harness's start for 10 minutes.
fn token(key: &str, claims: Value) -> String {
    let mut claims = claims;
    claims["exp"] = json!(NOW + 600);
    SigningKey::from_jwk(&key_file(&format!("{key}.json")))
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn remote(upstream: &str) -> Value {
    json!({"upstream": upstream, "authority": "keys.example.com", "path": "/jwks.json",
           "refresh_seconds": 60, "timeout_ms": 2000, "max_bytes": 4096})
}

fn jwks_config(upstream: &str) -> Vec<u8> {
    json!({"keys": {"remote": remote(upstream)}})
        .to_string()
        .into_bytes()
}

fn start(shared: &SharedData) -> Vm {
    filter(Profile::Envoy)
        .vm(&jwks_config("jwks"))
        .cluster("jwks")
        .now(NOW)
        .shared(shared)
        .start()
        .unwrap()
}

fn get(vm: &mut Vm, token: &str) -> (u32, String) {
    let outcome = vm
        .send(&HttpRequest::get("/v1/shapes").header("approov-token", token))
        .unwrap();
    match outcome.local_response {
        Some(reply) => (
            reply.status,
            reply.header("x-attestgate-reason").unwrap_or("").to_owned(),
        ),
        None => (200, "allowed".to_owned()),
    }
}

/// Opens a GET with `token` and runs its headers: the filter must hold it (pause, no answer).
fn hold(vm: &mut Vm, token: &str) -> StreamId {
    let stream = vm
        .open(&HttpRequest::get("/v1/shapes").header("approov-token", token))
        .unwrap();
    assert_eq!(vm.request_headers(stream, true).unwrap(), Action::Pause);
    assert!(vm.local_response(stream).is_none(), "answered while held");
    stream
}

fn only_call(vm: &Vm) -> PendingHttpCall {
    let calls = vm.pending_http_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls.into_iter().next().unwrap()
}

fn answer(vm: &mut Vm, status: u16, body: &str) {
    let call = only_call(vm);
    vm.respond_http_call(call.token, HttpCallResponse::new(status, body))
        .unwrap();
}

#[test]
fn keys_arrive_with_the_first_fetch_and_requests_wait_for_them() {
    let mut vm = start(&SharedData::new());
    let call = only_call(&vm);
    assert_eq!(call.upstream, "jwks");
    for (name, value) in [
        (":method", "GET"),
        (":path", "/jwks.json"),
        (":authority", "keys.example.com"),
    ] {
        assert!(
            call.headers.contains(&(name.to_owned(), value.to_owned())),
            "{call:?}"
        );
    }
    assert_eq!(call.timeout_ms, 2000);
    let good = token("es256", json!({"did": "d1"}));
    let forged = token("es256_other", json!({"did": "d1"}));
    // While the fetch is on its way, requests are held: neither answered nor let on.
    let held_good = hold(&mut vm, &good);
    let held_forged = hold(&mut vm, &forged);
    let gone = hold(&mut vm, &good);
    vm.close(gone).unwrap(); // the client gave up while held
    answer(&mut vm, 200, &jwks("es256"));
    // Decided with the keys that came: the good one let on, the forged one refused.
    assert_eq!(vm.local_response(held_good).map(|r| r.status), None);
    assert_eq!(vm.resumed(held_good), 1);
    let refused = vm
        .local_response(held_forged)
        .expect("the forged token is answered");
    assert_eq!(
        (refused.status, refused.header("x-attestgate-reason")),
        (401, Some("signature_invalid"))
    );
    assert_eq!(vm.resumed(held_forged), 0);
    assert!(vm
        .logs()
        .iter()
        .any(|l| l.message == "decided 2 request(s) held for the first JWKS"));
    vm.close(held_good).unwrap();
    vm.close(held_forged).unwrap();
    assert_eq!(get(&mut vm, &good).0, 200);
    assert_eq!(vm.metric("attestgate.jwks.fetched"), Some(1));
    // Nothing more until the refresh interval has passed.
    vm.advance(Duration::from_secs(59)).unwrap();
    assert!(vm.pending_http_calls().is_empty());
    vm.advance(Duration::from_secs(1)).unwrap();
    assert_eq!(only_call(&vm).upstream, "jwks");
}

#[test]
fn a_failed_garbled_or_oversized_fetch_keeps_the_last_good_keys() {
    let mut vm = start(&SharedData::new());
    answer(&mut vm, 200, &jwks("es256"));
    let good = token("es256", json!({"did": "d1"}));
    let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(5000));
    let bad_answers: [(&str, Option<(u16, &str)>); 5] = [
        ("timeout", None),
        ("server error", Some((500, "oops"))),
        ("not json", Some((200, "<html>"))),
        (
            "no usable key",
            Some((200, r#"{"keys":[{"kty":"EC","crv":"P-521"}]}"#)),
        ),
        ("oversized", Some((200, &big))),
    ];
    for (index, (label, response)) in bad_answers.into_iter().enumerate() {
        // The first retry comes after the refresh interval, later ones after 30 s.
        vm.advance(Duration::from_secs(if index == 0 { 60 } else { 30 }))
            .unwrap();
        let call = only_call(&vm);
        match response {
            None => vm.fail_http_call(call.token).unwrap(),
            Some((status, body)) => vm
                .respond_http_call(call.token, HttpCallResponse::new(status, body))
                .unwrap(),
        }
        assert_eq!(get(&mut vm, &good).0, 200, "{label}: keys lost");
        assert_eq!(
            vm.metric("attestgate.jwks.fetch_failed"),
            Some(index as u64 + 1),
            "{label}"
        );
    }
    assert!(vm
        .logs()
        .iter()
        .any(|l| l.message.contains("over max_bytes")));
}

#[test]
fn rotation_takes_effect_at_the_next_refresh() {
    let mut vm = start(&SharedData::new());
    answer(&mut vm, 200, &jwks("es256"));
    let old = token("es256", json!({"did": "d1"}));
    let new = token("es256_other", json!({"did": "d1"}));
    assert_eq!(get(&mut vm, &old).0, 200);
    assert_eq!(get(&mut vm, &new), (401, "signature_invalid".to_owned()));
    vm.advance(Duration::from_secs(60)).unwrap();
    answer(&mut vm, 200, &jwks("es256_other"));
    assert_eq!(get(&mut vm, &new).0, 200, "the new key verifies");
    assert_eq!(
        get(&mut vm, &old),
        (401, "signature_invalid".to_owned()),
        "the removed key does not"
    );
}

#[test]
fn unknown_kids_cause_at_most_one_early_fetch_per_interval() {
    let mut vm = start(&SharedData::new());
    answer(&mut vm, 200, &jwks("es256"));
    let forged = |kid: String| {
        let claims = json!({"exp": NOW + 600});
        SigningKey::from_jwk(&key_file("es256.json"))
            .unwrap()
            .with_kid(Some(kid))
            .sign(claims.as_object().unwrap())
            .unwrap()
    };
    for i in 0..50 {
        assert_eq!(
            get(&mut vm, &forged(format!("kid-{i}"))),
            (401, "key_not_found".to_owned())
        );
    }
    // The next tick fetches once, early.
    vm.advance(Duration::from_secs(1)).unwrap();
    answer(&mut vm, 200, &jwks("es256"));
    for i in 50..100 {
        get(&mut vm, &forged(format!("kid-{i}")));
    }
    vm.advance(Duration::from_secs(30)).unwrap();
    assert!(
        vm.pending_http_calls().is_empty(),
        "a second early fetch within the interval"
    );
    assert_eq!(vm.metric("attestgate.jwks.fetched"), Some(2));
}

#[test]
fn a_failed_first_fetch_answers_the_held_requests_and_holds_no_more_until_the_retry() {
    let mut vm = start(&SharedData::new());
    let good = token("es256", json!({"did": "d1"}));
    let held = hold(&mut vm, &good);
    vm.fail_http_call(only_call(&vm).token).unwrap();
    let reply = vm
        .local_response(held)
        .expect("answered once the fetch failed");
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (503, Some("keys_unavailable"))
    );
    vm.close(held).unwrap();
    // No fetch on its way: answered at once, not held, until the retry brings keys. A first
    // fetch's failure leaves the schedule alone: the retry comes once its claim lapses
    // (timeout_ms + 1 s), not 30 s later.
    assert_eq!(get(&mut vm, &good), (503, "keys_unavailable".to_owned()));
    vm.advance(Duration::from_secs(2)).unwrap();
    assert!(vm.pending_http_calls().is_empty());
    vm.advance(Duration::from_secs(1)).unwrap();
    let held = hold(&mut vm, &good);
    answer(&mut vm, 200, &jwks("es256"));
    assert_eq!(vm.resumed(held), 1);
}

#[test]
fn a_held_post_waits_with_its_body() {
    let mut vm = start(&SharedData::new());
    let good = token("es256", json!({"did": "d1"}));
    let stream = vm
        .open(
            &HttpRequest::new("POST", "/v1/shapes")
                .header("approov-token", &good)
                .body("{}"),
        )
        .unwrap();
    assert_eq!(vm.request_headers(stream, false).unwrap(), Action::Pause);
    // The body must not let the request on before it is decided.
    assert_eq!(vm.request_body(stream, true).unwrap(), Action::Pause);
    answer(&mut vm, 200, &jwks("es256"));
    assert_eq!(vm.resumed(stream), 1);
    assert!(vm.local_response(stream).is_none());
}

#[test]
fn one_fetch_per_refresh_serves_every_worker() {
    let shared = SharedData::new();
    let mut first = start(&shared);
    answer(&mut first, 200, &jwks("es256"));
    // A worker starting after the first fetch landed takes the keys from shared data.
    let mut second = start(&shared);
    assert!(second.pending_http_calls().is_empty());
    let good = token("es256", json!({"did": "d1"}));
    assert_eq!(get(&mut second, &good).0, 200);
    // At the refresh one worker fetches; the other picks the new keys up on a request.
    first.advance(Duration::from_secs(60)).unwrap();
    second.advance(Duration::from_secs(60)).unwrap();
    assert_eq!(
        first.pending_http_calls().len() + second.pending_http_calls().len(),
        1
    );
    assert_eq!(second.metric("attestgate.jwks.fetched"), Some(0));
}

#[test]
fn workers_starting_together_each_fetch_once_and_a_late_one_reads_shared_data() {
    let shared = SharedData::new();
    let mut first = start(&shared);
    let mut second = start(&shared);
    // Neither has keys: each fetches at once and holds its requests for its own fetch.
    assert_eq!(first.pending_http_calls().len(), 1);
    assert_eq!(second.pending_http_calls().len(), 1);
    let good = token("es256", json!({"did": "d1"}));
    let held = hold(&mut second, &good);
    answer(&mut first, 200, &jwks("es256"));
    // A request reaching the second worker now is decided with what the first stored.
    assert_eq!(get(&mut second, &good).0, 200);
    answer(&mut second, 200, &jwks("es256"));
    assert_eq!(second.resumed(held), 1);
}

/// A Kong worker fetching its keys from `127.0.0.1:9000`.
fn start_kong() -> Vm {
    filter(Profile::Kong)
        .vm(&jwks_config("127.0.0.1:9000"))
        .now(NOW)
        .start()
        .unwrap()
}

#[test]
fn kong_holds_nothing_for_the_first_fetch() {
    // ngx_wasm_module never resumes a request paused at its headers: answered at once.
    let mut vm = start_kong();
    let outcome = vm
        .send(
            &HttpRequest::get("/v1/shapes")
                .header("approov-token", &token("es256", json!({"did": "d1"}))),
        )
        .unwrap();
    assert!(!outcome.hung);
    let reply = outcome.local_response.expect("answered");
    assert_eq!(
        (reply.status, reply.header("x-attestgate-reason")),
        (503, Some("keys_unavailable"))
    );
}

#[test]
fn kong_fetches_from_host_and_port() {
    let mut vm = start_kong();
    assert_eq!(only_call(&vm).upstream, "127.0.0.1:9000");
    answer(&mut vm, 200, &jwks("es256"));
    assert_eq!(get(&mut vm, &token("es256", json!({"did": "d1"}))).0, 200);
}

#[test]
fn the_denylist_is_fetched_and_updated() {
    let config = json!({
        "keys": {"approov_secret": SECRET},
        "denylist": {"devices": ["inline-device"], "remote": remote("lists")},
    });
    let mut vm = filter(Profile::Envoy)
        .vm(config.to_string().as_bytes())
        .cluster("lists")
        .now(NOW)
        .start()
        .unwrap();
    let hs = |did: &str| {
        let claims = json!({"exp": NOW + 600, "did": did});
        SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap()
    };
    assert_eq!(
        get(&mut vm, &hs("inline-device")),
        (403, "device_denied".to_owned())
    );
    assert_eq!(get(&mut vm, &hs("stolen")).0, 200, "not listed yet");
    answer(&mut vm, 200, r#"{"devices": ["stolen"]}"#);
    assert_eq!(
        get(&mut vm, &hs("stolen")),
        (403, "device_denied".to_owned())
    );
    vm.advance(Duration::from_secs(60)).unwrap();
    answer(&mut vm, 200, "garbage");
    assert_eq!(get(&mut vm, &hs("stolen")).0, 403, "garbage keeps the list");
    vm.advance(Duration::from_secs(30)).unwrap();
    answer(&mut vm, 200, r#"{"devices": []}"#);
    assert_eq!(get(&mut vm, &hs("stolen")).0, 200, "removed from the list");
    assert_eq!(vm.metric("attestgate.denylist.fetched"), Some(2));
}

#[test]
fn rate_limits_are_per_device_shared_by_workers_and_refill() {
    let config = json!({
        "keys": {"approov_secret": SECRET},
        "rules": [{"name": "login", "path": "/login", "methods": ["POST"],
                   "rate_limit": {"requests": 3, "per_seconds": 60}}],
    })
    .to_string();
    let shared = SharedData::new();
    let host = filter(Profile::Envoy);
    let mut first = host
        .vm(config.as_bytes())
        .now(NOW)
        .shared(&shared)
        .start()
        .unwrap();
    let mut second = host
        .vm(config.as_bytes())
        .now(NOW)
        .shared(&shared)
        .start()
        .unwrap();
    let hs = |did: &str| {
        let claims = json!({"exp": NOW + 3600, "did": did});
        SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap()
    };
    let login = |vm: &mut Vm, token: &str| {
        vm.send(&HttpRequest::new("POST", "/login").header("approov-token", token))
            .unwrap()
    };
    let device = hs("device-1");
    assert!(login(&mut first, &device).reached_upstream());
    assert!(login(&mut second, &device).reached_upstream());
    assert!(login(&mut first, &device).reached_upstream());
    let refused = login(&mut second, &device);
    let reply = refused
        .local_response
        .expect("the 4th login within a minute is refused");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("x-attestgate-reason"), Some("rate_limited"));
    assert_eq!(reply.header("retry-after"), Some("20"));
    // Other devices and other routes are not affected.
    assert!(login(&mut first, &hs("device-2")).reached_upstream());
    assert!(first
        .send(&HttpRequest::get("/shapes").header("approov-token", &device))
        .unwrap()
        .reached_upstream());
    // One token comes back every 20 s.
    first.advance(Duration::from_secs(20)).unwrap();
    assert!(login(&mut first, &device).reached_upstream());
    assert!(!login(&mut first, &device).reached_upstream());
    assert_eq!(first.metric("attestgate.denied.rate_limited"), Some(1));
    assert_eq!(second.metric("attestgate.denied.rate_limited"), Some(1));
}
