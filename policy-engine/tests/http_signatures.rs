//! Install-key request signatures (RFC 9421): the appendix B known answers, then a signed
//! request and every way it can be tampered with.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use attestgate_policy::signature::{
    self, check_content_digest, content_digest, parse, signature_base, verify_base,
    DigestAlgorithm, InstallKey, Message, SignOptions, SignatureError, VerifyOptions,
};
use p256::ecdsa::SigningKey;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/rfc9421");

fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).unwrap()
}

/// The base64 body of a PEM file: what a token's `ipk` claim carries.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

const B24_INPUT: &str = r#"sig-b24=("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256""#;
const B24_SIGNATURE: &str = "sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==:";
const B24_BODY: &[u8] = br#"{"message": "good dog"}"#;

/// RFC 9421 B.2 `test-response` with the B.2.4 signature.
fn b24_headers() -> Vec<(String, String)> {
    headers(&[
        ("Date", "Tue, 20 Apr 2021 02:07:56 GMT"),
        ("Content-Type", "application/json"),
        (
            "Content-Digest",
            "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:",
        ),
        ("Content-Length", "23"),
        ("Signature-Input", B24_INPUT),
        ("Signature", B24_SIGNATURE),
    ])
}

fn b24_message(headers: &[(String, String)]) -> Message<'_> {
    Message {
        status: Some(200),
        ..Message::request("POST", "https", "example.com", "/foo", headers)
    }
}

fn rfc_key() -> InstallKey {
    InstallKey::from_base64_spki(&pem_body(&data("test-key-ecc-p256.pub.pem"))).unwrap()
}

#[test]
fn b24_signature_base_is_byte_for_byte_the_rfcs() {
    let headers = b24_headers();
    let message = b24_message(&headers);
    let parsed = parse(&message, "sig-b24").unwrap();
    assert_eq!(
        parsed.components,
        [
            "@status",
            "content-type",
            "content-digest",
            "content-length"
        ]
    );
    assert_eq!(parsed.created, Some(1_618_884_473));
    assert_eq!(parsed.keyid.as_deref(), Some("test-key-ecc-p256"));
    assert_eq!(parsed.signature.len(), 64);
    let base = signature_base(&message, &parsed.components, &parsed.signature_params).unwrap();
    assert_eq!(base, data("b24.base"));
}

