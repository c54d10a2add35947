//! Firebase App Check interoperability: tokens in App Check's exact shape, minted by an
//! independent JWT library, PyJWT (pinned, `scripts/install-envoy.sh`), through
//! `scripts/interop/app_check.py`, decided by the gate natively under the example's config
//! (`envoy-examples/firebase-app-check/attestgate.yaml`, rendered by `attestgate render` as
//! `make examples` does). The example fetches App Check's JWKS; here the JWKS of the committed
//! test key (`policy-engine/tests/data/keys/app_check.pub.json`) is handed to the gate as the
//! fetched document, the way the native library's hosts hand over what they fetched
//! (`remote::Fetched`).
//!
//! RS256 is RSASSA-PKCS1-v1_5, deterministic: the two literal PyJWT tokens of
//! `corpus/cases/app_check.yaml`, which every corpus runner decides, are minted again here and
//! must be the same bytes.
//!
//! The interpreter is `$ATTESTGATE_PYTHON`, else `.venv/bin/python` at the repository root if
//! it exists, else `python3`. PyJWT missing is a failure, never a skip.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use attestgate_policy::remote::{DocumentKind, Fetched};
use attestgate_policy::{Decision, Gate, Reason, Request};
use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::{json, Value};

/// The apps the example's policy allows.
const ANDROID_APP: &str = "1:123456789012:android:abc123";
const IOS_APP: &str = "1:123456789012:ios:def456";
/// A registered app of the same project that the allowlist leaves out.
const OTHER_APP: &str = "1:123456789012:android:000000";
/// The literal corpus tokens' times: 2023-11-14 and 2100-01-01.
const CORPUS_IAT: i64 = 1_700_000_000;
const CORPUS_EXP: i64 = 4_102_444_800;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn key(name: &str) -> PathBuf {
    repo_root().join(format!("policy-engine/tests/data/keys/{name}"))
}

/// Mints with PyJWT (common::app_check_token): project 123456789012, `my-project-id`.
fn pyjwt(key_file: &str, app_id: &str, iat: i64, exp: i64, extra: &[&str]) -> String {
    common::app_check_token(key_file, app_id, iat, exp, extra)
}

/// The token's JOSE header and claims, as PyJWT wrote them.
fn segments(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&Base64UrlUnpadded::decode_vec(part).unwrap()).unwrap()
    };
    (decode(parts[0]), decode(parts[1]))
}

