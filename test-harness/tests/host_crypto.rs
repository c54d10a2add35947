//! The filter checks public-key signatures with Envoy's own crypto (issue #28): at configure
//! it offers each scheme to the `verify_signature` foreign function with a known-answer test,
//! and uses it for the schemes that pass. An Envoy without the function, or with one that
//! answers wrong, leaves every check in wasm; ngx_wasm_module (the `kong` profile) is never
//! asked, since it traps on a foreign function it does not know.
//!
//! The filter is `build/attestgate.wasm`, or the file `ATTESTGATE_WASM` names (tests/common).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;

use attestgate_harness::host::{Host, HostOptions, HttpRequest, Profile, VerifySignature, Vm};
use attestgate_policy::Request;
use attestgate_testkit::{ApproovSigner, InstallSigner, SigningKey};
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;

fn key_file(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy-engine/tests/data/keys")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn public(name: &str) -> Value {
    key_file(&format!("{name}.pub.json"))["keys"][0].clone()
}

/// ES256 (`kid` es) and RS256 (`kid` rs) keys; `/signed` needs the install signature too.
fn config() -> Vec<u8> {
    json!({
        "keys": {"keys": [public("es256"), public("rs256")]},
        "rules": [{"name": "signed", "path_prefix": "/signed", "signature": {"mode": "required"}}]
    })
    .to_string()
    .into_bytes()
}

fn install() -> InstallSigner {
    InstallSigner::from_slice(&[5; 32]).unwrap()
}

