//! The wasmtime proxy-wasm host: its own behaviour with small hand-written guests, and the
//! shipped filter (`build/attestgate.wasm`, from `make filter`) under both profiles.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use attestgate_harness::host::{
    Action, Host, HostOptions, HttpCallResponse, HttpRequest, LogLevel, Profile, SharedData,
};
use attestgate_testkit::SigningKey;
use serde_json::{json, Value};

mod common;
use common::filter;

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn config() -> Vec<u8> {
    json!({
        "keys": {"approov_secret": SECRET},
        "claim_to_headers": [{"claim": "did", "header": "X-Device-Id"}],
        "rules": [{"name": "health", "path": "/health", "mode": "bypass"},
                  {"name": "beta", "path_prefix": "/beta/", "mode": "monitor"}],
    })
    .to_string()
    .into_bytes()
}

fn token(exp_in: i64, extra: Value) -> String {
    let mut claims = json!({"exp": NOW + exp_in, "did": "device-1"});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn body_json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap()
}

// --- the shipped filter, under both profiles --------------------------------------------------

#[test]
fn a_good_token_goes_upstream_with_the_gates_headers() {
    for profile in Profile::ALL {
        let mut vm = filter(profile).vm(&config()).now(NOW).start().unwrap();
        let request = HttpRequest::get("/v1/shapes")
            .header("Approov-Token", &token(300, json!({})))
            .header("X-Device-Id", "spoofed-by-client");
        let outcome = vm.send(&request).unwrap();
        assert!(outcome.reached_upstream(), "{profile:?}: {outcome:?}");
        // Envoy removes the token header. ngx_wasm_module cannot remove a request header (its
        // proxy module still forwards removed ones), so the filter blanks it in place there:
        // the token never reaches the upstream either way.
        let blanked = match profile {
            Profile::Envoy => None,
            Profile::Kong => Some(""),
        };
        assert_eq!(
            outcome.upstream_header("approov-token"),
            blanked,
            "{profile:?}"
        );
        // The client's copy is replaced, not joined by the verified one.
        let device_ids: Vec<&str> = outcome
            .upstream_headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-device-id"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(device_ids, ["device-1"], "{profile:?}");
        assert_eq!(vm.metric("attestgate.allowed"), Some(1), "{profile:?}");
        assert_eq!(vm.metric("attestgate.denied"), Some(0), "{profile:?}");
    }
}

#[test]
fn bad_tokens_get_a_json_error_and_never_reach_upstream() {
    for profile in Profile::ALL {
        let mut vm = filter(profile).vm(&config()).now(NOW).start().unwrap();
        let cases = [
            (None, 401, "token_missing"),
            (Some("not-a-jwt".to_owned()), 401, "token_malformed"),
            (Some(token(-3600, json!({}))), 401, "token_expired"),
            (
                Some(format!("{}x", token(300, json!({})))),
                401,
                "signature_invalid",
            ),
        ];
        for (token, status, reason) in cases {
            let mut request = HttpRequest::get("/v1/shapes");
            if let Some(token) = &token {
                request = request.header("approov-token", token);
            }
            let outcome = vm.send(&request).unwrap();
            assert!(!outcome.reached_upstream(), "{profile:?} {reason}");
            assert_eq!(outcome.action, Action::Pause);
            let reply = outcome.local_response.unwrap();
            assert_eq!(reply.status, status, "{profile:?} {reason}");
            assert_eq!(reply.header("x-attestgate-reason"), Some(reason));
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert_eq!(body_json(&reply.body)["error"], reason);
            assert_eq!(
                vm.metric(&format!("attestgate.denied.{reason}")),
                Some(1),
                "{profile:?}"
            );
        }
        assert_eq!(vm.metric("attestgate.denied"), Some(4));
        // Denials are logged with their reason.
        assert!(vm
            .logs()
            .iter()
            .any(|l| l.message.contains("reason=token_expired")));
    }
}

