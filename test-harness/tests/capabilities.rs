//! The filter's two hosts declare what they have through the core's capability model
//! (`attestgate_policy::capability`): Envoy has everything; Kong's ngx_wasm_module has no
//! JWT verifier's record, so hybrid mode is refused there at load, and its shared data (with
//! `shm_kv`) holds rate-limit buckets every worker counts in, as Envoy's does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use attestgate_harness::host::{HttpCallResponse, HttpRequest, Profile, SharedData, Vm};
use attestgate_testkit::SigningKey;
use serde_json::{json, Value};

use common::filter;

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn token(did: &str) -> String {
    let claims = json!({"exp": NOW + 3600, "did": did});
    SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

/// Hybrid mode needs the record Envoy's `jwt_authn` leaves in the dynamic metadata;
/// ngx_wasm_module has none, so every request would be `signature_invalid`: refused at load
/// instead (500 `config_invalid`, the log naming the field and the host). Envoy loads it.
#[test]
fn hybrid_mode_is_refused_at_load_in_kong_and_loads_in_envoy() {
    let config = json!({"host_verification": {"payload_in_metadata": "attestation"}}).to_string();
    let (_, configured) = filter(Profile::Envoy)
        .vm(config.as_bytes())
        .now(NOW)
        .start_checked()
        .unwrap();
    assert!(configured, "Envoy refused hybrid mode");
    let (mut vm, configured) = filter(Profile::Kong)
        .vm(config.as_bytes())
        .now(NOW)
        .start_checked()
        .unwrap();
    // ngx_wasm_module would kill the worker on a refused config: the filter keeps it and
    // answers 500 config_invalid (tests/host.rs).
    assert!(configured);
    let logs: Vec<&str> = vm.logs().iter().map(|l| l.message.as_str()).collect();
    assert!(
        logs.iter()
            .any(|l| l.starts_with("unsupported `host_verification`")
                && l.contains("the proxy-wasm filter in Kong 3.4-3.10 (ngx_wasm_module)")),
        "{logs:?}"
    );
    let outcome = vm
        .send(&HttpRequest::get("/").header("approov-token", &token("d1")))
        .unwrap();
    let reply = outcome.local_response.clone().expect("answered locally");
    assert_eq!(reply.status, 500);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["error"], "config_invalid");
    assert!(!outcome.reached_upstream());
}

/// `rules[].rate_limit` in Kong's ngx_wasm_module: one bucket per device in shared data, which
/// both workers count in (the same test as tests/remote.rs runs under the Envoy profile).
#[test]
fn rate_limits_are_per_device_and_shared_by_kong_workers() {
    let config = json!({
        "keys": {"approov_secret": SECRET},
        "rules": [{"name": "login", "path": "/login", "methods": ["POST"],
                   "rate_limit": {"requests": 3, "per_seconds": 60}}],
    })
    .to_string();
    let shared = SharedData::new();
    let host = filter(Profile::Kong);
    let start = || {
        host.vm(config.as_bytes())
            .now(NOW)
            .shared(&shared)
            .start()
            .unwrap()
    };
    let (mut first, mut second) = (start(), start());
    let login = |vm: &mut Vm, token: &str| {
        vm.send(&HttpRequest::new("POST", "/login").header("approov-token", token))
            .unwrap()
    };
    let device = token("device-1");
    assert!(login(&mut first, &device).reached_upstream());
    assert!(login(&mut second, &device).reached_upstream());
    assert!(login(&mut first, &device).reached_upstream());
    let refused = login(&mut second, &device);
    let reply = refused
        .local_response
        .expect("the 4th login within a minute is refused");
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("x-attestgate-reason"), Some("rate_limited"));
    // Another device has its own bucket.
    assert!(login(&mut first, &token("device-2")).reached_upstream());
    assert!(first.failure().is_none(), "{:?}", first.failure());
}

