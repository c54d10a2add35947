//! The decision cache: every cached answer equals the uncached one, and nothing is replayed
//! across requests, rules, clocks or gates it does not belong to.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestgate_policy::{binding_hash, CacheOutcome, DecisionCache, Gate, Reason, Request};
use attestgate_testkit::SigningKey;
use serde_json::json;

const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// How long the cache keeps a token whose expiry it does not trust: the crate-private
/// `cache::UNKNOWN_EXPIRY_TTL`. A longer one fails the test that waits it out.
const UNKNOWN_EXPIRY_TTL: i64 = 60;

/// The gates here verify ES256: the token level is kept only for signatures that cost more
/// than a lookup (`hmac_only_gates_verify_every_token` covers HMAC).
fn keys() -> String {
    let jwks = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/es256.pub.json"),
    )
    .unwrap();
    let jwks: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    json!({"keys": jwks["keys"]}).to_string()
}

fn signer() -> SigningKey {
    let jwk = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/es256.json"),
    )
    .unwrap();
    SigningKey::from_jwk(&serde_json::from_str(&jwk).unwrap()).unwrap()
}
const NOW: i64 = 1_700_000_000;

/// A policy that reads request facts and the clock, so a cache keyed by token alone would lie.
const POLICY: &str = r#"package attestgate
import rego.v1
default decision := {"allow": false, "reasons": ["default"]}
decision := {"allow": true, "headers": {"x-seen-path": input.request.path}} if {
    input.request.path != "/admin"
    input.request.method != "DELETE"
    not input.request.headers["x-tenant"] == "blocked"
    input.now % 2 == 0
}
"#;

fn gate(extra: &str) -> Gate {
    let policy = serde_json::to_string(POLICY).unwrap();
    let keys = keys();
    Gate::from_json(&format!(
        r#"{{"keys":{keys},
            "policy":{{"modules":{{"p.rego":{policy}}}}},
            "rules":[{{"name":"health","path":"/health","mode":"bypass"}},
                     {{"name":"beta","path_prefix":"/beta","mode":"monitor"}}],
            "claim_to_headers":[{{"claim":"did","header":"x-device-id"}}]{extra}}}"#
    ))
    .unwrap()
}

fn token(claims: serde_json::Value) -> String {
    signer().sign(claims.as_object().unwrap()).unwrap()
}

/// Good claims signed by a key the gate does not trust (same `kid`).
fn forged_token() -> String {
    let jwk = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/keys/es256_other.json"),
    )
    .unwrap();
    let mut jwk: serde_json::Value = serde_json::from_str(&jwk).unwrap();
    jwk["kid"] = signer().kid().map(String::from).into();
    SigningKey::from_jwk(&jwk)
        .unwrap()
        .sign(
            json!({"exp": NOW + 300, "did": "dev-1"})
                .as_object()
                .unwrap(),
        )
        .unwrap()
}

fn good_token() -> String {
    token(json!({"exp": NOW + 300, "did": "dev-1"}))
}

fn req(method: &str, path: &str, token: &str) -> Request {
    Request::new(method, path)
        .with_host("api.example.com")
        .with_header("approov-token", token)
}

/// Checks through the cache and asserts the answer equals the uncached one.
fn checked(
    cache: &mut DecisionCache,
    gate: &Gate,
    request: &Request,
    now: i64,
) -> (attestgate_policy::Decision, CacheOutcome) {
    let (decision, outcome) = cache.check(gate, request, now);
    assert_eq!(decision, gate.check(request, now), "{request:?} at {now}");
    (decision, outcome)
}

#[test]
fn a_hit_returns_the_same_decision() {
    let gate = gate("");
    let mut cache = DecisionCache::new(100);
    let r = req("GET", "/api", &good_token());
    let (first, outcome) = checked(&mut cache, &gate, &r, NOW);
    assert!(first.allow, "{first:?}");
    assert_eq!(first.headers["x-device-id"], "dev-1");
    assert_eq!(outcome, CacheOutcome::Miss);
    let (second, outcome) = checked(&mut cache, &gate, &r, NOW);
    assert_eq!((second, outcome), (first, CacheOutcome::Hit));
    // Next (even) second: the decision level is new, the verified token is reused.
    let (_, outcome) = checked(&mut cache, &gate, &r, NOW + 2);
    assert_eq!(outcome, CacheOutcome::Hit);
    let stats = cache.stats();
    assert_eq!(
        (stats.decision_hits, stats.token_hits, stats.misses),
        (1, 1, 1)
    );
}

