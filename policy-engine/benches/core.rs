//! Micro-benchmarks of the core (`make bench`): token verification per algorithm family, the
//! default policy's decision, config load, and a whole check through the decision cache on a
//! hit and on a miss. The same work through the built filter in wasm: `attestgate bench`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod fixture;

use std::hint::black_box;

use attestgate_policy::verifier::NativeVerifier;
use attestgate_policy::{DecisionCache, Gate, Policy, PolicyConfig};
use attestgate_testkit::{ApproovSigner, InstallSigner};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fixture::NOW;

/// Signature, structure, time, binding and claim headers: a gate without a policy.
fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    for alg in ["HS256", "ES256", "RS256", "EdDSA"] {
        let gate = fixture::gate(alg, false);
        let token = fixture::token(&fixture::signer_for(alg), 1);
        let request = fixture::request(&token);
        assert!(
            gate.check(&request, NOW).allow,
            "{alg} bench token must verify"
        );
        group.bench_function(alg, |b| b.iter(|| gate.check(black_box(&request), NOW)));
    }
    // What the native hosts run (the native library, the CLI): ring behind the verifier seam.
    for alg in ["ES256", "RS256"] {
        let mut gate = fixture::gate(alg, false);
        gate.use_host_verifier(Box::new(NativeVerifier));
        let token = fixture::token(&fixture::signer_for(alg), 1);
        let request = fixture::request(&token);
        assert!(
            gate.check(&request, NOW).allow,
            "{alg} bench token must verify"
        );
        group.bench_function(format!("{alg}_native"), |b| {
            b.iter(|| gate.check(black_box(&request), NOW))
        });
    }
    group.finish();
}

/// An Approov-signed request (the install signature over `@method`, `@target-uri`, the token
/// and `authorization`): the whole check, HS256 token, no policy, built in and with ring.
fn install_signature(c: &mut Criterion) {
    let mut group = c.benchmark_group("signature");
    let install = InstallSigner::from_slice(&[11; 32]).unwrap();
    let mut claims = fixture::claims(1);
    claims.insert("ipk".into(), install.ipk().into());
    let token = fixture::signer_for("HS256").sign(&claims).unwrap();
    let mut config = fixture::config(fixture::keys_for("HS256"), false);
    config["signature"] = serde_json::json!({"mode": "required",
        "components": ["@method", "@target-uri", "approov-token", "authorization"]});
    let signer = ApproovSigner {
        install: Some(install),
        account: None,
    };
    let request = signer.sign_request(fixture::request(&token), NOW).unwrap();
    for native in [false, true] {
        let mut gate = Gate::from_json(&config.to_string()).unwrap();
        if native {
            gate.use_host_verifier(Box::new(NativeVerifier));
        }
        assert!(
            gate.check(&request, NOW).allow,
            "the signed bench request must pass"
        );
        let name = if native { "install_native" } else { "install" };
        group.bench_function(name, |b| b.iter(|| gate.check(black_box(&request), NOW)));
    }
    group.finish();
}

/// The default device-trust policy deciding the good claims, input already built.
fn policy(c: &mut Criterion) {
    let gate = fixture::gate("HS256", true);
    let config: &PolicyConfig = gate.config().policy.as_ref().unwrap();
    let policy = Policy::compile(config, []).unwrap();
    let token = fixture::token(&fixture::signer_for("HS256"), 1);
    let explanation = gate.explain(&fixture::request(&token), NOW);
    let input = explanation
        .policy_input
        .clone()
        .expect("the explanation carries the Rego input");
    assert!(
        policy
            .evaluate(&config.entrypoint, input.clone())
            .unwrap()
            .allow
    );
    c.bench_function("policy/default_decision", |b| {
        b.iter_batched(
            || input.clone(),
            |input| policy.evaluate(&config.entrypoint, input),
            BatchSize::SmallInput,
        )
    });
    // What a policy-memo hit costs before its LRU lookup: hashing what the policy reads.
    c.bench_function("policy/input_key", |b| {
        b.iter(|| policy.input_key(&config.entrypoint, black_box(&input)))
    });
}

/// Parse, validate, load keys and compile the default policy.
fn config_load(c: &mut Criterion) {
    let text = fixture::config(fixture::keys_for("HS256"), true).to_string();
    c.bench_function("config_load/quickstart", |b| {
        b.iter(|| attestgate_policy::Gate::from_json(black_box(&text)).unwrap())
    });
}

/// `DecisionCache::check` with the default policy (HS256, so no token level: an HMAC costs
/// what its cache key would): the same request again (a whole-decision hit), the same token on
/// another path (verified again, policy memo), a token never seen before, and a token with an
/// attestation never seen before (Rego evaluated).
fn check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    let gate = fixture::gate("HS256", true);
    let signer = fixture::signer_for("HS256");
    let token = fixture::token(&signer, 1);
    let request = fixture::request(&token);
    assert!(
        gate.check(&request, NOW).allow,
        "the bench request must be allowed"
    );

    let mut cache = DecisionCache::new(10_000);
    group.bench_function("cache_hit", |b| {
        b.iter(|| cache.check(&gate, black_box(&request), NOW))
    });

    // Issue #27's second config (five keys by kid, iss/aud, a three-line policy), the same
    // request again.
    let five = Gate::from_json(&fixture::five_keys_config().to_string()).unwrap();
    let repeated = fixture::request(&fixture::five_keys_token(1));
    assert!(
        five.check(&repeated, NOW).allow,
        "the five-key request must be allowed"
    );
    let mut cache = DecisionCache::new(10_000);
    group.bench_function("cache_hit_five_keys", |b| {
        b.iter(|| cache.check(&five, black_box(&repeated), NOW))
    });

    let mut cache = DecisionCache::new(10_000);
    let mut paths = (0..u64::MAX).map(|i| {
        let mut request = request.clone();
        request.path = format!("/v1/shapes/{i}");
        request
    });
    group.bench_function("same_token", |b| {
        b.iter_batched(
            || paths.next().unwrap(),
            |request| cache.check(&gate, &request, NOW),
            BatchSize::SmallInput,
        )
    });

    // Fresh tokens, minted outside the timing; the cache sees each once. They carry the same
    // attestation, so the policy memo answers after the first.
    let mut cache = DecisionCache::new(10_000);
    let mut jti = 1_000_u64;
    group.bench_function("fresh_token", |b| {
        b.iter_batched(
            || {
                jti += 1;
                fixture::request(&fixture::token(&signer, jti))
            },
            |request| {
                let (decision, _) = cache.check(&gate, &request, NOW);
                assert!(decision.allow);
                decision
            },
            BatchSize::SmallInput,
        )
    });

    // The worst case: every token a different attestation, so Rego runs every time.
    let mut cache = DecisionCache::new(10_000);
    group.bench_function("fresh_attestation", |b| {
        b.iter_batched(
            || {
                jti += 1;
                let mut claims = fixture::claims(jti);
                claims["att"]["risk"]["score"] = serde_json::json!(jti % 50);
                claims["att"]["device"]["serial"] = serde_json::json!(jti);
                fixture::request(&signer.sign(&claims).unwrap())
            },
            |request| {
                let (decision, _) = cache.check(&gate, &request, NOW);
                assert!(decision.allow);
                decision
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    verify,
    install_signature,
    policy,
    config_load,
    check
);
criterion_main!(benches);