#[test]
fn monitor_and_bypass_rules_let_requests_through_and_say_so() {
    for profile in Profile::ALL {
        let mut vm = filter(profile).vm(&config()).now(NOW).start().unwrap();
        let outcome = vm.send(&HttpRequest::get("/health")).unwrap();
        assert!(outcome.reached_upstream());
        assert_eq!(vm.metric("attestgate.bypassed"), Some(1));

        let outcome = vm.send(&HttpRequest::get("/beta/feature")).unwrap();
        assert!(outcome.reached_upstream(), "{profile:?}");
        assert_eq!(
            outcome.upstream_header("x-attestgate-decision"),
            Some("deny")
        );
        assert_eq!(
            outcome.upstream_header("x-attestgate-reason"),
            Some("token_missing")
        );
        assert_eq!(
            vm.metric("attestgate.monitored_denied.token_missing"),
            Some(1)
        );
    }
}

/// Issue #29: in Envoy each decision's record goes into the stream's filter state, as a whole
/// (`wasm.attestgate.record`, JSON) and, for the config's `record_fields`, field by field
/// (`wasm.attestgate.<field>`), the device from the verified token only; Kong has no such store
/// and gets none.
#[test]
fn each_decision_is_written_to_envoys_filter_state() {
    let text = |outcome: &attestgate_harness::host::HttpOutcome, key: &str| {
        let value = outcome.filter_state.get(key).unwrap_or_else(|| {
            panic!(
                "no {key}: {:?}",
                outcome.filter_state.keys().collect::<Vec<_>>()
            )
        });
        String::from_utf8(value.clone()).unwrap()
    };
    let fields = [
        "verdict",
        "allowed",
        "mode",
        "status",
        "reason",
        "policy_reasons",
        "policy_reasons_dropped",
        "rule",
        "device",
        "platform",
        "app_version",
        "cache",
    ];
    let mut every_field: Value = serde_json::from_slice(&config()).unwrap();
    every_field["record_fields"] = json!(fields);
    let every_field = every_field.to_string().into_bytes();
    let good = HttpRequest::get("/v1/shapes")
        .header(
            "Approov-Token",
            &token(300, json!({"att": {"device": {"platform": "ios"}}})),
        )
        .header("x-attestgate-device", "spoofed");

    // By default the record alone: one write a request.
    let mut vm = filter(Profile::Envoy)
        .vm(&config())
        .now(NOW)
        .start()
        .unwrap();
    let outcome = vm.send(&good).unwrap();
    assert!(outcome.reached_upstream());
    assert_eq!(
        outcome.filter_state.keys().collect::<Vec<_>>(),
        ["wasm.attestgate.record"]
    );

    let mut vm = filter(Profile::Envoy)
        .vm(&every_field)
        .now(NOW)
        .start()
        .unwrap();
    let outcome = vm.send(&good).unwrap();
    assert!(outcome.reached_upstream());
    let record: Value = serde_json::from_str(&text(&outcome, "wasm.attestgate.record")).unwrap();
    assert_eq!(record["verdict"], "allow", "{record}");
    assert_eq!(record["device"], "device-1", "{record}");
    assert_eq!(record["platform"], "ios", "{record}");
    let mut keys: Vec<String> = fields
        .iter()
        .map(|f| format!("wasm.attestgate.{f}"))
        .collect();
    keys.push("wasm.attestgate.record".to_owned());
    keys.sort();
    assert_eq!(
        outcome.filter_state.keys().cloned().collect::<Vec<_>>(),
        keys
    );
    assert_eq!(text(&outcome, "wasm.attestgate.device"), "device-1");
    assert_eq!(text(&outcome, "wasm.attestgate.allowed"), "true");
    assert_eq!(text(&outcome, "wasm.attestgate.app_version"), "");

    // A forged token: denied, and none of its claims written.
    let forged =
        SigningKey::hs256_from_base64_secret("b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldC1vdGhlci0=")
            .unwrap()
            .sign(
                json!({"exp": NOW + 300, "did": "forged-device"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
    let outcome = vm
        .send(&HttpRequest::get("/v1/shapes").header("Approov-Token", &forged))
        .unwrap();
    assert!(!outcome.reached_upstream());
    assert_eq!(
        text(&outcome, "wasm.attestgate.reason"),
        "signature_invalid"
    );
    assert_eq!(text(&outcome, "wasm.attestgate.status"), "401");
    assert_eq!(text(&outcome, "wasm.attestgate.device"), "");
    assert!(!text(&outcome, "wasm.attestgate.record").contains("forged-device"));

    // A monitored denial: let through, verdict deny, its rule named.
    let outcome = vm.send(&HttpRequest::get("/beta/feature")).unwrap();
    assert!(outcome.reached_upstream());
    assert_eq!(text(&outcome, "wasm.attestgate.verdict"), "deny");
    assert_eq!(text(&outcome, "wasm.attestgate.allowed"), "true");
    assert_eq!(text(&outcome, "wasm.attestgate.mode"), "monitor");
    assert_eq!(text(&outcome, "wasm.attestgate.rule"), "beta");

    let mut kong = filter(Profile::Kong)
        .vm(&config())
        .now(NOW)
        .start()
        .unwrap();
    let outcome = kong.send(&good).unwrap();
    assert!(outcome.reached_upstream());
    assert!(
        outcome.filter_state.is_empty(),
        "{:?}",
        outcome.filter_state
    );
    // Fields it would not keep are refused, not accepted and dropped.
    let (mut kong, configured) = filter(Profile::Kong)
        .vm(&every_field)
        .now(NOW)
        .start_checked()
        .unwrap();
    assert!(
        configured,
        "the filter answers config_invalid rather than failing the worker"
    );
    let outcome = kong.send(&good).unwrap();
    assert!(!outcome.reached_upstream());
    let reply = outcome.local_response.unwrap();
    assert_eq!(reply.header("x-attestgate-reason"), Some("config_invalid"));
    assert!(
        outcome
            .logs
            .iter()
            .any(|line| line.message.contains("`record_fields`")),
        "{:?}",
        outcome.logs
    );
}

/// Each listed record field is one more filter-state write, and nothing else changes: the
/// harness counts every call the guest makes into the host (`Vm::guest_work`, what `make
/// bench` prints a request).
#[test]
fn each_record_field_is_one_more_host_call_a_request() {
    let mut every_field: Value = serde_json::from_slice(&config()).unwrap();
    every_field["record_fields"] = json!(attestgate_policy::record::DecisionRecord::<&str>::FIELDS);
    let every_field = every_field.to_string().into_bytes();
    let request = HttpRequest::get("/v1/shapes").header("approov-token", &token(300, json!({})));
    let calls = |config: &[u8]| {
        let mut vm = filter(Profile::Envoy).vm(config).now(NOW).start().unwrap();
        assert!(vm.send(&request).unwrap().reached_upstream()); // the first fills the cache
        let before = vm.guest_work();
        let outcome = vm.send(&request).unwrap();
        assert!(outcome.reached_upstream());
        let record = String::from_utf8(outcome.filter_state["wasm.attestgate.record"].clone());
        assert!(record.unwrap().contains(r#""cache":"hit""#));
        let work = vm.guest_work() - before;
        assert!(work.fuel > 0);
        work.host_calls
    };
    let (alone, with_fields) = (calls(&config()), calls(&every_field));
    assert!(alone > 0);
    assert_eq!(
        with_fields - alone,
        12,
        "{alone} calls, {with_fields} with every field"
    );
}

#[test]
fn the_clock_the_filter_reads_is_the_hosts() {
    let mut vm = filter(Profile::Envoy)
        .vm(&config())
        .now(NOW)
        .start()
        .unwrap();
    let request = HttpRequest::get("/").header("approov-token", &token(100, json!({})));
    assert!(vm.send(&request).unwrap().reached_upstream());
    // 100 s of validity plus the default 60 s leeway.
    vm.advance(Duration::from_secs(161)).unwrap();
    let reply = vm.send(&request).unwrap().local_response.unwrap();
    assert_eq!(reply.header("x-attestgate-reason"), Some("token_expired"));
}

#[test]
fn several_streams_interleave_on_one_root_context() {
    for profile in Profile::ALL {
        let mut vm = filter(profile).vm(&config()).now(NOW).start().unwrap();
        let good = HttpRequest::get("/a").header("approov-token", &token(300, json!({})));
        let bad = HttpRequest::get("/b");
        let first = vm.open(&good).unwrap();
        let second = vm.open(&bad).unwrap();
        let third = vm.open(&good).unwrap();
        assert_eq!(vm.request_headers(second, true).unwrap(), Action::Pause);
        assert_eq!(vm.request_headers(third, true).unwrap(), Action::Continue);
        assert_eq!(vm.request_headers(first, true).unwrap(), Action::Continue);
        assert_eq!(vm.local_response(second).unwrap().status, 401);
        assert!(vm.local_response(first).is_none());
        assert!(vm.local_response(third).is_none());
        for stream in [first, second, third] {
            vm.close(stream).unwrap();
        }
        assert_eq!(vm.metric("attestgate.allowed"), Some(2), "{profile:?}");
        assert_eq!(vm.metric("attestgate.denied"), Some(1), "{profile:?}");
    }
}

#[test]
fn a_bad_config_is_refused_with_a_log_line_naming_the_problem() {
    for profile in Profile::ALL {
        let host = filter(profile);
        let cases: [(&[u8], &str); 4] = [
            (br#"{"keys":{"approov_secret":"c2hvcnQ="}}"#, "secret"),
            (br#"{"keyz":{}}"#, "keyz"),
            (b"not json", "config"),
            (b"", "no plugin configuration"),
        ];
        for (config, needle) in cases {
            let (mut vm, configured) = host.vm(config).now(NOW).start_checked().unwrap();
            let logs: Vec<&str> = vm.logs().iter().map(|l| l.message.as_str()).collect();
            assert!(
                logs.iter()
                    .any(|l| l.to_lowercase().contains(&needle.to_lowercase())),
                "{profile:?}: no log line about `{needle}` in {logs:?}"
            );
            assert!(vm.logs().iter().any(|l| l.level == LogLevel::Critical));
            match profile {
                Profile::Envoy => {
                    // Envoy refuses it at load.
                    assert!(!configured, "{profile:?}: {needle}");
                    let err = host.vm(config).start().unwrap_err().to_string();
                    assert!(err.contains("refused its configuration"), "{err}");
                }
                Profile::Kong => {
                    // ngx_wasm_module would kill the worker: the filter keeps it and answers
                    // every request 500 config_invalid, naming the problem in the log.
                    assert!(configured, "{profile:?}: {needle}");
                    for request in [
                        HttpRequest::get("/"),
                        HttpRequest::get("/").header("approov-token", &token(300, json!({}))),
                    ] {
                        let outcome = vm.send(&request).unwrap();
                        let reply = outcome.local_response.clone().expect("answered");
                        assert_eq!(reply.status, 500, "{needle}");
                        assert_eq!(body_json(&reply.body)["error"], "config_invalid");
                        assert!(!outcome.reached_upstream());
                        assert!(outcome
                            .logs
                            .iter()
                            .any(|l| l.message.to_lowercase().contains(&needle.to_lowercase())));
                    }
                    assert_eq!(vm.metric("attestgate.denied.config_invalid"), Some(2));
                    assert!(vm.failure().is_none(), "{:?}", vm.failure());
                }
            }
        }
    }
}

#[test]
fn a_reconfigure_keeps_the_counters() {
    let mut vm = filter(Profile::Envoy)
        .vm(&config())
        .now(NOW)
        .start()
        .unwrap();
    vm.send(&HttpRequest::get("/")).unwrap();
    assert!(vm.configure(&config()).unwrap());
    assert!(!vm.configure(b"{}").unwrap(), "a config without keys");
    vm.send(&HttpRequest::get("/")).unwrap();
    assert_eq!(vm.metric("attestgate.denied.token_missing"), Some(2));
}

#[test]
fn kong_keeps_header_case_and_the_filter_does_not_mind() {
    let mut vm = filter(Profile::Kong)
        .vm(&config())
        .now(NOW)
        .start()
        .unwrap();
    let request = HttpRequest::get("/").header("APPROOV-TOKEN", &token(300, json!({})));
    let outcome = vm.send(&request).unwrap();
    assert!(outcome.reached_upstream(), "{outcome:?}");
    // The token went, whatever its header's case (blanked in place: nginx forwards removed
    // headers), and the claim header was set.
    assert!(outcome
        .upstream_headers
        .iter()
        .all(|(n, v)| !n.eq_ignore_ascii_case("approov-token") || v.is_empty()));
    assert_eq!(outcome.upstream_header("x-device-id"), Some("device-1"));
}

#[test]
fn the_filter_uses_no_call_kong_lacks() {
    // Kong traps on these; the filter must never need them on any path, including
    // reconfiguration, denials, and stream teardown.
    let mut vm = filter(Profile::Kong)
        .vm(&config())
        .now(NOW)
        .start()
        .unwrap();
    for request in [
        HttpRequest::get("/"),
        HttpRequest::get("/health"),
        HttpRequest::get("/beta/x"),
        HttpRequest::new("POST", "/")
            .body("payload")
            .header("approov-token", &token(300, json!({}))),
    ] {
        vm.send(&request).unwrap();
    }
    vm.configure(b"{}").unwrap();
    vm.advance(Duration::from_secs(3600)).unwrap();
    assert!(vm.failure().is_none());
}

#[test]
fn vms_are_independent() {
    let host = filter(Profile::Envoy);
    let mut a = host.vm(&config()).now(NOW).start().unwrap();
    let mut b = host.vm(&config()).now(NOW).start().unwrap();
    a.send(&HttpRequest::get("/")).unwrap();
    a.send(&HttpRequest::get("/")).unwrap();
    b.send(&HttpRequest::get("/")).unwrap();
    assert_eq!(a.metric("attestgate.denied"), Some(2));
    assert_eq!(b.metric("attestgate.denied"), Some(1));
}

#[test]
fn the_vm_memory_stays_flat_under_many_requests() {
    let mut vm = filter(Profile::Envoy)
        .vm(&config())
        .now(NOW)
        .start()
        .unwrap();
    let good = HttpRequest::get("/").header("approov-token", &token(300, json!({})));
    // Warm up both paths measured below: the first denial allocates what later ones reuse.
    for _ in 0..200 {
        vm.send(&good).unwrap();
        vm.send(&HttpRequest::get("/")).unwrap();
    }
    let warm = vm.memory_bytes();
    for _ in 0..2000 {
        vm.send(&good).unwrap();
        vm.send(&HttpRequest::get("/")).unwrap();
    }
    assert_eq!(vm.memory_bytes(), warm, "linear memory grew");
    assert_eq!(vm.metric("attestgate.allowed"), Some(2200));
    assert_eq!(vm.metric("attestgate.denied"), Some(2200));
}

// --- the host itself, with hand-written guests -------------------------------------------------

/// A guest that exercises the host: on configure it asks for a 1 s tick, defines a counter
/// and dispatches an http call to the upstream named by its configuration; each tick counts;
/// the call's response body is logged; request headers call `proxy_done`.
const PROBE: &str = r#"
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $set_tick (param i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i64) (result i32)))
  (import "env" "proxy_get_shared_data" (func $get_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $set_shared (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_done" (func $done (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  ;; 0: metric name; 16: http call headers (:method GET, :path /jwks); 100: shared key
  (data (i32.const 0) "probe.ticks")
  (data (i32.const 16) "\02\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\05\00\00\00:method\00GET\00:path\00/jwks\00")
  (data (i32.const 100) "probe.key")
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $set_tick (i32.const 1000)))
    (drop (call $define_metric (i32.const 0) (i32.const 0) (i32.const 11) (i32.const 200)))
    ;; the upstream: the whole plugin configuration
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (i32.const 1000) (i32.const 300) (i32.const 304)))
    ;; configure succeeds only if the host accepted the call
    (i32.eqz (call $http_call
      (i32.load (i32.const 300)) (i32.load (i32.const 304))
      (i32.const 16) (i32.const 44) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 5000) (i32.const 208))))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $increment (i32.load (i32.const 200)) (i64.const 1)))
    ;; publish the tick count for other VMs
    (drop (call $set_shared (i32.const 100) (i32.const 9) (i32.const 200) (i32.const 4) (i32.const 0))))
  (func (export "proxy_on_http_call_response") (param $ctx i32) (param $token i32) (param $headers i32) (param $body i32) (param $trailers i32)
    (drop (call $get_buffer (i32.const 4) (i32.const 0) (local.get $body) (i32.const 400) (i32.const 404)))
    (drop (call $log (i32.const 2) (i32.load (i32.const 400)) (i32.load (i32.const 404)))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $done))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
