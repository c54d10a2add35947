//! `make bench`: the built filter's cost per request in wasm (wasmtime, the harness's Envoy
//! profile), side by side with the same work natively, plus its config load and size.
//!
//!     cargo run --release -p attestgate-harness --example bench_filter -- build/attestgate.wasm
//!
//! Every scenario first checks that its requests get the answer it is about (allowed), so a
//! figure never measures a fast denial. Tokens are minted before timing starts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

#[path = "../../policy-engine/benches/fixture/mod.rs"]
mod fixture;

use std::time::{Duration, Instant};

use attestgate_harness::host::{Host, HostOptions, HttpRequest, Profile};
use attestgate_policy::{DecisionCache, Gate};
use serde_json::{json, Value};

/// One scenario: a gate config and the requests sent, in order.
struct Scenario {
    name: &'static str,
    what: &'static str,
    config: Value,
    requests: Vec<attestgate_policy::Request>,
}

/// The request as the harness sends it; in hybrid mode with the record Envoy's jwt_authn
/// leaves (the verified payload's `exp`, an f64's little-endian bytes).
fn to_harness(request: &attestgate_policy::Request, hybrid: bool) -> HttpRequest {
    let mut out = HttpRequest::new(&request.method, &request.path).authority(&request.host);
    for (name, value) in &request.headers {
        out = out.header(name, value);
    }
    if hybrid {
        out = out.jwt_authn_record("attestation", (fixture::NOW + 3600) as f64);
    }
    out
}

fn per_request(elapsed: Duration, count: usize) -> f64 {
    elapsed.as_secs_f64() * 1e6 / count as f64
}

fn with_cache(mut config: Value, entries: usize) -> Value {
    config["cache"] = json!({ "entries": entries });
    config
}

fn fresh(
    signer: &attestgate_testkit::SigningKey,
    count: u64,
    from: u64,
) -> Vec<attestgate_policy::Request> {
    (from..from + count)
        .map(|jti| fixture::request(&fixture::token(signer, jti)))
        .collect()
}

/// Every token a different attestation: the policy memo never answers.
fn fresh_attestations(count: u64, from: u64) -> Vec<attestgate_policy::Request> {
    let signer = fixture::signer_for("HS256");
    (from..from + count)
        .map(|jti| {
            let mut claims = fixture::claims(jti);
            claims["att"]["device"]["serial"] = json!(jti);
            fixture::request(&signer.sign(&claims).unwrap())
        })
        .collect()
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let n = |full: u64| if quick { full / 10 } else { full };
    let hs = fixture::signer_for("HS256");
    let policy = fixture::config(fixture::keys_for("HS256"), true);
    let mut list = vec![
        Scenario {
            name: "repeated_token",
            what: "one token and request again and again (whole-decision hits)",
            config: policy.clone(),
            requests: vec![fixture::request(&fixture::token(&hs, 1)); n(20_000) as usize],
        },
        Scenario {
            name: "repeated_five_keys",
            what: "one token again and again, five keys by kid, iss/aud, a three-line policy",
            config: fixture::five_keys_config(),
            requests: vec![fixture::request(&fixture::five_keys_token(1)); n(20_000) as usize],
        },
        Scenario {
            name: "fresh_token",
            what: "a new HS256 token each request, same attestation (verify, binding, policy memo)",
            config: policy.clone(),
            requests: fresh(&hs, n(20_000), 1_000_000),
        },
        Scenario {
            name: "fresh_attestation",
            what: "a new token and a new attestation each request (Rego evaluated every time)",
            config: policy.clone(),
            requests: fresh_attestations(n(1_000), 2_000_000),
        },
        Scenario {
            name: "policy_no_cache",
            what: "cache off: verify, binding and the default policy on every request",
            config: with_cache(policy, 0),
            requests: fresh(&hs, n(1_000), 3_000_000),
        },
    ];
    // Hybrid mode: the gateway verified the ES256 signature; the request carries its record.
    let es = fixture::signer_for("ES256");
    let mut hybrid = fixture::config(json!({}), true);
    hybrid["host_verification"] = json!({ "payload_in_metadata": "attestation" });
    if let Some(object) = hybrid.as_object_mut() {
        object.remove("keys");
    }
    list.push(Scenario {
        name: "hybrid_ES256",
        what: "hybrid mode, a new ES256 token each request: all but the signature (policy memo)",
        config: hybrid,
        requests: fresh(&es, n(2_000), 5_000_000),
    });
    for alg in ["HS256", "ES256", "RS256", "EdDSA"] {
        let signer = fixture::signer_for(alg);
        list.push(Scenario {
            name: match alg {
                "HS256" => "verify_HS256",
                "ES256" => "verify_ES256",
                "RS256" => "verify_RS256",
                _ => "verify_EdDSA",
            },
            what: "cache off, no policy: structure, signature, time, binding, claim headers",
            config: with_cache(fixture::config(fixture::keys_for(alg), false), 0),
            requests: fresh(
                &signer,
                if alg == "HS256" { n(20_000) } else { n(1_000) },
                4_000_000,
            ),
        });
    }
    list
}