fn status(vm: &mut Vm, token: &str) -> (u32, String) {
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

/// `denylist.remote` in Kong's ngx_wasm_module: fetched from `host:port` (Kong has no
/// clusters), and a listed device refused once the list is in.
#[test]
fn the_denylist_is_fetched_from_host_and_port_in_kong() {
    let config = json!({
        "keys": {"approov_secret": SECRET},
        "denylist": {"remote": {"upstream": "127.0.0.1:9001", "authority": "lists.example.com",
                                "path": "/denylist.json", "refresh_seconds": 60}},
    });
    let mut vm = filter(Profile::Kong)
        .vm(config.to_string().as_bytes())
        .now(NOW)
        .start()
        .unwrap();
    assert_eq!(status(&mut vm, &token("stolen")).0, 200, "not listed yet");
    let calls = vm.pending_http_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].upstream, "127.0.0.1:9001");
    vm.respond_http_call(
        calls[0].token,
        HttpCallResponse::new(200, r#"{"devices": ["stolen"]}"#),
    )
    .unwrap();
    assert_eq!(
        status(&mut vm, &token("stolen")),
        (403, "device_denied".to_owned())
    );
    assert_eq!(status(&mut vm, &token("other")).0, 200);
    assert_eq!(vm.metric("attestgate.denylist.fetched"), Some(1));
}

/// `cache.entries` in both of the filter's hosts: a repeated request is answered from the
/// decision cache (`attestgate.cache.hits`); with `entries: 0` there is no cache.
#[test]
fn the_decision_cache_follows_cache_entries_in_envoy_and_kong() {
    for profile in Profile::ALL {
        for (entries, hits) in [(100, Some(1)), (0, None)] {
            let config = json!({"keys": {"approov_secret": SECRET}, "cache": {"entries": entries}});
            let mut vm = filter(profile)
                .vm(config.to_string().as_bytes())
                .now(NOW)
                .start()
                .unwrap();
            let device = token("device-1");
            assert_eq!(status(&mut vm, &device).0, 200);
            assert_eq!(status(&mut vm, &device).0, 200);
            let got = vm.metric("attestgate.cache.hits").filter(|n| *n > 0);
            assert_eq!(
                got.is_some(),
                hits.is_some(),
                "{profile:?} entries {entries}: {got:?}"
            );
        }
    }
}

/// `log_decisions` with `decision_log` in both profiles: the filter logs exactly the requests
/// the core's sample picks by their `x-request-id` (the same ids at every hop), and never the
/// masked field.
#[test]
fn decision_logs_are_sampled_by_request_id_and_masked_in_envoy_and_kong() {
    use attestgate_policy::plan::decision_log_line;
    let config = json!({
        "keys": {"approov_secret": SECRET},
        "log_decisions": true,
        "decision_log": {"sample_rate": 0.3, "mask": ["claims.did"]},
    });
    let gate = attestgate_policy::Gate::from_json(&config.to_string()).unwrap();
    for profile in [Profile::Envoy, Profile::Kong] {
        let mut vm = filter(profile)
            .vm(config.to_string().as_bytes())
            .now(NOW)
            .start()
            .unwrap();
        let decision_lines = |vm: &Vm| {
            vm.logs()
                .iter()
                .filter(|l| {
                    l.message
                        .starts_with(attestgate_filter::DECISION_LOG_PREFIX)
                })
                .count()
        };
        let (mut logged, mut expected) = (0, 0);
        for i in 0..200 {
            let id = format!("request-{i}");
            let before = decision_lines(&vm);
            let outcome = vm
                .send(
                    &HttpRequest::get("/")
                        .header("x-request-id", &id)
                        .header("approov-token", &token("secret-device")),
                )
                .unwrap();
            assert!(outcome.reached_upstream());
            let now_logged = decision_lines(&vm) - before;
            // The core's own answer for this id and this decision.
            let decision = gate.check(
                &attestgate_policy::Request::new("GET", "/")
                    .with_header("approov-token", token("secret-device")),
                NOW,
            );
            let want = usize::from(decision_log_line(gate.config(), &decision, &id).is_some());
            assert_eq!(now_logged, want, "{profile:?} {id}");
            logged += now_logged;
            expected += want;
        }
        assert_eq!(logged, expected);
        assert!(
            (30..=90).contains(&logged),
            "{profile:?}: {logged} of 200 at 0.3"
        );
        let lines: Vec<&str> = vm
            .logs()
            .iter()
            .map(|l| l.message.as_str())
            .filter(|m| m.starts_with(attestgate_filter::DECISION_LOG_PREFIX))
            .collect();
        assert!(
            lines.iter().all(|l| !l.contains("secret-device")),
            "{lines:?}"
        );
        assert!(lines
            .iter()
            .all(|l| l.contains(r#""erased":["claims.did"]"#)));
    }
}
