//! Runs every corpus case through `Gate::check` in-process and checks its expectation.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;

use attestgate_corpus::{cases_dir, load, Materialized, Runner};
use attestgate_policy::{Gate, Reason, Verdict};

const NOW: i64 = 1_700_000_000;

/// Runs every native case; returns failures and the reasons the gate produced.
fn run(materialized: &Materialized) -> (usize, Vec<String>, BTreeSet<String>) {
    let mut ran = 0;
    let mut failures = Vec::new();
    let mut reasons = BTreeSet::new();
    for gate in &materialized.gates {
        let checker = Gate::from_json(&gate.config.to_string())
            .unwrap_or_else(|err| panic!("gate {}: {err}", gate.name));
        for case in &gate.cases {
            let Some(want) = case.expect_for(Runner::Native) else {
                continue;
            };
            ran += 1;
            let got = checker.check(&case.request.to_request(), materialized.now);
            reasons.insert(got.reason.as_str().to_owned());
            let verdict = match got.verdict {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny",
            };
            let ok = got.allow == want.allow
                && got.reason.as_str() == want.reason
                && got.status == want.status
                && want.verdict.as_deref().is_none_or(|v| v == verdict);
            if !ok {
                failures.push(format!(
                    "{} ({}): expected allow={} reason={} status={} verdict={:?}\n{:>w$}got allow={} reason={} status={} verdict={verdict} reasons={:?} detail={:?}",
                    case.name, gate.name, want.allow, want.reason, want.status, want.verdict,
                    "", got.allow, got.reason, got.status, got.reasons, got.detail,
                    w = case.name.len() + gate.name.len() + 5,
                ));
            }
        }
    }
    (ran, failures, reasons)
}

#[test]
fn every_case_decides_as_expected_natively() {
    let corpus = load(&cases_dir()).unwrap();
    let materialized = corpus.materialize(NOW).unwrap();
    let (ran, failures, reasons) = run(&materialized);
    println!(
        "corpus (native): {} passed, {} failed",
        ran - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // Every reason code the core can produce shows up in the corpus, except: what only a host
    // produces (its own failures); rate limits, which need the host's shared buckets (tested in
    // policy-engine's verification cases, the harness and Envoy); and the request-signature
    // reasons (issue #9) and the body cap, covered by policy-engine's verification cases and
    // tests/http_signatures.rs and tests/approov_signatures.rs until the corpus gains signed
    // cases with bodies.
    for reason in Reason::ALL {
        if !matches!(
            reason,
            Reason::InternalError
                | Reason::ConfigInvalid
                | Reason::DuplicateHeader
                | Reason::LengthRequired
                | Reason::BodyTooLarge
                | Reason::RateLimited
                | Reason::RequestSignatureMissing
                | Reason::RequestSignatureInvalid
        ) {
            assert!(
                reasons.contains(reason.as_str()),
                "no corpus case produces {reason}"
            );
        }
    }
}

/// Tokens are minted relative to `now`, so a runner with a real clock (Envoy) sees the same
/// outcomes: materialize at another time and decide at that time.
#[test]
fn outcomes_do_not_depend_on_the_clock() {
    let corpus = load(&cases_dir()).unwrap();
    for now in [1_800_000_000, 2_000_000_000] {
        let (_, failures, _) = run(&corpus.materialize(now).unwrap());
        assert!(failures.is_empty(), "at {now}:\n{}", failures.join("\n"));
    }
}

#[test]
fn the_files_are_substantial_and_small_in_gates() {
    let corpus = load(&cases_dir()).unwrap();
    let names: Vec<&str> = corpus.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["adversarial", "app_check", "parity", "paths", "remote"]
    );
    for file in &corpus.files {
        let minimum = match file.name.as_str() {
            "adversarial" => 100,
            "parity" => 50,
            "paths" => 15,
            _ => 4,
        };
        assert!(
            file.spec.cases.len() >= minimum,
            "{} has only {} cases",
            file.name,
            file.spec.cases.len()
        );
        // Each gate costs the Envoy runner one Envoy start.
        assert!(
            file.spec.gates.len() <= 4,
            "{} has {} gates",
            file.name,
            file.spec.gates.len()
        );
    }
    // Exceptions to "runs everywhere, expects the same" stay few and explained.
    let materialized = corpus.materialize(NOW).unwrap();
    let cases: Vec<_> = materialized.gates.iter().flat_map(|g| &g.cases).collect();
    let exceptional: Vec<_> = cases
        .iter()
        .filter(|c| c.runners.len() != Runner::ALL.len() || !c.overrides.is_empty())
        .collect();
    // paths.yaml has six: Envoy resolves those paths before the filter sees them.
    assert!(exceptional.len() <= 10, "{} exceptions", exceptional.len());
    assert!(exceptional.iter().all(|c| c.why.is_some()));
    // Denials outnumber allowances in the adversarial file, and every case expects something
    // coherent: allowed means 200, a denial means an error status.
    for case in &cases {
        let e = &case.expect;
        if e.allow {
            assert_eq!(e.status, 200, "{}", case.name);
        } else {
            assert!(e.status >= 400, "{}", case.name);
        }
    }
}