#[test]
fn other_request_facts_are_not_served_a_cached_allow() {
    let gate = gate("");
    let mut cache = DecisionCache::new(100);
    let t = good_token();
    assert!(
        checked(&mut cache, &gate, &req("GET", "/api", &t), NOW)
            .0
            .allow
    );
    // Same token, different path / method / header: the policy decides each afresh.
    let (d, _) = checked(&mut cache, &gate, &req("GET", "/admin", &t), NOW);
    assert_eq!((d.allow, d.reason), (false, Reason::PolicyDenied));
    let (d, _) = checked(&mut cache, &gate, &req("DELETE", "/api", &t), NOW);
    assert_eq!((d.allow, d.reason), (false, Reason::PolicyDenied));
    let r = req("GET", "/api", &t).with_header("x-tenant", "blocked");
    let (d, _) = checked(&mut cache, &gate, &r, NOW);
    assert_eq!((d.allow, d.reason), (false, Reason::PolicyDenied));
    // The policy reads input.now: an odd second denies although the request is a cached one.
    let (d, outcome) = checked(&mut cache, &gate, &req("GET", "/api", &t), NOW + 1);
    assert_eq!((d.allow, d.reason), (false, Reason::PolicyDenied));
    assert_eq!(outcome, CacheOutcome::Hit, "the token level still serves");
    // Different host and source ip are keyed too (answers stay equal to uncached ones).
    let r = req("GET", "/api", &t)
        .with_host("other")
        .with_source_ip("10.0.0.1");
    checked(&mut cache, &gate, &r, NOW);
}

#[test]
fn a_different_rule_is_a_miss_and_keeps_its_mode() {
    let gate = gate("");
    let mut cache = DecisionCache::new(100);
    let forged = forged_token();
    let (d, _) = checked(&mut cache, &gate, &req("GET", "/api", &forged), NOW);
    assert_eq!((d.allow, d.reason), (false, Reason::SignatureInvalid));
    // Monitor rule: same token, lets it through with the verdict recorded.
    let (d, _) = checked(&mut cache, &gate, &req("GET", "/beta/x", &forged), NOW);
    assert!(d.allow);
    assert_eq!(d.rule.as_deref(), Some("beta"));
    assert_eq!(d.reason, Reason::SignatureInvalid);
    // Bypass rule: nothing verified.
    let (d, outcome) = checked(&mut cache, &gate, &req("GET", "/health", &forged), NOW);
    assert_eq!(
        (d.reason, outcome),
        (Reason::Bypassed, CacheOutcome::Uncached)
    );
}

