//! The shared request corpus (`corpus/cases/`) through the shipped filter in the wasmtime
//! harness, under the Envoy and the Kong profile. Every decision must equal the case's
//! expectation and the native core's decision on the same request; a difference names the
//! case, the profile and both decisions.
//!
//! Needs `build/attestgate.wasm` (`make filter`): missing it is a failure, never a skip.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestgate_corpus::{MaterializedCase, Runner};
use attestgate_harness::host::{HttpRequest, Profile, Vm};
use attestgate_harness::observe::{from_counters, Observed};
use attestgate_policy::Gate;

mod common;

const NOW: i64 = 1_700_000_000;

fn http_request(case: &MaterializedCase) -> HttpRequest {
    let mut request = HttpRequest::new(&case.request.method, &case.request.path)
        .authority(&case.request.authority);
    request.headers = case.request.headers.clone();
    // The native runner has no client address either.
    request.source_address = None;
    request
}

/// Runs one case through the VM and reads the decision off the reply and the counters,
/// checking the two agree.
fn observe(vm: &mut Vm, case: &MaterializedCase) -> Result<Observed, String> {
    let before = vm.metrics();
    let outcome = vm.send(&http_request(case)).map_err(|e| format!("{e:#}"))?;
    let (allow, verdict, reason) = from_counters(&before, &vm.metrics())?;
    if allow != outcome.reached_upstream() {
        return Err(format!(
            "counters say allow={allow} but the request {} upstream",
            if outcome.reached_upstream() {
                "went"
            } else {
                "did not go"
            }
        ));
    }
    let status = match &outcome.local_response {
        Some(reply) => {
            let header = reply.header("x-attestgate-reason").unwrap_or("");
            if header != reason {
                return Err(format!("reply says {header} but the counters say {reason}"));
            }
            let body: serde_json::Value = serde_json::from_slice(&reply.body)
                .map_err(|e| format!("the reply body is not JSON: {e}"))?;
            if body["error"] != reason.as_str() {
                return Err(format!("the reply body says {}", body["error"]));
            }
            u16::try_from(reply.status).map_err(|e| e.to_string())?
        }
        None => {
            // Monitor mode tells the upstream why it would have denied.
            let told = outcome.upstream_header("x-attestgate-reason");
            let expected = (verdict == "deny").then_some(reason.as_str());
            if told != expected {
                return Err(format!("the upstream was told {told:?}, not {expected:?}"));
            }
            200
        }
    };
    Ok(Observed {
        allow,
        status,
        reason,
        verdict: verdict.to_owned(),
    })
}

#[test]
fn the_corpus_decides_the_same_in_the_harness_as_natively() {
    let corpus = attestgate_corpus::load(&attestgate_corpus::cases_dir()).unwrap();
    let materialized = corpus.materialize(NOW).unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut not_here = 0;
    for profile in Profile::ALL {
        let host = common::filter(profile);
        for gate in &materialized.gates {
            let native = Gate::from_json(&gate.config.to_string())
                .unwrap_or_else(|e| panic!("{}: the core refuses the config: {e}", gate.name));
            let mut vm = host
                .vm(gate.config.to_string().as_bytes())
                .now(NOW)
                .start()
                .unwrap_or_else(|e| panic!("{profile:?} {}: {e:#}", gate.name));
            for case in &gate.cases {
                let Some(expect) = gate.expect_for(case, Runner::Harness) else {
                    not_here += 1;
                    continue;
                };
                ran += 1;
                let label = format!("{} {}/{}", profile.as_str(), gate.name, case.name);
                let decision = native.check(&case.request.to_request(), NOW);
                let native = Observed::of(&decision);
                let observed = match observe(&mut vm, case) {
                    Ok(observed) => observed,
                    Err(problem) => {
                        failures.push(format!("{label}: {problem}"));
                        continue;
                    }
                };
                if observed != native {
                    failures.push(format!("{label}: native {native}, filter {observed}"));
                }
                let meets = observed.meets(
                    expect.allow,
                    expect.status,
                    &expect.reason,
                    expect.verdict.as_deref(),
                );
                if !meets {
                    failures.push(format!("{label}: expected {expect:?}, filter {observed}"));
                }
            }
            assert!(
                vm.failure().is_none(),
                "{profile:?} {}: the VM trapped",
                gate.name
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        ran >= 200,
        "only {ran} cases ran ({not_here} are not for the harness)"
    );
    println!("{ran} case runs agreed ({not_here} not for the harness)");
}