fn main() {
    let mut args = std::env::args().skip(1);
    let wasm_path = args
        .next()
        .unwrap_or_else(|| "build/attestgate.wasm".to_owned());
    let quick = std::env::var_os("BENCH_QUICK").is_some();
    let wasm = std::fs::read(&wasm_path).unwrap_or_else(|err| panic!("{wasm_path}: {err}"));
    println!(
        "filter: {wasm_path}, {} bytes (target: at most 1.5 MB)",
        wasm.len()
    );

    let host = Host::new(&wasm, HostOptions::new(Profile::Envoy)).unwrap();
    let quickstart = fixture::config(fixture::keys_for("HS256"), true).to_string();

    // Config load: parse, keys, compile the default policy.
    let loads = if quick { 5 } else { 20 };
    let start = Instant::now();
    for _ in 0..loads {
        Gate::from_json(&quickstart).unwrap();
    }
    let native_load = start.elapsed() / loads;
    let start = Instant::now();
    for _ in 0..loads {
        let (_vm, configured) = host
            .vm(quickstart.as_bytes())
            .now(fixture::NOW)
            .start_checked()
            .unwrap();
        assert!(configured);
    }
    let wasm_load = start.elapsed() / loads;
    println!(
        "config load (default policy): native {:.2} ms, wasm {:.2} ms (new VM + on_configure; target: at most 10 ms)",
        native_load.as_secs_f64() * 1e3,
        wasm_load.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "{:<18} {:>10} {:>10} {:>7} {:>10} {:>6}  what",
        "scenario", "native µs", "wasm µs", "wasm/n", "wasm ops", "calls"
    );

    for scenario in scenarios(quick) {
        let config = scenario.config.to_string();
        // Native: the same per-worker path the filter takes (the gate and its cache).
        let gate = Gate::from_json(&config).unwrap();
        let mut cache = DecisionCache::new(gate.config().cache.entries);
        let hybrid = gate.config().host_verification.is_some();
        let record = attestgate_policy::remote::HostVerified {
            exp: Some((fixture::NOW + 3600) as f64),
        };
        let start = Instant::now();
        for request in &scenario.requests {
            let mut dynamic = attestgate_policy::remote::Dynamic {
                host_verified: hybrid.then_some(record),
                ..Default::default()
            };
            let (decision, _) = cache.check_with(&gate, request, fixture::NOW, &mut dynamic);
            assert!(decision.allow, "{}: {decision:?}", scenario.name);
        }
        let native = per_request(start.elapsed(), scenario.requests.len());

        let mut vm = host
            .vm(config.as_bytes())
            .now(fixture::NOW)
            .start()
            .unwrap();
        let requests: Vec<HttpRequest> = scenario
            .requests
            .iter()
            .map(|request| to_harness(request, hybrid))
            .collect();
        let before = vm.guest_work();
        let start = Instant::now();
        for request in &requests {
            let outcome = vm.send(request).unwrap();
            assert!(outcome.reached_upstream(), "{}: {outcome:?}", scenario.name);
        }
        let in_wasm = per_request(start.elapsed(), requests.len());
        let work = vm.guest_work() - before;
        let count = requests.len() as u64;
        println!(
            "{:<18} {:>10.1} {:>10.1} {:>6.1}x {:>10} {:>6}  {}",
            scenario.name,
            native,
            in_wasm,
            in_wasm / native,
            work.fuel / count,
            work.host_calls / count,
            scenario.what
        );
    }
    println!();
    println!(
        "verify_* include the request around the signature (structure, time, binding, headers);"
    );
    println!("the default policy's own cost is policy_no_cache minus verify_HS256.");
    println!(
        "wasm ops: fuel the guest burned a request (about one per wasm operator, load-independent);"
    );
    println!("calls: the guest's calls into the host a request (each crosses into Envoy's C++).");
}