#[test]
fn a_different_binding_header_is_a_miss() {
    let gate = gate(r#","binding":{"headers":["authorization"],"required":true}"#);
    let mut cache = DecisionCache::new(100);
    let bound = Request::new("GET", "/").with_header("authorization", "Bearer alice");
    let pay = binding_hash(&["authorization".to_owned()], &bound).unwrap();
    let t = token(json!({"exp": NOW + 300, "did": "d", "pay": pay}));
    let alice = req("GET", "/api", &t).with_header("authorization", "Bearer alice");
    let mallory = req("GET", "/api", &t).with_header("authorization", "Bearer mallory");
    assert!(checked(&mut cache, &gate, &alice, NOW).0.allow);
    assert!(checked(&mut cache, &gate, &alice, NOW).0.allow);
    let (d, outcome) = checked(&mut cache, &gate, &mallory, NOW);
    assert_eq!((d.allow, d.reason), (false, Reason::BindingMismatch));
    assert_eq!(
        outcome,
        CacheOutcome::Hit,
        "token level hit, binding rechecked"
    );
}

#[test]
fn expiry_while_cached_is_token_expired() {
    let gate = gate("");
    let mut cache = DecisionCache::new(100);
    let t = token(json!({"exp": NOW + 10, "did": "d"}));
    let r = req("GET", "/api", &t);
    assert!(checked(&mut cache, &gate, &r, NOW).0.allow);
    // Leeway is 60 s: good up to exp + 60 (the cache re-verifies from exp + 60), expired after.
    assert!(checked(&mut cache, &gate, &r, NOW + 68).0.allow);
    assert!(checked(&mut cache, &gate, &r, NOW + 70).0.allow);
    for now in [NOW + 71, NOW + 72, NOW + 1000] {
        let (d, _) = checked(&mut cache, &gate, &r, now);
        assert_eq!(
            (d.allow, d.reason),
            (false, Reason::TokenExpired),
            "at {now}"
        );
    }
}

#[test]
fn a_not_yet_valid_denial_ends_when_nbf_passes() {
    let gate = gate("");
    let mut cache = DecisionCache::new(100);
    let t = token(json!({"exp": NOW + 600, "nbf": NOW + 100, "did": "d"}));
    let r = req("GET", "/api", &t);
    // nbf - leeway = NOW + 40.
    for now in [NOW, NOW, NOW + 2, NOW + 38] {
        let (d, _) = checked(&mut cache, &gate, &r, now);
        assert_eq!(d.reason, Reason::TokenNotYetValid, "at {now}");
    }
    let (d, _) = checked(&mut cache, &gate, &r, NOW + 40);
    assert!(d.allow, "{d:?}");
}

#[test]
fn forged_token_denials_are_cached() {
    let gate = gate("");
    let mut cache = DecisionCache::new(100);
    let forged = token(json!({"exp": NOW + 300, "did": "d"})).replace(".ey", ".eY");
    for i in 0..50 {
        let now = NOW + i;
        let (d, _) = checked(&mut cache, &gate, &req("GET", "/api", &forged), now);
        assert!(!d.allow);
    }
    // One verification, then served from the token level for its bounded TTL.
    assert_eq!(cache.stats().misses, 1);
    assert_eq!(cache.stats().token_hits, 49);
    // Beyond the TTL it is verified again (and denied again).
    let later = NOW + UNKNOWN_EXPIRY_TTL + 1;
    assert!(
        !checked(&mut cache, &gate, &req("GET", "/api", &forged), later)
            .0
            .allow
    );
    assert_eq!(cache.stats().misses, 2);
}

#[test]
fn the_lru_bound_holds() {
    let gate = gate("");
    let mut cache = DecisionCache::new(8);
    for i in 0..100 {
        let t = token(json!({"exp": NOW + 300, "did": format!("d{i}")}));
        checked(&mut cache, &gate, &req("GET", "/api", &t), NOW);
        assert!(cache.token_entries() <= 8 && cache.decision_entries() <= 8);
    }
    assert_eq!(cache.token_entries(), 8);
    assert_eq!(cache.stats().misses, 100);
}

#[test]
fn cache_off_verifies_every_time() {
    let gate = gate(r#","cache":{"entries":0}"#);
    assert_eq!(gate.config().cache.entries, 0);
    let mut cache = DecisionCache::new(gate.config().cache.entries);
    assert!(!cache.enabled());
    let r = req("GET", "/api", &good_token());
    for _ in 0..3 {
        let (d, outcome) = checked(&mut cache, &gate, &r, NOW);
        assert!(d.allow);
        assert_eq!(outcome, CacheOutcome::Uncached);
    }
    assert_eq!(cache.token_entries(), 0);
}

#[test]
fn another_gate_never_gets_this_gates_answers() {
    let strict = gate(r#","issuer":"approov.io""#);
    let lax = gate("");
    let mut cache = DecisionCache::new(100);
    let r = req("GET", "/api", &good_token());
    assert!(checked(&mut cache, &lax, &r, NOW).0.allow);
    let (d, _) = checked(&mut cache, &strict, &r, NOW);
    assert_eq!(d.reason, Reason::IssuerMismatch);
}

#[test]
fn default_cache_config_is_ten_thousand_and_not_rendered() {
    let gate = gate("");
    assert_eq!(gate.config().cache.entries, 10_000);
    let rendered = serde_json::to_string(gate.config()).unwrap();
    assert!(!rendered.contains("\"cache\""), "{rendered}");
    let custom = self::gate(r#","cache":{"entries":5}"#);
    assert!(serde_json::to_string(custom.config())
        .unwrap()
        .contains(r#""cache":{"entries":5}"#));
    assert!(Gate::from_json(r#"{"keys":{},"cache":{"entrys":5}}"#).is_err());
}

/// A gate whose only policy module is `rego` (package attestgate, entrypoint `decision`).
fn gate_with_policy(rego: &str) -> Gate {
    let policy = serde_json::to_string(rego).unwrap();
    let keys = keys();
    Gate::from_json(&format!(
        r#"{{"keys":{keys},"policy":{{"modules":{{"p.rego":{policy}}}}},
            "claim_to_headers":[{{"claim":"did","header":"x-device-id"}}]}}"#
    ))
    .unwrap()
}

#[test]
fn a_header_no_step_reads_does_not_defeat_the_decision_level() {
    // The policy reads one header by name; Envoy adds a fresh x-request-id to every request.
    let gate = gate_with_policy(
        "package attestgate\nimport rego.v1\n\
         default decision := false\n\
         decision if input.request.headers[\"x-tenant\"] != \"blocked\"",
    );
    let mut cache = DecisionCache::new(100);
    let t = good_token();
    let with = |id: &str, tenant: &str| {
        req("GET", "/api", &t)
            .with_header("x-request-id", id)
            .with_header("x-tenant", tenant)
    };
    assert!(checked(&mut cache, &gate, &with("1", "a"), NOW).0.allow);
    assert!(checked(&mut cache, &gate, &with("2", "a"), NOW).0.allow);
    assert_eq!(cache.stats().decision_hits, 1, "x-request-id is not keyed");
    // The header the policy reads is keyed: a different value is decided afresh.
    let (d, _) = checked(&mut cache, &gate, &with("3", "blocked"), NOW);
    assert_eq!((d.allow, d.reason), (false, Reason::PolicyDenied));
    assert_eq!(cache.stats().decision_hits, 1);
    // Repeating the header the policy reads keys differently from sending it once.
    let twice = with("4", "a").with_header("x-tenant", "blocked");
    checked(&mut cache, &gate, &twice, NOW);
    assert_eq!(cache.stats().decision_hits, 1);
}

#[test]
fn headers_the_scan_cannot_follow_key_every_header() {
    let gate = gate_with_policy(
        "package attestgate\nimport rego.v1\n\
         decision if { some name, _ in input.request.headers; name != \"x-evil\" }",
    );
    let mut cache = DecisionCache::new(100);
    let t = good_token();
    let one = req("GET", "/api", &t).with_header("x-request-id", "1");
    let two = req("GET", "/api", &t).with_header("x-request-id", "2");
    assert!(checked(&mut cache, &gate, &one, NOW).0.allow);
    assert!(checked(&mut cache, &gate, &two, NOW).0.allow);
    assert_eq!(cache.stats().decision_hits, 0);
    let evil = req("GET", "/api", &t).with_header("x-evil", "1");
    checked(&mut cache, &gate, &evil, NOW);
}

#[test]
fn tokens_with_the_same_attestation_share_one_policy_evaluation() {
    let gate = gate_with_policy(
        "package attestgate\nimport rego.v1\n\
         default decision := false\n\
         decision if input.token.claims.att.rooted == false",
    );
    let mut cache = DecisionCache::new(100);
    let device = |did: &str, rooted: bool| {
        token(json!({"exp": NOW + 300, "did": did, "att": {"rooted": rooted}}))
    };
    let (a, _) = checked(
        &mut cache,
        &gate,
        &req("GET", "/api", &device("a", false)),
        NOW,
    );
    let (b, _) = checked(
        &mut cache,
        &gate,
        &req("GET", "/api", &device("b", false)),
        NOW,
    );
    assert!(a.allow && b.allow);
    // Claim headers still come from each token, not from the memo.
    assert_eq!(
        (&a.headers["x-device-id"][..], &b.headers["x-device-id"][..]),
        ("a", "b")
    );
    let (c, _) = checked(
        &mut cache,
        &gate,
        &req("GET", "/api", &device("c", true)),
        NOW,
    );
    assert_eq!((c.allow, c.reason), (false, Reason::PolicyDenied));
    let stats = cache.stats();
    assert_eq!((stats.policy_hits, stats.policy_misses), (1, 2));
    assert_eq!(cache.outcome_entries(), 2);
}

#[test]
fn a_policy_reading_input_whole_is_evaluated_every_time() {
    let gate = gate_with_policy(
        "package attestgate\nimport rego.v1\n\
         decision if count(input) > 0",
    );
    let mut cache = DecisionCache::new(100);
    for did in ["a", "b", "c"] {
        let t = token(json!({"exp": NOW + 300, "did": did}));
        assert!(
            checked(&mut cache, &gate, &req("GET", "/api", &t), NOW)
                .0
                .allow
        );
    }
    let stats = cache.stats();
    assert_eq!((stats.policy_hits, stats.policy_misses), (0, 0));
    assert_eq!(cache.outcome_entries(), 0);
}

#[test]
fn hmac_only_gates_verify_every_token() {
    // An HMAC costs about the SHA-256 that would key its verdict: no token level.
    let gate = Gate::from_json(&format!(r#"{{"keys":{{"approov_secret":"{SECRET}"}}}}"#)).unwrap();
    let hs = |claims: serde_json::Value| {
        SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap()
    };
    let good = hs(json!({"exp": NOW + 300, "did": "d"}));
    let mut cache = DecisionCache::new(100);
    for path in ["/a", "/b", "/c"] {
        assert!(
            checked(&mut cache, &gate, &req("GET", path, &good), NOW)
                .0
                .allow
        );
    }
    let forged =
        SigningKey::hs256_from_base64_secret("b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMh")
            .unwrap()
            .sign(json!({"exp": NOW + 300, "did": "d"}).as_object().unwrap())
            .unwrap();
    for path in ["/a", "/b"] {
        let (d, _) = checked(&mut cache, &gate, &req("GET", path, &forged), NOW);
        assert_eq!(d.reason, Reason::SignatureInvalid);
    }
    let stats = cache.stats();
    assert_eq!((stats.token_hits, stats.misses), (0, 5));
    assert_eq!(cache.token_entries(), 0);
    // The whole-decision level still answers a repeat.
    checked(&mut cache, &gate, &req("GET", "/a", &good), NOW);
    assert_eq!(cache.stats().decision_hits, 1);
}