#[test]
fn materialized_json_round_trips() {
    let materialized = load(&cases_dir()).unwrap().materialize(NOW).unwrap();
    let json = serde_json::to_string(&materialized).unwrap();
    let back: Materialized = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), json);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["now"], NOW);
    let case = &value["gates"][0]["cases"][0];
    for field in ["name", "request", "expect", "runners"] {
        assert!(case.get(field).is_some(), "{field} missing: {case}");
    }
    assert!(case["request"]["headers"][0].is_array());
}

#[test]
fn retain_stable_drops_the_cases_a_moving_clock_would_change() {
    let corpus = load(&cases_dir()).unwrap();
    let count = |m: &Materialized| m.gates.iter().map(|g| g.cases.len()).sum::<usize>();
    let mut materialized = corpus.materialize(NOW).unwrap();
    let total = count(&materialized);
    let dropped = materialized.retain_stable(100).unwrap();
    // exp 30 s ago with 60 s of leeway: allowed now, expired 100 s later.
    assert!(
        dropped.contains(&"expired_within_leeway".to_owned()),
        "{dropped:?}"
    );
    assert!(!dropped.contains(&"hs256_valid".to_owned()), "{dropped:?}");
    assert_eq!(count(&materialized), total - dropped.len());
    // Past the default exp of 300 s (+60 s leeway), valid tokens expire too.
    let mut materialized = corpus.materialize(NOW).unwrap();
    let dropped = materialized.retain_stable(400).unwrap();
    assert!(dropped.contains(&"hs256_valid".to_owned()), "{dropped:?}");
}

/// The decision cache over the whole corpus: each gate's cases go through one cache twice, in
/// order and then reversed, so every level (token verdicts, policy outcomes, whole decisions)
/// gets hits across different requests and tokens; every answer must equal `Gate::check`.
#[test]
fn the_decision_cache_answers_every_case_as_the_gate_does() {
    let corpus = load(&cases_dir()).unwrap();
    let materialized = corpus.materialize(NOW).unwrap();
    let (mut checked, mut hits) = (0, 0);
    for gate in &materialized.gates {
        let checker = Gate::from_json(&gate.config.to_string()).unwrap();
        let mut cache = attestgate_policy::DecisionCache::new(1_000);
        let cases: Vec<_> = gate.cases.iter().chain(gate.cases.iter().rev()).collect();
        for case in cases {
            let request = case.request.to_request();
            let (cached, _) = cache.check(&checker, &request, materialized.now);
            let direct = checker.check(&request, materialized.now);
            assert_eq!(cached, direct, "{} ({})", case.name, gate.name);
            checked += 1;
        }
        let stats = cache.stats();
        hits += stats.decision_hits + stats.token_hits + stats.policy_hits;
    }
    println!("corpus (cache): {checked} decisions equal, {hits} cache hits");
    assert!(hits > 0, "the corpus never hit the cache");
}

/// Issue #16: `explain` observes the one pipeline `check` runs: on every case its decision is
/// `check`'s, and the step it marks failed is the one the decision's reason comes from.
#[test]
fn explain_agrees_with_check_on_every_case() {
    use attestgate_policy::{StepId, StepStatus};
    let corpus = load(&cases_dir()).unwrap();
    let materialized = corpus.materialize(NOW).unwrap();
    let mut checked = 0;
    for gate in &materialized.gates {
        let native = Gate::from_json(&gate.config.to_string()).unwrap();
        for case in &gate.cases {
            let request = case.request.to_request();
            let explained = native.explain(&request, materialized.now);
            let decision = native.check(&request, materialized.now);
            assert_eq!(explained.decision, decision, "{}", case.name);
            let failed: Vec<StepId> = explained
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Failed)
                .map(|s| s.id)
                .collect();
            let ids: std::collections::BTreeSet<String> = explained
                .steps
                .iter()
                .map(|s| format!("{:?}", s.id))
                .collect();
            assert_eq!(ids.len(), StepId::ALL.len(), "{}", case.name);
            if decision.verdict == attestgate_policy::Verdict::Allow {
                assert!(failed.is_empty(), "{}: {failed:?}", case.name);
            } else {
                assert_eq!(failed.len(), 1, "{}: {:?}", case.name, explained.steps);
                let expected = match StepId::of_reason(decision.reason) {
                    Some(step) => vec![step],
                    // Malformed: the token's own error says where.
                    None => vec![
                        StepId::Extract,
                        StepId::Structure,
                        StepId::Claims,
                        StepId::Time,
                    ],
                };
                assert!(
                    expected.contains(&failed[0]),
                    "{}: {} failed at {:?}",
                    case.name,
                    decision.reason,
                    failed[0]
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
}