"#;

fn probe(profile: Profile) -> Host {
    Host::new(&wat::parse_str(PROBE).unwrap(), HostOptions::new(profile)).unwrap()
}

#[test]
fn http_calls_name_a_cluster_in_envoy_and_host_port_in_kong() {
    let envoy = probe(Profile::Envoy);
    assert!(envoy.vm(b"jwks").cluster("jwks").start().is_ok());
    let (_, ok) = envoy
        .vm(b"unknown")
        .cluster("jwks")
        .start_checked()
        .unwrap();
    assert!(!ok, "envoy: an unknown cluster is refused");
    let (_, ok) = envoy.vm(b"127.0.0.1:8000").start_checked().unwrap();
    assert!(!ok, "envoy: host:port is not a cluster");

    let kong = probe(Profile::Kong);
    assert!(kong.vm(b"127.0.0.1:8000").start().is_ok());
    assert!(kong.vm(b"keys.example.com:443").start().is_ok());
    let (_, ok) = kong.vm(b"jwks").cluster("jwks").start_checked().unwrap();
    assert!(!ok, "kong: a bare name is not host:port");
}

#[test]
fn a_pending_http_call_is_answered_by_the_test() {
    let mut vm = probe(Profile::Envoy)
        .vm(b"jwks")
        .cluster("jwks")
        .start()
        .unwrap();
    let calls = vm.pending_http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.upstream, "jwks");
    assert_eq!(call.timeout_ms, 5000);
    assert!(call
        .headers
        .contains(&(":path".to_owned(), "/jwks".to_owned())));
    vm.respond_http_call(call.token, HttpCallResponse::new(200, r#"{"keys":[]}"#))
        .unwrap();
    assert!(vm.pending_http_calls().is_empty());
    assert_eq!(vm.logs().last().unwrap().message, r#"{"keys":[]}"#);
    assert!(vm
        .respond_http_call(call.token, HttpCallResponse::new(200, ""))
        .is_err());
}

#[test]
fn a_failed_http_call_delivers_no_body() {
    let mut vm = probe(Profile::Kong).vm(b"127.0.0.1:1").start().unwrap();
    let token = vm.pending_http_calls()[0].token;
    vm.fail_http_call(token).unwrap();
    // An empty body reaches the guest as a null buffer: it logs an empty line.
    assert_eq!(vm.logs().last().unwrap().message, "");
}

#[test]
fn advancing_time_fires_ticks_and_shared_data_crosses_vms() {
    let host = probe(Profile::Envoy);
    let shared = SharedData::new();
    let mut a = host
        .vm(b"jwks")
        .cluster("jwks")
        .shared(&shared)
        .start()
        .unwrap();
    let b = host
        .vm(b"jwks")
        .cluster("jwks")
        .shared(&shared)
        .start()
        .unwrap();
    assert_eq!(a.tick_period(), Some(Duration::from_secs(1)));
    assert_eq!(a.advance(Duration::from_millis(999)).unwrap(), 0);
    assert_eq!(a.advance(Duration::from_millis(1)).unwrap(), 1);
    assert_eq!(a.advance(Duration::from_millis(3500)).unwrap(), 3);
    assert_eq!(a.metric("probe.ticks"), Some(4));
    assert_eq!(b.metric("probe.ticks"), Some(0));
    // The tick handler stores its metric id (4 bytes) under probe.key for every VM to see.
    assert_eq!(b.shared().get("probe.key").map(|v| v.len()), Some(4));
    assert!(SharedData::new().get("probe.key").is_none());
}

#[test]
fn kong_traps_on_the_calls_it_does_not_implement() {
    let mut envoy = probe(Profile::Envoy)
        .vm(b"jwks")
        .cluster("jwks")
        .start()
        .unwrap();
    let outcome = envoy.send(&HttpRequest::get("/")).unwrap();
    assert_eq!(outcome.action, Action::Continue);

    let mut kong = probe(Profile::Kong).vm(b"127.0.0.1:1").start().unwrap();
    let err = kong.send(&HttpRequest::get("/")).unwrap_err().to_string();
    assert!(
        err.contains("proxy_done: function not yet implemented"),
        "{err}"
    );
    // A trapped VM stays dead, as in the gateways.
    assert!(kong.failure().is_some());
    assert!(kong.send(&HttpRequest::get("/")).is_err());
}

#[test]
fn an_import_the_host_does_not_know_fails_with_its_name() {
    let wasm = wat::parse_str(
        r#"(module (import "env" "proxy_teleport" (func (param i32) (result i32))))"#,
    )
    .unwrap();
    let err = format!(
        "{:#}",
        Host::new(&wasm, HostOptions::new(Profile::Envoy)).unwrap_err()
    );
    assert!(err.contains("proxy_teleport"), "{err}");
}

#[test]
fn a_runaway_guest_runs_out_of_fuel_instead_of_hanging() {
    let wasm = wat::parse_str(
        r#"(module
          (memory (export "memory") 1)
          (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 0))
          (func (export "proxy_on_context_create") (param i32 i32))
          (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
          (func (export "proxy_on_configure") (param i32 i32) (result i32) (loop $forever (br $forever)) (i32.const 1))
          (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
          (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
          (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
          (func (export "proxy_on_log") (param i32))
          (func (export "proxy_on_delete") (param i32))
          (func (export "proxy_on_tick") (param i32))
          (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)))"#,
    )
    .unwrap();
    let mut options = HostOptions::new(Profile::Envoy);
    options.fuel_per_call = 10_000_000;
    let err = format!(
        "{:#}",
        Host::new(&wasm, options)
            .unwrap()
            .vm(b"")
            .start()
            .unwrap_err()
    );
    assert!(err.contains("fuel"), "{err}");
}

// --- hybrid mode: the record Envoy's jwt_authn leaves in dynamic metadata ---------------------

fn hybrid_request(token: &str, exp: Option<f64>) -> HttpRequest {
    let request = HttpRequest::get("/v1/shapes").header("approov-token", token);
    match exp {
        Some(exp) => request.jwt_authn_record("attestation", exp),
        None => request,
    }
}

#[test]
fn hybrid_mode_decides_with_the_gateways_record_and_refuses_without_it() {
    let config = json!({
        "host_verification": {"payload_in_metadata": "attestation"},
        "claim_to_headers": [{"claim": "did", "header": "x-device-id"}],
    })
    .to_string();
    let mut vm = filter(Profile::Envoy)
        .vm(config.as_bytes())
        .now(NOW)
        .start()
        .unwrap();
    // Signed with a key the filter does not hold: in hybrid mode the gateway verified it.
    let token =
        SigningKey::hs256_from_base64_secret("b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMh")
            .unwrap()
            .sign(
                json!({"exp": NOW + 300, "did": "device-9"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
    let allowed = vm
        .send(&hybrid_request(&token, Some((NOW + 300) as f64)))
        .unwrap();
    assert!(allowed.reached_upstream(), "{allowed:?}");
    assert_eq!(allowed.upstream_header("x-device-id"), Some("device-9"));
    for record in [None, Some((NOW + 301) as f64)] {
        let refused = vm.send(&hybrid_request(&token, record)).unwrap();
        let reply = refused.local_response.expect("refused locally");
        assert_eq!(reply.status, 401, "{record:?}");
        assert_eq!(
            reply.header("x-attestgate-reason"),
            Some("signature_invalid")
        );
    }
}