#[test]
fn b24_signature_verifies_with_test_key_ecc_p256() {
    let headers = b24_headers();
    let message = b24_message(&headers);
    let parsed = parse(&message, "sig-b24").unwrap();
    verify_base(&rfc_key(), &data("b24.base"), &parsed.signature).unwrap();

    let options = VerifyOptions {
        label: "sig-b24".to_owned(),
        required_components: vec!["@status".to_owned(), "content-digest".to_owned()],
        ..VerifyOptions::default()
    };
    let verified = signature::verify(
        &message,
        Some(B24_BODY),
        &rfc_key(),
        &options,
        1_618_884_473,
    )
    .unwrap();
    assert_eq!(verified.keyid.as_deref(), Some("test-key-ecc-p256"));

    // The same signature over a base differing in one byte, or a body differing in one byte.
    let tampered = data("b24.base").replace("200", "201");
    assert_eq!(
        verify_base(&rfc_key(), &tampered, &parsed.signature),
        Err(SignatureError::BadSignature)
    );
    assert_eq!(
        signature::verify(
            &message,
            Some(br#"{"message": "bad dog"}"#),
            &rfc_key(),
            &options,
            1_618_884_473
        ),
        Err(SignatureError::DigestMismatch("sha-512"))
    );
    // Checked against the clock: a day later the RFC's signature is too old.
    assert!(matches!(
        signature::verify(
            &message,
            Some(B24_BODY),
            &rfc_key(),
            &options,
            1_618_884_473 + 86_400
        ),
        Err(SignatureError::TooOld { .. })
    ));
}

#[test]
fn b23_request_signature_base_is_byte_for_byte_the_rfcs() {
    // B.2 `test-request`, B.2.3's covered components; the RSA-PSS signature itself is not
    // verified (not an accepted algorithm), a placeholder stands in for it.
    let headers = headers(&[
        ("Host", "example.com"),
        ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("Content-Type", "application/json"),
        (
            "Content-Digest",
            "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
        ),
        ("Content-Length", "18"),
        (
            "Signature-Input",
            r#"sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss""#,
        ),
        ("Signature", "sig-b23=:AAAA:"),
    ]);
    let message = Message::request(
        "POST",
        "https",
        "example.com",
        "/foo?param=Value&Pet=dog",
        &headers,
    );
    let parsed = parse(&message, "sig-b23").unwrap();
    let base = signature_base(&message, &parsed.components, &parsed.signature_params).unwrap();
    assert_eq!(base, data("b23.base"));
    check_content_digest(&headers[3].1, br#"{"hello": "world"}"#).unwrap();
}

// ---- a signed request and its tamperings ----

const NOW: i64 = 1_700_000_000;
const BODY: &[u8] = br#"{"amount": 100}"#;

fn install_key() -> SigningKey {
    SigningKey::from_slice(&[0x42; 32]).unwrap()
}

fn install_public(key: &SigningKey) -> InstallKey {
    InstallKey::from_verifying_key(*key.verifying_key())
}

/// A request as the app builds it before signing.
#[derive(Clone, Debug)]
struct Req {
    method: String,
    authority: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Req {
    fn post() -> Req {
        Req {
            method: "POST".to_owned(),
            authority: "api.example.com".to_owned(),
            target: "/v1/pay?to=alice".to_owned(),
            headers: headers(&[
                ("Host", "api.example.com"),
                ("Authorization", "Bearer abc"),
                ("Content-Type", "application/json"),
                (
                    "Content-Digest",
                    &content_digest(BODY, DigestAlgorithm::Sha256),
                ),
            ]),
            body: Some(BODY.to_vec()),
        }
    }

    fn message(&self) -> Message<'_> {
        Message::request(
            &self.method,
            "https",
            &self.authority,
            &self.target,
            &self.headers,
        )
    }

    fn signed_with(mut self, key: &SigningKey, options: &SignOptions) -> Req {
        let (input, sig) = signature::sign(key, &self.message(), options).unwrap();
        self.headers.push(("Signature-Input".to_owned(), input));
        self.headers.push(("Signature".to_owned(), sig));
        self
    }

    fn signed(self) -> Req {
        self.signed_with(&install_key(), &sign_options())
    }

    fn set(&mut self, name: &str, value: &str) {
        for (n, v) in &mut self.headers {
            if n.eq_ignore_ascii_case(name) {
                *v = value.to_owned();
            }
        }
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn verify_at(&self, now: i64) -> Result<signature::Verified, SignatureError> {
        signature::verify(
            &self.message(),
            self.body.as_deref(),
            &install_public(&install_key()),
            &verify_options(),
            now,
        )
    }
}

fn components() -> Vec<&'static str> {
    vec![
        "@method",
        "@target-uri",
        "@authority",
        "authorization",
        "content-digest",
    ]
}

fn sign_options() -> SignOptions {
    SignOptions {
        expires: Some(NOW + 60),
        keyid: Some("install-1".to_owned()),
        alg: true,
        ..SignOptions::new(components(), NOW)
    }
}

fn verify_options() -> VerifyOptions {
    VerifyOptions {
        required_components: ["@method", "@target-uri", "content-digest"]
            .map(str::to_owned)
            .to_vec(),
        max_age_seconds: 300,
        clock_skew_seconds: 30,
        ..VerifyOptions::default()
    }
}

#[test]
fn a_signed_request_verifies_and_reports_what_it_covers() {
    let req = Req::post().signed();
    let verified = req.verify_at(NOW + 5).unwrap();
    assert_eq!(verified.components, components());
    assert_eq!(verified.keyid.as_deref(), Some("install-1"));
    assert_eq!(verified.created, Some(NOW));
    let input = &req
        .headers
        .iter()
        .find(|(n, _)| n == "Signature-Input")
        .unwrap()
        .1;
    assert_eq!(
        input,
        r#"install=("@method" "@target-uri" "@authority" "authorization" "content-digest");created=1700000000;expires=1700000060;keyid="install-1";alg="ecdsa-p256-sha256""#
    );
}

#[test]
fn the_install_key_comes_from_base64_der_spki_as_in_an_ipk_claim() {
    use base64ct::{Base64, Encoding};
    // SubjectPublicKeyInfo { id-ecPublicKey, prime256v1 } + the uncompressed point, by hand.
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(
        install_key()
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes(),
    );
    let ipk = Base64::encode_string(&der);
    let key = InstallKey::from_base64_spki(&ipk).unwrap();
    let req = Req::post().signed();
    signature::verify(&req.message(), Some(BODY), &key, &verify_options(), NOW).unwrap();

    for bad in [
        "not base64!",
        "AAAA",
        "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=",
    ] {
        assert!(
            matches!(
                InstallKey::from_base64_spki(bad),
                Err(SignatureError::InvalidKey(_))
            ),
            "{bad}"
        );
    }
}

type Tamper = fn(&mut Req);

#[test]
fn every_tampering_is_refused_with_its_own_error() {
    let cases: Vec<(&str, Tamper, SignatureError)> = vec![
        (
            "method",
            |r| r.method = "PUT".to_owned(),
            SignatureError::BadSignature,
        ),
        (
            "path",
            |r| r.target = "/v1/PAY?to=alice".to_owned(),
            SignatureError::BadSignature,
        ),
        (
            "query",
            |r| r.target = "/v1/pay?to=mallory".to_owned(),
            SignatureError::BadSignature,
        ),
        (
            "authority",
            |r| r.authority = "evil.example".to_owned(),
            SignatureError::BadSignature,
        ),
        (
            "covered header",
            |r| r.set("authorization", "Bearer xyz"),
            SignatureError::BadSignature,
        ),
        (
            "repeated covered header",
            |r| {
                r.headers
                    .push(("Authorization".to_owned(), "Bearer xyz".to_owned()))
            },
            SignatureError::BadSignature,
        ),
        (
            "body",
            |r| r.body = Some(br#"{"amount": 900}"#.to_vec()),
            SignatureError::DigestMismatch("sha-256"),
        ),
        (
            "body and its digest",
            |r| {
                let body = br#"{"amount": 900}"#;
                r.set(
                    "content-digest",
                    &content_digest(body, DigestAlgorithm::Sha256),
                );
                r.body = Some(body.to_vec());
            },
            SignatureError::BadSignature,
        ),
        (
            "body unavailable",
            |r| r.body = None,
            SignatureError::BodyUnavailable,
        ),
        (
            "covered header removed",
            |r| r.remove("authorization"),
            SignatureError::ComponentAbsent("authorization".to_owned()),
        ),
        (
            "signature removed",
            |r| r.remove("signature"),
            SignatureError::Missing("install".to_owned()),
        ),
        (
            "both headers removed",
            |r| {
                r.remove("signature");
                r.remove("signature-input");
            },
            SignatureError::Missing("install".to_owned()),
        ),
        (
            "signature under another label",
            |r| {
                for (n, v) in &mut r.headers {
                    if n.starts_with("Signature") {
                        *v = v.replacen("install=", "other=", 1);
                    }
                }
            },
            SignatureError::Missing("install".to_owned()),
        ),
        (
            "signature-input not a dictionary",
            |r| r.set("signature-input", "install=(\"@method\""),
            SignatureError::MalformedInput("".to_owned()),
        ),
        (
            "signature-input member not an inner list",
            |r| r.set("signature-input", "install=\"@method\""),
            SignatureError::MalformedInput("".to_owned()),
        ),
        (
            "component not a string",
            |r| r.set("signature-input", "install=(method);created=1700000000"),
            SignatureError::MalformedInput("".to_owned()),
        ),
        (
            "upper-case component",
            |r| {
                r.set(
                    "signature-input",
                    r#"install=("@method" "Authorization");created=1700000000"#,
                )
            },
            SignatureError::MalformedInput("".to_owned()),
        ),
        (
            "duplicate component",
            |r| {
                r.set(
                    "signature-input",
                    r#"install=("@method" "@method");created=1700000000"#,
                )
            },
            SignatureError::MalformedInput("".to_owned()),
        ),
        (
            "created not an integer",
            |r| r.set("signature-input", r#"install=("@method");created="now""#),
            SignatureError::MalformedInput("".to_owned()),
        ),
        (
            "req on a request",
            |r| {
                r.set(
                    "signature-input",
                    r#"install=("@method" "authorization";req);created=1700000000"#,
                )
            },
            SignatureError::InvalidComponentParameter {
                component: String::new(),
                message: String::new(),
            },
        ),
        (
            "query-param without a name",
            |r| {
                r.set("signature-input", r#"install=("@method" "@target-uri" "content-digest" "@query-param");created=1700000000"#)
            },
            SignatureError::InvalidComponentParameter {
                component: String::new(),
                message: String::new(),
            },
        ),
        (
            "unknown derived component",
            |r| {
                r.set("signature-input", r#"install=("@method" "@target-uri" "content-digest" "@frobnicate");created=1700000000"#)
            },
            SignatureError::UnsupportedComponent("".to_owned()),
        ),
        (
            "trailer",
            |r| {
                r.set("signature-input", r#"install=("@method" "@target-uri" "content-digest" "x";tr);created=1700000000"#)
            },
            SignatureError::UnsupportedComponent("".to_owned()),
        ),
        (
            "other algorithm",
            |r| {
                r.set("signature-input", r#"install=("@method" "@target-uri" "content-digest");created=1700000000;alg="ed25519""#)
            },
            SignatureError::UnsupportedAlgorithm("ed25519".to_owned()),
        ),
        (
            "signature too short",
            |r| r.set("signature", "install=:AAAA:"),
            SignatureError::MalformedSignature("".to_owned()),
        ),
        (
            "signature not a byte sequence",
            |r| r.set("signature", "install=\"abc\""),
            SignatureError::MalformedSignature("".to_owned()),
        ),
        (
            "signature not a dictionary",
            |r| r.set("signature", "install=:AAAA"),
            SignatureError::MalformedSignature("".to_owned()),
        ),
        (
            "digest of an unknown algorithm only",
            |r| r.set("content-digest", "md5=:AAAA:"),
            SignatureError::BadSignature,
        ),
    ];
    let errors_match = |a: &SignatureError, b: &SignatureError| {
        std::mem::discriminant(a) == std::mem::discriminant(b)
            && match (a, b) {
                (SignatureError::MalformedInput(_), _)
                | (SignatureError::MalformedSignature(_), _)
                | (SignatureError::UnsupportedComponent(_), _)
                | (SignatureError::InvalidComponentParameter { .. }, _) => true,
                _ => a == b,
            }
    };
    let signed = Req::post().signed();
    assert!(signed.verify_at(NOW).is_ok());
    for (name, tamper, expected) in cases {
        let mut req = signed.clone();
        tamper(&mut req);
        let got = req.verify_at(NOW);
        match &got {
            Err(err) => assert!(
                errors_match(err, &expected),
                "{name}: got {err:?}, want {expected:?}"
            ),
            Ok(_) => panic!("{name}: a tampered request verified"),
        }
        assert!(!got.unwrap_err().to_string().is_empty());
    }
}

#[test]
fn the_clock_window_bounds_created_and_expires() {
    let req = Req::post().signed();
    // Within skew of created, within max age, before expires.
    assert!(req.verify_at(NOW - 30).is_ok());
    assert!(req.verify_at(NOW + 60).is_ok());
    // Replay after expires (+ skew).
    assert_eq!(req.verify_at(NOW + 91), Err(SignatureError::Expired(31)));
    // Created further in the future than the skew allows.
    assert_eq!(
        req.verify_at(NOW - 31),
        Err(SignatureError::CreatedInFuture(31))
    );

    // Without expires, max age bounds replay.
    let opts = SignOptions {
        expires: None,
        ..sign_options()
    };
    let req = Req::post().signed_with(&install_key(), &opts);
    assert!(req.verify_at(NOW + 300).is_ok());
    assert_eq!(
        req.verify_at(NOW + 301),
        Err(SignatureError::TooOld { age: 301, max: 300 })
    );

    // No created at all.
    let opts = SignOptions {
        created: None,
        ..sign_options()
    };
    let req = Req::post().signed_with(&install_key(), &opts);
    assert_eq!(req.verify_at(NOW), Err(SignatureError::MissingCreated));
    let lenient = VerifyOptions {
        require_created: false,
        ..verify_options()
    };
    signature::verify(
        &req.message(),
        Some(BODY),
        &install_public(&install_key()),
        &lenient,
        NOW,
    )
    .unwrap();
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let other = SigningKey::from_slice(&[0x43; 32]).unwrap();
    let req = Req::post().signed_with(&other, &sign_options());
    assert_eq!(req.verify_at(NOW), Err(SignatureError::BadSignature));
    // ...and the RFC's own signature does not verify under our key.
    let headers = b24_headers();
    let options = VerifyOptions {
        label: "sig-b24".to_owned(),
        required_components: vec![],
        max_age_seconds: 0,
        ..VerifyOptions::default()
    };
    assert_eq!(
        signature::verify(
            &b24_message(&headers),
            Some(B24_BODY),
            &install_public(&install_key()),
            &options,
            1_618_884_473
        ),
        Err(SignatureError::BadSignature)
    );
}

#[test]
fn required_components_must_be_covered() {
    let opts = SignOptions::new(["@method", "@authority", "content-digest"], NOW);
    let req = Req::post().signed_with(&install_key(), &opts);
    assert_eq!(
        req.verify_at(NOW),
        Err(SignatureError::RequiredComponentNotCovered(
            "@target-uri".to_owned()
        ))
    );
    let opts = SignOptions::new(["@method", "@target-uri"], NOW);
    let req = Req::post().signed_with(&install_key(), &opts);
    assert_eq!(
        req.verify_at(NOW),
        Err(SignatureError::RequiredComponentNotCovered(
            "content-digest".to_owned()
        ))
    );
}

#[test]
fn derived_components_follow_section_2_2() {
    let headers = headers(&[("X-A", " one "), ("x-a", "two\t")]);
    let message = Message::request("GET", "HTTPS", "Api.Example.COM", "/p/a?b=1&c", &headers);
    let names: Vec<String> = [
        "@method",
        "@scheme",
        "@authority",
        "@path",
        "@query",
        "@request-target",
        "@target-uri",
        "x-a",
    ]
    .map(str::to_owned)
    .to_vec();
    let base = signature_base(&message, &names, "()").unwrap();
    assert_eq!(
        base,
        "\"@method\": GET\n\"@scheme\": https\n\"@authority\": api.example.com\n\"@path\": /p/a\n\
         \"@query\": ?b=1&c\n\"@request-target\": /p/a?b=1&c\n\"@target-uri\": https://Api.Example.COM/p/a?b=1&c\n\
         \"x-a\": one, two\n\"@signature-params\": ()"
    );
    let message = Message::request("GET", "https", "h", "/", &headers);
    let base = signature_base(&message, &["@query".to_owned()], "()").unwrap();
    assert_eq!(base, "\"@query\": ?\n\"@signature-params\": ()");
    assert_eq!(
        signature_base(&message, &["@status".to_owned()], "()"),
        Err(SignatureError::UnsupportedComponent("@status".to_owned()))
    );
}

#[test]
fn content_digest_accepts_sha_256_and_sha_512() {
    let cases = [
        (content_digest(BODY, DigestAlgorithm::Sha256), BODY, Ok(())),
        (content_digest(BODY, DigestAlgorithm::Sha512), BODY, Ok(())),
        (
            format!(
                "md5=:AAAA:, {}",
                content_digest(BODY, DigestAlgorithm::Sha512)
            ),
            BODY,
            Ok(()),
        ),
        (
            content_digest(BODY, DigestAlgorithm::Sha512),
            &b"other"[..],
            Err(SignatureError::DigestMismatch("sha-512")),
        ),
        (
            format!(
                "{}, {}",
                content_digest(BODY, DigestAlgorithm::Sha256),
                content_digest(b"other", DigestAlgorithm::Sha512)
            ),
            BODY,
            Err(SignatureError::DigestMismatch("sha-512")),
        ),
    ];
    for (value, body, expected) in cases {
        assert_eq!(check_content_digest(&value, body), expected, "{value}");
    }
    for bad in ["md5=:AAAA:", "sha-256=\"abc\"", "sha-256=:AAAA", ""] {
        assert!(
            matches!(
                check_content_digest(bad, BODY),
                Err(SignatureError::MalformedDigest(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn signature_fields_on_several_lines_are_one_dictionary() {
    let mut req = Req::post().signed();
    // A second, unrelated signature on its own field lines comes first.
    req.headers.insert(
        0,
        (
            "Signature-Input".to_owned(),
            r#"proxy=("@method");created=1"#.to_owned(),
        ),
    );
    req.headers
        .insert(0, ("Signature".to_owned(), "proxy=:AAAA:".to_owned()));
    assert!(req.verify_at(NOW).is_ok());
}

// ---- through the gate ----

mod gate {
    use super::*;
    use attestgate_policy::{Gate, Reason, Request};
    use attestgate_testkit::SigningKey as TokenKey;
    use base64ct::{Base64, Encoding};
    use serde_json::json;

    const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

    /// `ipk`: base64 DER SubjectPublicKeyInfo of the install key.
    pub fn ipk(key: &p256::ecdsa::SigningKey) -> String {
        let mut der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        der.extend_from_slice(key.verifying_key().to_encoded_point(false).as_bytes());
        Base64::encode_string(&der)
    }

    fn token(claims: serde_json::Value) -> String {
        TokenKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap()
    }

    fn gate(extra: serde_json::Value) -> Gate {
        let mut config = json!({
            "keys": { "approov_secret": SECRET },
            "policy": { "modules": { "p.rego": r#"package attestgate
import rego.v1
default decision := {"allow": false, "reasons": ["unsigned"]}
decision := {"allow": true, "reasons": input.signature.components} if input.signature.valid
decision := {"allow": true, "reasons": ["fail-over"]} if {
    not input.signature.present
    not input.token.claims.ipk
}
"# } },
            "rules": [
                { "name": "pay", "path_prefix": "/v1/pay", "signature": {
                    "mode": "required",
                    "components": ["@method", "@target-uri", "content-digest"] } },
                { "name": "read", "path_prefix": "/v1/read", "signature": { "mode": "optional" } },
                { "name": "open", "path_prefix": "/" }
            ]
        });
        if let serde_json::Value::Object(extra) = extra {
            for (k, v) in extra {
                config[k] = v;
            }
        }
        Gate::from_json(&config.to_string()).unwrap()
    }

    fn signed(
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        tok: &str,
        key: &p256::ecdsa::SigningKey,
    ) -> Request {
        let mut request = Request::new(method, path)
            .with_host("api.example.com")
            .with_header("Approov-Token", tok);
        let mut components = vec!["@method", "@target-uri"];
        if let Some(body) = body {
            request = request
                .with_header(
                    "Content-Digest",
                    content_digest(body, DigestAlgorithm::Sha512),
                )
                .with_body(body.to_vec());
            components.push("content-digest");
        }
        let message = Message::from_request(&request, "https");
        let (input, sig) =
            signature::sign(key, &message, &SignOptions::new(components, NOW)).unwrap();
        request
            .with_header("Signature-Input", input)
            .with_header("Signature", sig)
    }

    #[test]
    fn required_route_allows_a_signed_post_and_the_policy_sees_input_signature() {
        let key = install_key();
        let tok = token(json!({ "exp": NOW + 300, "ipk": ipk(&key) }));
        let gate = gate(json!({}));
        let d = gate.check(
            &signed("POST", "/v1/pay?to=alice", Some(BODY), &tok, &key),
            NOW,
        );
        assert_eq!((d.allow, d.reason), (true, Reason::Allowed), "{d:?}");
        assert_eq!(d.reasons, ["@method", "@target-uri", "content-digest"]);
    }

    #[test]
    fn required_route_refuses_missing_tampered_and_foreign_signatures() {
        let key = install_key();
        let tok = token(json!({ "exp": NOW + 300, "ipk": ipk(&key) }));
        let gate = gate(json!({}));
        let check = |r: &Request| {
            let d = gate.check(r, NOW);
            (d.allow, d.status, d.reason)
        };
        let unsigned = Request::new("POST", "/v1/pay")
            .with_host("api.example.com")
            .with_header("Approov-Token", tok.as_str());
        assert_eq!(
            check(&unsigned),
            (false, 401, Reason::RequestSignatureMissing)
        );

        let good = signed("POST", "/v1/pay?to=alice", Some(BODY), &tok, &key);
        let mut body_tampered = good.clone();
        body_tampered.body = Some(b"{}".to_vec());
        assert_eq!(
            check(&body_tampered),
            (false, 401, Reason::RequestSignatureInvalid)
        );
        let mut no_body = good.clone();
        no_body.body = None;
        assert_eq!(
            check(&no_body),
            (false, 401, Reason::RequestSignatureInvalid)
        );
        let mut path_tampered = good.clone();
        path_tampered.path = "/v1/pay?to=mallory".to_owned();
        assert_eq!(
            check(&path_tampered),
            (false, 401, Reason::RequestSignatureInvalid)
        );
        // Signed without content-digest: the route requires it.
        let no_digest = signed("POST", "/v1/pay", None, &tok, &key);
        assert_eq!(
            check(&no_digest),
            (false, 401, Reason::RequestSignatureInvalid)
        );
        // Signed by another install than the token names (a stolen token).
        let thief = p256::ecdsa::SigningKey::from_slice(&[0x43; 32]).unwrap();
        let stolen = signed("POST", "/v1/pay?to=alice", Some(BODY), &tok, &thief);
        assert_eq!(
            check(&stolen),
            (false, 401, Reason::RequestSignatureInvalid)
        );
        // Replayed after the window.
        assert_eq!(
            gate.check(&good, NOW + 301).reason,
            Reason::RequestSignatureInvalid
        );
        // A token without `ipk` cannot pass a required route even when signed.
        let no_ipk = token(json!({ "exp": NOW + 300 }));
        let d = gate.check(&signed("POST", "/v1/pay", Some(BODY), &no_ipk, &key), NOW);
        assert_eq!(
            (d.allow, d.reason),
            (false, Reason::RequestSignatureInvalid)
        );
        assert!(d.reasons[0].contains("ipk"), "{:?}", d.reasons);
    }

    #[test]
    fn optional_route_lets_fail_over_tokens_through_but_not_bad_signatures() {
        let key = install_key();
        let gate = gate(json!({}));
        let with_ipk = token(json!({ "exp": NOW + 300, "ipk": ipk(&key) }));
        let without = token(json!({ "exp": NOW + 300 }));
        // Fail-over token, unsigned: the policy sees present=false and allows.
        let r = Request::new("GET", "/v1/read").with_header("Approov-Token", without.as_str());
        let d = gate.check(&r, NOW);
        assert_eq!(
            (d.allow, d.reasons.clone()),
            (true, vec!["fail-over".to_owned()])
        );
        // Token with ipk, unsigned: the gate lets it on, the policy refuses (valid=false).
        let r = Request::new("GET", "/v1/read").with_header("Approov-Token", with_ipk.as_str());
        assert_eq!(gate.check(&r, NOW).reason, Reason::PolicyDenied);
        // Signed and valid.
        let r = signed("GET", "/v1/read/x", None, &with_ipk, &key);
        assert!(gate.check(&r, NOW).allow);
        // Present but bad: refused by the gate.
        let mut r = signed("GET", "/v1/read/x", None, &with_ipk, &key);
        r.method = "DELETE".to_owned();
        assert_eq!(gate.check(&r, NOW).reason, Reason::RequestSignatureInvalid);
    }

    #[test]
    fn off_by_default_and_monitor_mode_only_reports() {
        let key = install_key();
        let tok = token(json!({ "exp": NOW + 300, "ipk": ipk(&key) }));
        // Off: no signature checked, the policy sees valid=false.
        let gate_off =
            Gate::from_json(&json!({ "keys": { "approov_secret": SECRET } }).to_string()).unwrap();
        let r = Request::new("POST", "/v1/pay").with_header("Approov-Token", tok.as_str());
        assert!(gate_off.check(&r, NOW).allow);
        assert_eq!(
            gate_off.config().signature,
            attestgate_policy::signature::SignatureConfig::default()
        );
        // Monitor: the denial is reported, not enforced.
        let gate = gate(json!({ "mode": "monitor" }));
        let d = gate.check(&r, NOW);
        assert_eq!((d.allow, d.reason), (true, Reason::RequestSignatureMissing));
    }

    #[test]
    fn bad_signature_configs_are_refused() {
        for (sig, field) in [
            (
                json!({ "mode": "required", "label": "Install" }),
                "signature",
            ),
            (
                json!({ "mode": "required", "components": ["@status"] }),
                "signature",
            ),
            (
                json!({ "mode": "required", "components": ["Content-Digest"] }),
                "signature",
            ),
            (json!({ "mode": "required", "scheme": "ftp" }), "signature"),
            (json!({ "mode": "sometimes" }), ""),
            (json!({ "mode": "required", "lable": "x" }), ""),
        ] {
            let config = json!({ "keys": { "approov_secret": SECRET }, "signature": sig });
            let err = Gate::from_json(&config.to_string())
                .unwrap_err()
                .to_string();
            assert!(err.contains(field), "{sig}: {err}");
        }
        let config = json!({ "keys": { "approov_secret": SECRET },
            "rules": [{ "path": "/x", "signature": { "components": ["@nope"] } }] });
        let err = Gate::from_json(&config.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("rules[0].signature"), "{err}");
    }
}

#[test]
fn mint_install_signer_signs_requests_the_gate_accepts() {
    use attestgate_policy::{Gate, Reason, Request};
    use attestgate_testkit::{InstallSigner, SigningKey as TokenKey};
    use serde_json::json;
    let jwk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/keys/es256.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let install = InstallSigner::from_jwk(&jwk).unwrap();
    // The ipk claim parses to the same public key.
    assert_eq!(
        InstallKey::from_base64_spki(&install.ipk()).unwrap(),
        install.public()
    );
    assert!(InstallSigner::from_jwk(&json!({ "kty": "EC", "crv": "P-256" })).is_err());
    assert!(
        InstallSigner::from_jwk(&json!({ "kty": "OKP", "crv": "Ed25519", "d": "AA" })).is_err()
    );

    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let claims = json!({ "exp": NOW + 300, "ipk": install.ipk() });
    let token = TokenKey::hs256_from_base64_secret(secret)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
    let gate = Gate::from_json(
        &json!({
            "keys": { "approov_secret": secret },
            "signature": { "mode": "required", "components": ["@method", "@target-uri", "content-digest"] }
        })
        .to_string(),
    )
    .unwrap();
    let request = Request::new("POST", "/v1/pay")
        .with_host("api.example.com")
        .with_header("Approov-Token", token.as_str())
        .with_body(BODY);
    let options = SignOptions::new(["@method", "@target-uri", "content-digest"], NOW);
    let signed = install.sign_request(request.clone(), &options).unwrap();
    assert_eq!(gate.check(&signed, NOW).reason, Reason::Allowed);
    assert!(gate.needs_body(&signed));
    assert!(!gate.needs_body(&request));
    let mut tampered = signed.clone();
    tampered.body = Some(b"x".to_vec());
    assert_eq!(
        gate.check(&tampered, NOW).reason,
        Reason::RequestSignatureInvalid
    );
    assert_eq!(
        gate.check(&request, NOW).reason,
        Reason::RequestSignatureMissing
    );
}

#[test]
fn the_decision_cache_never_serves_a_signed_body_to_another_body() {
    use attestgate_policy::{DecisionCache, Gate, Reason, Request};
    use attestgate_testkit::{InstallSigner, SigningKey as TokenKey};
    use serde_json::json;
    let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    let install = InstallSigner::from_slice(&[9; 32]).unwrap();
    let claims = json!({ "exp": NOW + 300, "ipk": install.ipk() });
    let token = TokenKey::hs256_from_base64_secret(secret)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
    let gate = Gate::from_json(
        &json!({
            "keys": { "approov_secret": secret },
            "signature": { "mode": "required", "components": ["@method", "@target-uri", "content-digest"] }
        })
        .to_string(),
    )
    .unwrap();
    let request = Request::new("POST", "/v1/pay")
        .with_host("api.example.com")
        .with_header("Approov-Token", token.as_str())
        .with_body(BODY);
    let options = SignOptions::new(["@method", "@target-uri", "content-digest"], NOW);
    let signed = install.sign_request(request, &options).unwrap();
    let mut cache = DecisionCache::new(100);
    assert_eq!(cache.check(&gate, &signed, NOW).0.reason, Reason::Allowed);
    assert_eq!(cache.check(&gate, &signed, NOW).0.reason, Reason::Allowed);
    let mut tampered = signed.clone();
    tampered.body = Some(b"{\"amount\": 900}".to_vec());
    assert_eq!(
        cache.check(&gate, &tampered, NOW).0.reason,
        Reason::RequestSignatureInvalid
    );
}
