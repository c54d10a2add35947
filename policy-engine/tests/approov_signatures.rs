//! Message signing as Approov's SDK sends it (issue #15): an `install` and an `account`
//! member in one `Signature-Input` / `Signature` pair, `Content-Digest` only on requests with a
//! body, and the RFC 9421 component parameters a real verifier meets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestgate_policy::signature::{
    self, AccountKey, Message, SignOptions, SignatureError, SignatureKey, Signer, VerifyOptions,
};
use attestgate_policy::{Gate, Reason, Request};
use attestgate_testkit::{ApproovSigner, InstallSigner, SigningKey as TokenKey};
use serde_json::json;

const NOW: i64 = 1_700_000_000;
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const ACCOUNT: &str = "YWNjb3VudC1tZXNzYWdlLXNpZ25pbmcta2V5LTMyYnl0ZXMhIQ==";

fn install() -> InstallSigner {
    InstallSigner::from_slice(&[0x42; 32]).unwrap()
}

fn account() -> AccountKey {
    AccountKey::from_base64(ACCOUNT).unwrap()
}

fn token(with_ipk: bool) -> String {
    let mut claims = json!({ "exp": NOW + 300, "did": "device-1" });
    if with_ipk {
        claims["ipk"] = json!(install().ipk());
    }
    TokenKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

/// The issue's config: `install` required over `@method`, `@target-uri` and the token.
fn gate(signature: serde_json::Value) -> Gate {
    let mut block = json!({
        "mode": "required",
        "components": ["@method", "@target-uri", "approov-token"],
        "account_secret": ACCOUNT,
    });
    for (k, v) in signature.as_object().unwrap() {
        block[k] = v.clone();
    }
    let config = json!({
        "keys": { "approov_secret": SECRET },
        "signature": block,
        "policy": { "modules": { "p.rego": r#"package attestgate
import rego.v1
decision := {"allow": true, "reasons": [
    sprintf("install=%v", [input.signature.install.valid]),
    sprintf("account=%v", [input.signature.account.valid]),
]}
"# } },
    });
    Gate::from_json(&config.to_string()).unwrap()
}

fn get(tok: &str) -> Request {
    Request::new("GET", "/v1/shapes?colour=red")
        .with_host("api.example.com")
        .with_header("Approov-Token", tok)
        .with_header("Authorization", "Bearer user-1")
}

fn post(tok: &str) -> Request {
    Request::new("POST", "/v1/pay")
        .with_host("api.example.com")
        .with_header("Approov-Token", tok)
        .with_header("Content-Type", "application/json")
        .with_header("Content-Length", "15")
        .with_body(&b"{\"amount\": 10}\n"[..])
}

fn signer(install_key: bool, account_key: bool) -> ApproovSigner {
    ApproovSigner {
        install: install_key.then(install),
        account: account_key.then(account),
    }
}

fn decide(gate: &Gate, request: &Request) -> (bool, Reason, Vec<String>) {
    let d = gate.check(request, NOW);
    (d.allow, d.reason, d.reasons)
}

#[test]
fn the_sdk_shape_verifies_with_one_config_for_get_and_post() {
    let tok = token(true);
    let gate = gate(json!({ "accept": "either" }));
    for request in [get(&tok), post(&tok)] {
        let signed = signer(true, true).sign_request(request, NOW).unwrap();
        let input = signed.header_values("signature-input").next().unwrap();
        assert!(
            input.contains("install=(") && input.contains(", account=("),
            "{input}"
        );
        assert!(input.contains(";expires=1700000015"), "{input}");
        let covers_digest = input.contains("\"content-digest\"");
        assert_eq!(covers_digest, signed.body.is_some(), "{input}");
        // The host decides at the headers for the GET and waits for the POST's body.
        assert_eq!(gate.needs_body(&signed), covers_digest);
        let (allow, reason, reasons) = decide(&gate, &signed);
        assert_eq!((allow, reason), (true, Reason::Allowed), "{signed:?}");
        assert_eq!(reasons, ["install=true", "account=true"]);
    }
}

#[test]
fn acceptance_follows_the_config() {
    let tok = token(true);
    let cases = [
        // (accept, install signs, account signs, expected)
        (
            "install",
            true,
            false,
            Ok(["install=true", "account=false"]),
        ),
        ("install", false, true, Err(Reason::RequestSignatureMissing)),
        (
            "account",
            false,
            true,
            Ok(["install=false", "account=true"]),
        ),
        ("account", true, false, Err(Reason::RequestSignatureMissing)),
        ("either", true, false, Ok(["install=true", "account=false"])),
        ("either", false, true, Ok(["install=false", "account=true"])),
        ("both", true, true, Ok(["install=true", "account=true"])),
        ("both", true, false, Err(Reason::RequestSignatureMissing)),
        ("both", false, true, Err(Reason::RequestSignatureMissing)),
    ];
    for (accept, with_install, with_account, expected) in cases {
        let gate = gate(json!({ "accept": accept }));
        for request in [get(&tok), post(&tok)] {
            let signed = signer(with_install, with_account)
                .sign_request(request, NOW)
                .unwrap();
            let (allow, reason, reasons) = decide(&gate, &signed);
            let label = format!("accept {accept}, install {with_install}, account {with_account}");
            match expected {
                Ok(want) => {
                    assert_eq!((allow, reason), (true, Reason::Allowed), "{label}");
                    assert_eq!(reasons, want, "{label}");
                }
                Err(want) => assert_eq!((allow, reason), (false, want), "{label}"),
            }
        }
    }
}

#[test]
fn a_bad_member_refuses_the_request_even_when_the_other_verifies() {
    let tok = token(true);
    let gate = gate(json!({ "accept": "either" }));
    let signed = signer(true, true).sign_request(post(&tok), NOW).unwrap();
    // The account member signed by another key.
    let other = AccountKey::from_bytes(vec![7; 32]).unwrap();
    let forged = ApproovSigner {
        install: Some(install()),
        account: Some(other),
    }
    .sign_request(post(&tok), NOW)
    .unwrap();
    assert_eq!(decide(&gate, &signed).1, Reason::Allowed);
    let (allow, reason, reasons) = decide(&gate, &forged);
    assert_eq!((allow, reason), (false, Reason::RequestSignatureInvalid));
    assert!(reasons[0].contains("does not verify"), "{reasons:?}");
    // A changed body breaks the digest both members cover.
    let mut tampered = signed.clone();
    tampered.body = Some(b"{\"amount\": 99}\n".to_vec());
    assert_eq!(decide(&gate, &tampered).1, Reason::RequestSignatureInvalid);
    // So does a changed path, and a replay past `expires` (created + 15 s, 30 s skew).
    let mut moved = signed.clone();
    moved.path = "/v1/refund".to_owned();
    assert_eq!(decide(&gate, &moved).1, Reason::RequestSignatureInvalid);
    let late = gate.check(&signed, NOW + 46);
    assert_eq!(late.reason, Reason::RequestSignatureInvalid);
    assert!(late.reasons[0].contains("expired"), "{:?}", late.reasons);
}

#[test]
fn account_signatures_need_a_strong_configured_key() {
    let base = json!({ "keys": { "approov_secret": SECRET } });
    for (signature, message) in [
        (
            json!({ "mode": "required", "accept": "account" }),
            "needs an `account_secret`",
        ),
        (
            json!({ "mode": "required", "accept": "both" }),
            "needs an `account_secret`",
        ),
        (
            json!({ "mode": "required", "account_secret": "c2hvcnQ=" }),
            "too weak",
        ),
        (
            json!({ "mode": "required", "account_secret": "!!!" }),
            "base64",
        ),
        (
            json!({ "mode": "required", "account_label": "install" }),
            "must differ",
        ),
        (
            json!({ "mode": "required", "max_body_bytes": 0 }),
            "max_body_bytes",
        ),
    ] {
        let mut config = base.clone();
        config["signature"] = signature.clone();
        let err = Gate::from_json(&config.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{signature}: {err}");
    }
}

#[test]
fn a_body_over_the_cap_is_refused_with_413() {
    let tok = token(true);
    let gate = gate(json!({ "accept": "install", "max_body_bytes": 8 }));
    let signed = signer(true, false).sign_request(post(&tok), NOW).unwrap();
    assert_eq!(gate.max_body_bytes(&signed), 8);
    let d = gate.check(&signed, NOW);
    assert_eq!(
        (d.allow, d.status, d.reason),
        (false, 413, Reason::BodyTooLarge)
    );
    // A GET signs no digest: its (absent) body is never read, so no cap applies.
    let signed = signer(true, false).sign_request(get(&tok), NOW).unwrap();
    assert!(!gate.needs_body(&signed));
    assert_eq!(gate.check(&signed, NOW).reason, Reason::Allowed);
}

#[test]
fn optional_mode_lets_unsigned_and_fail_over_requests_through() {
    let gate = gate(json!({ "mode": "optional", "accept": "either" }));
    assert_eq!(decide(&gate, &get(&token(true))).1, Reason::Allowed);
    // A fail-over token (no ipk) with only an install member present: not a failure.
    let signed = signer(true, false)
        .sign_request(get(&token(false)), NOW)
        .unwrap();
    assert_eq!(decide(&gate, &signed).1, Reason::Allowed);
    // But an account member that does not verify is.
    let mut signed = signer(false, true)
        .sign_request(get(&token(false)), NOW)
        .unwrap();
    signed.method = "DELETE".to_owned();
    assert_eq!(decide(&gate, &signed).1, Reason::RequestSignatureInvalid);
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn base(message: &Message<'_>, component: &str) -> Result<String, SignatureError> {
    signature::signature_base(message, &[component.to_owned()], "()")
        .map(|b| b.lines().next().unwrap_or_default().to_owned())
}

/// RFC 9421 §2.1.1 – §2.1.3 and §2.2.8, with the RFC's own examples.
#[test]
fn component_parameters_follow_the_rfc_examples() {
    let fields = headers(&[
        ("Example-Dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)"),
        ("Example-Header", "value, with, lots"),
        ("Example-Header", "of, commas"),
        ("X-Dict", "a=1, b=2;x=1;y=2, c=(a b c), d"),
        ("X-Text", "not a structured field{"),
    ]);
    let target = "/path?param=value&foo=bar&baz=batman&qux=&var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something";
    let m = Message::request("POST", "https", "Example.COM:443", target, &fields);
    let cases = [
        (
            "example-dict",
            "\"example-dict\": a=1,    b=2;x=1;y=2,   c=(a   b   c)",
        ),
        (
            "\"example-dict\";sf",
            "\"example-dict\";sf: a=1, b=2;x=1;y=2, c=(a b c)",
        ),
        ("\"x-dict\";key=\"a\"", "\"x-dict\";key=\"a\": 1"),
        ("\"x-dict\";key=\"d\"", "\"x-dict\";key=\"d\": ?1"),
        ("\"x-dict\";key=\"b\"", "\"x-dict\";key=\"b\": 2;x=1;y=2"),
        ("\"x-dict\";key=\"c\"", "\"x-dict\";key=\"c\": (a b c)"),
        (
            "example-header",
            "\"example-header\": value, with, lots, of, commas",
        ),
        (
            "\"example-header\";bs",
            "\"example-header\";bs: :dmFsdWUsIHdpdGgsIGxvdHM=:, :b2YsIGNvbW1hcw==:",
        ),
        (
            "\"@query-param\";name=\"baz\"",
            "\"@query-param\";name=\"baz\": batman",
        ),
        (
            "\"@query-param\";name=\"qux\"",
            "\"@query-param\";name=\"qux\": ",
        ),
        (
            "\"@query-param\";name=\"var\"",
            "\"@query-param\";name=\"var\": this%20is%20a%20big%0Amultiline%20value",
        ),
        (
            "\"@query-param\";name=\"bar\"",
            "\"@query-param\";name=\"bar\": with%20plus%20whitespace",
        ),
        (
            "\"@query-param\";name=\"fa%C3%A7ade%22%3A%20\"",
            "\"@query-param\";name=\"fa%C3%A7ade%22%3A%20\": something",
        ),
        // §2.2.3: no default port, lower case.
        ("@authority", "\"@authority\": example.com"),
        // §2.2.2: the target URI as sent; only @authority is normalized.
        (
            "@target-uri",
            &format!("\"@target-uri\": https://Example.COM:443{target}"),
        ),
    ];
    for (component, want) in cases {
        assert_eq!(base(&m, component).as_deref(), Ok(want), "{component}");
    }
    let other_port = Message::request("GET", "https", "example.com:8443", "/", &fields);
    assert_eq!(
        base(&other_port, "@authority").unwrap(),
        "\"@authority\": example.com:8443"
    );
    let http = Message::request("GET", "http", "example.com:80", "/", &fields);
    assert_eq!(
        base(&http, "@authority").unwrap(),
        "\"@authority\": example.com"
    );
}

#[test]
fn invalid_component_parameters_each_have_their_own_error() {
    let fields = headers(&[("X-Dict", "a=1"), ("X-Text", "{not structured")]);
    let m = Message::request("GET", "https", "h", "/?a=1&a=2&b=3", &fields);
    let invalid = |c: &str| {
        matches!(
            base(&m, c),
            Err(SignatureError::InvalidComponentParameter { .. })
        )
    };
    assert!(invalid("\"x-dict\";bs;sf"));
    assert!(invalid("\"x-dict\";bs;key=\"a\""));
    assert!(invalid("\"x-dict\";req"));
    assert!(invalid("\"@method\";sf"));
    assert!(invalid("\"@query-param\""));
    assert!(invalid("\"@path\";name=\"a\""));
    assert!(invalid("\"x-dict\";frob"));
    assert_eq!(
        base(&m, "\"x-text\";sf"),
        Err(SignatureError::NotStructured("x-text".to_owned()))
    );
    assert_eq!(
        base(&m, "\"x-dict\";key=\"z\""),
        Err(SignatureError::MemberAbsent {
            field: "x-dict".to_owned(),
            key: "z".to_owned()
        })
    );
    assert_eq!(
        base(&m, "\"@query-param\";name=\"a\""),
        Err(SignatureError::QueryParamRepeated("a".to_owned()))
    );
    assert!(matches!(
        base(&m, "\"@query-param\";name=\"zz\""),
        Err(SignatureError::ComponentAbsent(_))
    ));
    assert!(matches!(
        base(&m, "\"x-dict\";tr"),
        Err(SignatureError::UnsupportedComponent(_))
    ));
}

#[test]
fn parameterized_components_sign_and_verify_round_trip() {
    let key = account();
    let fields = headers(&[("X-Dict", "a=1, b=2"), ("Content-Type", "application/json")]);
    let components = [
        "@method",
        "@authority",
        "\"@query-param\";name=\"id\"",
        "\"x-dict\";key=\"b\"",
        "\"content-type\";bs",
        "\"x-dict\";sf",
    ];
    let mut options = SignOptions::new(components, NOW);
    options.label = "account".to_owned();
    options.alg = true;
    let m = Message::request("GET", "https", "api.example.com:443", "/x?id=7", &fields);
    let (input, sig) = signature::sign_with(Signer::Account(&key), &m, &options).unwrap();
    let mut signed = fields.clone();
    signed.push(("Signature-Input".to_owned(), input.clone()));
    signed.push(("Signature".to_owned(), sig));
    let verify = VerifyOptions {
        label: "account".to_owned(),
        required_components: vec!["@method".to_owned()],
        ..VerifyOptions::default()
    };
    let m = Message::request("GET", "https", "api.example.com", "/x?id=7", &signed);
    let verified =
        signature::verify_with(&m, None, SignatureKey::Account(&key), &verify, NOW).unwrap();
    assert_eq!(verified.components[2], "\"@query-param\";name=\"id\"");
    // The member named by `key` changed: refused.
    let mut changed = signed.clone();
    changed[0].1 = "a=1, b=3".to_owned();
    let m = Message::request("GET", "https", "api.example.com", "/x?id=7", &changed);
    assert_eq!(
        signature::verify_with(&m, None, SignatureKey::Account(&key), &verify, NOW),
        Err(SignatureError::BadSignature)
    );
    // An install key may not verify an hmac signature (the algorithm is pinned to the key).
    let m = Message::request("GET", "https", "api.example.com", "/x?id=7", &signed);
    let install_key = install().public();
    assert_eq!(
        signature::verify_with(&m, None, SignatureKey::Install(&install_key), &verify, NOW),
        Err(SignatureError::UnsupportedAlgorithm(
            "hmac-sha256".to_owned()
        ))
    );
}

#[test]
fn string_signatures_as_older_sdks_send_them_verify_too() {
    let tok = token(true);
    let gate = gate(json!({ "accept": "install" }));
    let signed = signer(true, false).sign_request(get(&tok), NOW).unwrap();
    let mut as_string = signed.clone();
    for (name, value) in &mut as_string.headers {
        if name == "Signature" {
            // install=:b64: → install="b64"
            *value = value
                .replacen("=:", "=\"", 1)
                .trim_end_matches(':')
                .to_owned()
                + "\"";
        }
    }
    assert_ne!(as_string, signed);
    assert_eq!(decide(&gate, &as_string).1, Reason::Allowed);
}