fn token(key: &str) -> String {
    let claims = json!({"exp": NOW + 600, "did": "d1", "ipk": install().ipk()});
    SigningKey::from_jwk(&key_file(&format!("{key}.json")))
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn vm(verify_signature: VerifySignature, profile: Profile) -> Vm {
    let options = HostOptions {
        verify_signature,
        ..HostOptions::new(profile)
    };
    Host::from_file(common::filter_path(), options)
        .unwrap()
        .vm(&config())
        .now(NOW)
        .start()
        .unwrap()
}

/// The status and reason the filter gave a request.
fn decide(vm: &mut Vm, request: &HttpRequest) -> (u32, String) {
    let outcome = vm.send(request).unwrap();
    match outcome.local_response {
        Some(reply) => (
            reply.status,
            reply.header("x-attestgate-reason").unwrap_or("").to_owned(),
        ),
        None => (200, "allowed".to_owned()),
    }
}

fn get(path: &str, token: &str) -> HttpRequest {
    HttpRequest::get(path).header("approov-token", token)
}

/// A GET of `/signed` with the install signature (`@method`, `@target-uri`, the token), as the
/// Approov SDK signs; `tamper` changes the path after signing.
fn signed(tamper: bool) -> HttpRequest {
    let token = token("es256");
    let request = Request::new("GET", "/signed/x")
        .with_host("api.example.com")
        .with_header("approov-token", token.as_str());
    let signer = ApproovSigner {
        install: Some(install()),
        account: None,
    };
    let request = signer.sign_request(request, NOW).unwrap();
    let path = if tamper { "/signed/y" } else { "/signed/x" };
    let mut http = HttpRequest::get(path).header(":authority", "api.example.com");
    for (name, value) in &request.headers {
        http = http.header(&name.to_ascii_lowercase(), value);
    }
    http
}

fn logged(vm: &Vm, text: &str) -> bool {
    vm.logs().iter().any(|line| line.message.contains(text))
}

/// The decisions every host path must give: the same whoever checks the signatures.
fn decides_as_the_built_in_verifier(vm: &mut Vm) {
    assert_eq!(
        decide(vm, &get("/", &token("es256"))),
        (200, "allowed".into())
    );
    assert_eq!(
        decide(vm, &get("/", &token("rs256"))),
        (200, "allowed".into())
    );
    // Same kid, another key: the signature does not verify.
    assert_eq!(
        decide(vm, &get("/", &token("es256_other"))),
        (401, "signature_invalid".into())
    );
    assert_eq!(decide(vm, &signed(false)), (200, "allowed".into()));
    assert_eq!(decide(vm, &signed(true)).0, 401);
}

#[test]
fn envoy_checks_es256_rs256_and_install_signatures_with_verify_signature() {
    let mut vm = vm(VerifySignature::Checks, Profile::Envoy);
    assert!(
        logged(
            &vm,
            "signatures: ES256, RS256, RS384, RS512 by the host's verifier"
        ),
        "{:?}",
        vm.logs()
    );
    assert_eq!(
        vm.verify_signature_calls(),
        8,
        "two known answers per scheme"
    );
    // Each new signature is one call: a token's (a repeated token's verdict is cached) and a
    // request's install signature.
    let mut calls = vm.verify_signature_calls();
    let mut expect = |vm: &mut Vm, request: &HttpRequest, decision: (u32, &str), new_calls: u64| {
        let (status, reason) = decide(vm, request);
        assert_eq!((status, reason.as_str()), decision);
        assert_eq!(
            vm.verify_signature_calls() - calls,
            new_calls,
            "{request:?}"
        );
        calls = vm.verify_signature_calls();
    };
    expect(&mut vm, &get("/", &token("es256")), (200, "allowed"), 1);
    expect(&mut vm, &get("/", &token("rs256")), (200, "allowed"), 1);
    expect(
        &mut vm,
        &get("/", &token("es256_other")),
        (401, "signature_invalid"),
        1,
    );
    expect(&mut vm, &signed(false), (200, "allowed"), 1);
    expect(
        &mut vm,
        &signed(true),
        (401, "request_signature_invalid"),
        1,
    );
}

#[test]
fn an_envoy_without_verify_signature_checks_in_wasm() {
    let mut vm = vm(VerifySignature::Absent, Profile::Envoy);
    assert!(
        logged(&vm, "signatures: every signature by the built-in verifier (the host's verifier answered no known-answer test)"),
        "{:?}",
        vm.logs()
    );
    decides_as_the_built_in_verifier(&mut vm);
    assert_eq!(vm.verify_signature_calls(), 0);
}

#[test]
fn a_verify_signature_that_accepts_forgeries_is_not_used() {
    let mut vm = vm(VerifySignature::AcceptsAll, Profile::Envoy);
    assert!(
        logged(&vm, "accepted a signature over another message for ES256"),
        "{:?}",
        vm.logs()
    );
    assert_eq!(vm.verify_signature_calls(), 8);
    decides_as_the_built_in_verifier(&mut vm);
    assert_eq!(
        vm.verify_signature_calls(),
        8,
        "asked after failing its known answers"
    );
}

#[test]
fn kong_is_never_asked_for_a_foreign_function() {
    // The kong profile traps on every foreign function, as ngx_wasm_module does: a call would
    // fail the VM.
    let mut vm = vm(VerifySignature::Checks, Profile::Kong);
    assert!(
        logged(&vm, "ngx_wasm_module has no verify_signature"),
        "{:?}",
        vm.logs()
    );
    let token = token("es256");
    assert_eq!(decide(&mut vm, &get("/", &token)), (200, "allowed".into()));
    assert_eq!(
        decide(&mut vm, &get("/", &self::token("es256_other"))),
        (401, "signature_invalid".into())
    );
    assert_eq!(vm.verify_signature_calls(), 0);
}

/// Wycheproof's ECDSA and RSA vectors, encoded as the filter encodes them, through the
/// `envoy` profile's `verify_signature`: every verdict as Wycheproof (and the built-in
/// verifier) gives it. The same module runs in real Envoy (cli/tests/envoy.rs).
#[test]
fn the_envoy_profiles_verify_signature_gives_every_wycheproof_verdict() {
    use attestgate_testkit::wycheproof;
    let vectors = wycheproof::vectors().unwrap();
    let (config, want) =
        wycheproof::probe_config(&vectors, attestgate_filter::crypto::encode).unwrap();
    let module = wat::parse_str(wycheproof::VERIFY_SIGNATURE_PROBE_WAT).unwrap();
    let host = Host::new(&module, HostOptions::new(Profile::Envoy)).unwrap();
    let vm = host.vm(config.as_bytes()).start().unwrap();
    let line = vm
        .logs()
        .iter()
        .find(|l| l.message.starts_with("verify_signature: "))
        .map(|l| l.message.clone())
        .unwrap_or_else(|| panic!("no answer line: {:?}", vm.logs()));
    let differ = wycheproof::differences(&vectors, &line, &want);
    assert!(differ.is_empty(), "{} differ: {differ:?}", differ.len());
}