/// The example's gate config as `make examples` renders it (the policy inlined).
fn example_gate() -> Gate {
    let config = repo_root().join("envoy-examples/firebase-app-check/attestgate.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .args(["render", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "attestgate render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    // The example's keys are App Check's, fetched: nothing inline.
    assert_eq!(
        value["keys"],
        json!({"keys": [], "approov_secret": null,
               "remote": {"upstream": "firebaseappcheck",
                          "authority": "firebaseappcheck.googleapis.com", "path": "/v1/jwks",
                          "refresh_seconds": 3600, "timeout_ms": 5000, "max_bytes": 65536}}),
        "{text}"
    );
    Gate::from_json(&text).unwrap()
}

/// The JWKS the gate fetched: the committed test key's.
fn fetched(gate: &Gate) -> Fetched {
    let mut fetched = Fetched::default();
    let body = std::fs::read(key("app_check.pub.json")).unwrap();
    fetched
        .accept(gate.config(), DocumentKind::Jwks, &body)
        .unwrap();
    fetched
}

fn request(headers: &[(&str, &str)]) -> Request {
    let mut request = Request::new("GET", "/v1/items").with_host("api.example.com");
    for (name, value) in headers {
        request = request.with_header(*name, *value);
    }
    request
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn assert_decided(decision: &Decision, allow: bool, status: u16, reason: Reason, what: &str) {
    assert_eq!(
        (decision.allow, decision.status, decision.reason),
        (allow, status, reason),
        "{what}: {decision:?}"
    );
}

#[test]
fn pyjwt_minted_app_check_tokens_decide_as_expected_under_the_example_config() {
    let gate = example_gate();
    let fetched = fetched(&gate);
    let now = unix_now();
    let (iat, exp) = (now - 10, now + 3600);
    let decide = |token: &str| {
        gate.check_with(
            &request(&[("X-Firebase-AppCheck", token)]),
            now,
            &mut fetched.dynamic(),
        )
    };

    let good = pyjwt("app_check.json", ANDROID_APP, iat, exp, &[]);
    // App Check's shape, as PyJWT wrote it.
    let (header, claims) = segments(&good);
    assert_eq!(
        header,
        json!({"alg": "RS256", "kid": "app-check-test", "typ": "JWT"})
    );
    assert_eq!(
        claims,
        json!({"sub": ANDROID_APP, "aud": ["projects/123456789012", "projects/my-project-id"],
               "iss": "https://firebaseappcheck.googleapis.com/123456789012",
               "exp": exp, "iat": iat})
    );

    // Before the JWKS is fetched there is nothing to verify with.
    let unfetched = gate.check(&request(&[("x-firebase-appcheck", &good)]), now);
    assert_decided(&unfetched, false, 503, Reason::KeysUnavailable, "unfetched");

    for app in [ANDROID_APP, IOS_APP] {
        let decision = decide(&pyjwt("app_check.json", app, iat, exp, &[]));
        assert_decided(&decision, true, 200, Reason::Allowed, app);
        assert_eq!(decision.claims.as_ref().unwrap()["sub"], app);
    }

    let other = decide(&pyjwt("app_check.json", OTHER_APP, iat, exp, &[]));
    assert_decided(&other, false, 403, Reason::PolicyDenied, "other app");
    assert_eq!(other.reasons, ["app_id_not_allowed"]);

    let mint = |app: &str, extra: &[&str]| pyjwt("app_check.json", app, iat, exp, extra);
    let refused = |what: &str, token: &str, status: u16, reason: Reason| {
        assert_decided(&decide(token), false, status, reason, what);
    };
    // A token for another project; the project id alone does not match either (the config
    // lists the project number's audience).
    let issuer = [
        "--iss",
        "https://firebaseappcheck.googleapis.com/999999999999",
    ];
    refused(
        "issuer",
        &mint(ANDROID_APP, &issuer),
        401,
        Reason::IssuerMismatch,
    );
    let audience = ["--aud", "projects/999999999999", "--aud", "projects/other"];
    refused(
        "audience",
        &mint(ANDROID_APP, &audience),
        401,
        Reason::AudienceMismatch,
    );
    let project_id = ["--aud", "projects/my-project-id"];
    refused(
        "id only",
        &mint(ANDROID_APP, &project_id),
        401,
        Reason::AudienceMismatch,
    );
    // App ids compare exactly.
    let upper = "1:123456789012:ANDROID:abc123";
    refused("case", &mint(upper, &[]), 403, Reason::PolicyDenied);
    // Expired an hour ago.
    let expired = pyjwt("app_check.json", ANDROID_APP, now - 7200, now - 3600, &[]);
    refused("expired", &expired, 401, Reason::TokenExpired);
    // Signed by a key App Check's JWKS does not hold, under its kid; a kid it never had.
    let forged = pyjwt(
        "rs256.json",
        ANDROID_APP,
        iat,
        exp,
        &["--kid", "app-check-test"],
    );
    refused("forged", &forged, 401, Reason::SignatureInvalid);
    let unknown_kid = pyjwt("rs256.json", ANDROID_APP, iat, exp, &[]);
    refused("unknown kid", &unknown_kid, 401, Reason::KeyNotFound);

    // Just inside the 60 s of leeway.
    let lenient = pyjwt("app_check.json", ANDROID_APP, now - 3630, now - 30, &[]);
    assert_decided(&decide(&lenient), true, 200, Reason::Allowed, "leeway");

    // Only the App Check header counts, without a prefix.
    let bearer = format!("Bearer {good}");
    let elsewhere = gate.check_with(
        &request(&[("authorization", &bearer)]),
        now,
        &mut fetched.dynamic(),
    );
    assert_decided(
        &elsewhere,
        false,
        401,
        Reason::TokenMissing,
        "authorization",
    );
    let prefixed = decide(&bearer);
    assert_decided(&prefixed, false, 401, Reason::TokenMalformed, "prefix");
}

/// The literal PyJWT tokens of corpus/cases/app_check.yaml are PyJWT's output for the
/// parameters they are named after, and the example's config decides them as the corpus says.
#[test]
fn the_corpus_app_check_tokens_are_what_pyjwt_mints() {
    let corpus = attestgate_corpus::load(&attestgate_corpus::cases_dir()).unwrap();
    let file = corpus
        .files
        .iter()
        .find(|file| file.name == "app_check")
        .unwrap();
    let literal = |name: &str| -> String {
        let case = file.spec.cases.iter().find(|c| c.name == name).unwrap();
        case.token.clone().flatten().unwrap()
    };
    let gate = example_gate();
    let fetched = fetched(&gate);
    let now = unix_now();
    for (name, app, allow) in [
        ("app_check_pyjwt_allowed_android_app", ANDROID_APP, true),
        ("app_check_pyjwt_app_not_allowed", OTHER_APP, false),
    ] {
        let committed = literal(name);
        let minted = pyjwt("app_check.json", app, CORPUS_IAT, CORPUS_EXP, &[]);
        assert_eq!(committed, minted, "{name}: not PyJWT's token");
        let decision = gate.check_with(
            &request(&[("x-firebase-appcheck", &committed)]),
            now,
            &mut fetched.dynamic(),
        );
        assert_eq!(decision.allow, allow, "{name}: {decision:?}");
    }
}
