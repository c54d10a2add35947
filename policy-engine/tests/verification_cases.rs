//! Runs tests/data/verification_cases.yaml: every reason code, every algorithm family, forged,
//! expired, unbound and policy-denied tokens, modes and route rules. The file's header
//! documents the case format.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use attestgate_policy::remote::{Dynamic, MemoryLimiter};
use attestgate_policy::{Gate, Reason, Request, Verdict};
use attestgate_testkit::SigningKey;
use base64ct::{Base64UrlUnpadded, Encoding};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

const NOW: i64 = 1_700_000_000;
const GATE_KEYS: [&str; 5] = ["hs256", "es256", "rs256", "ps256", "eddsa"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    header: Option<Map<String, Value>>,
    #[serde(default)]
    claims: Map<String, Value>,
    #[serde(default = "default_exp_in")]
    exp_in: Option<i64>,
    #[serde(default)]
    tamper: Option<Tamper>,
    #[serde(default, deserialize_with = "present")]
    token: Option<Option<String>>,
    #[serde(default)]
    raw_segments: Option<[String; 2]>,
    #[serde(default)]
    config: Value,
    #[serde(default)]
    gate_keys: Option<Vec<String>>,
    #[serde(default)]
    request: RequestSpec,
    /// Send the request this many times (one rate limiter for the case); the last answer counts.
    #[serde(default)]
    repeat: Option<u32>,
    expect: Expect,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Tamper {
    Signature,
    Claims,
    StripSignature,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestSpec {
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The body, as the host buffered it.
    #[serde(default)]
    body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    allow: bool,
    reason: Reason,
    status: u16,
    #[serde(default)]
    verdict: Option<Verdict>,
}

fn default_exp_in() -> Option<i64> {
    Some(300)
}

/// Tells `token: null` (send none) from an absent `token` (mint one).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn signing_key(name: &str) -> SigningKey {
    if name == "rs256_public_as_hmac" {
        // Algorithm confusion: the RSA public key's JWK text used as an HMAC secret.
        let public = std::fs::read(data_dir().join("keys/rs256.pub.json")).unwrap();
        let jwk =
            json!({ "kty": "oct", "alg": "HS256", "k": Base64UrlUnpadded::encode_string(&public) });
        return SigningKey::from_jwk(&jwk).unwrap();
    }
    SigningKey::from_jwk(&read_json(&data_dir().join(format!("keys/{name}.json")))).unwrap()
}

fn public_key(name: &str) -> Value {
    read_json(&data_dir().join(format!("keys/{name}.pub.json")))["keys"][0].clone()
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().unwrap();
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn flip_char(token: &str, at: usize) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn token_for(case: &Case) -> Option<String> {
    if let Some(token) = &case.token {
        return token.clone();
    }
    let key = signing_key(case.key.as_deref().expect("case needs `key` or `token`"));
    let token = match &case.raw_segments {
        Some([header, claims]) => key.sign_parts(header.as_bytes(), claims.as_bytes()),
        None => {
            let mut claims = case.claims.clone();
            if let Some(exp_in) = case.exp_in {
                claims.entry("exp").or_insert(json!(NOW + exp_in));
            }
            let header = case.header.clone().unwrap_or_else(|| {
                let mut header = Map::new();
                header.insert("alg".into(), json!(key.algorithm()));
                header.insert("typ".into(), json!("JWT"));
                if let Some(kid) = key.kid() {
                    header.insert("kid".into(), json!(kid));
                }
                header
            });
            key.sign_parts(
                &serde_json::to_vec(&header).unwrap(),
                &serde_json::to_vec(&claims).unwrap(),
            )
        }
    };
    let (first_dot, last_dot) = (token.find('.').unwrap(), token.rfind('.').unwrap());
    Some(match case.tamper {
        None => token,
        Some(Tamper::Signature) => flip_char(&token, last_dot + 3),
        Some(Tamper::Claims) => flip_char(&token, (first_dot + last_dot) / 2),
        Some(Tamper::StripSignature) => token[..=last_dot].to_owned(),
    })
}

fn gate_for(case: &Case) -> Gate {
    let names = case
        .gate_keys
        .clone()
        .unwrap_or_else(|| GATE_KEYS.iter().map(|s| s.to_string()).collect());
    let keys: Vec<Value> = names.iter().map(|name| public_key(name)).collect();
    let mut config = json!({ "keys": { "keys": keys } });
    if !case.config.is_null() {
        merge(&mut config, &case.config);
    }
    Gate::from_json(&config.to_string())
        .unwrap_or_else(|err| panic!("{}: config refused: {err}", case.name))
}

fn request_for(case: &Case, token: Option<&str>) -> Request {
    let mut request = Request::new(
        case.request.method.as_deref().unwrap_or("GET"),
        case.request.path.as_deref().unwrap_or("/"),
    )
    .with_host("api.example.com");
    // A header naming `{token}` carries the token; otherwise it goes in `Approov-Token`.
    let mut placed = false;
    for (name, value) in &case.request.headers {
        placed |= value.contains("{token}");
        request = request.with_header(name, value.replace("{token}", token.unwrap_or("")));
    }
    if let Some(body) = &case.request.body {
        request = request.with_body(body.as_bytes());
    }
    match token {
        Some(token) if !placed => request.with_header("Approov-Token", token),
        _ => request,
    }
}

#[test]
fn verification_cases() {
    let text = std::fs::read_to_string(data_dir().join("verification_cases.yaml")).unwrap();
    let cases: Vec<Case> = serde_yaml::from_str(&text).unwrap();
    let mut failures = Vec::new();
    let mut reasons_seen = std::collections::BTreeSet::new();
    for case in &cases {
        let token = token_for(case);
        let gate = gate_for(case);
        let request = request_for(case, token.as_deref());
        let mut limiter = MemoryLimiter::default();
        let mut dynamic = Dynamic {
            limiter: Some(&mut limiter),
            ..Dynamic::default()
        };
        let mut decision = gate.check_with(&request, NOW, &mut dynamic);
        for _ in 1..case.repeat.unwrap_or(1) {
            decision = gate.check_with(&request, NOW, &mut dynamic);
        }
        reasons_seen.insert(decision.reason);
        let want = &case.expect;
        let verdict_ok = want.verdict.is_none_or(|v| v == decision.verdict);
        if decision.allow != want.allow
            || decision.reason != want.reason
            || decision.status != want.status
            || !verdict_ok
        {
            failures.push(format!(
                "{}: expected {:?}, got allow={} reason={} status={} verdict={:?} reasons={:?} detail={:?}",
                case.name, want, decision.allow, decision.reason, decision.status,
                decision.verdict, decision.reasons, decision.detail
            ));
        }
    }
    println!(
        "verification cases: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // Every reason the core can produce has at least one case.
    for reason in Reason::ALL {
        // Only hosts produce these.
        if !matches!(
            reason,
            Reason::InternalError
                | Reason::ConfigInvalid
                | Reason::DuplicateHeader
                | Reason::LengthRequired
        ) {
            assert!(reasons_seen.contains(&reason), "no case produces {reason}");
        }
    }
}

/// Base64url with non-zero trailing bits decodes to the same bytes in a lenient decoder; the
/// gate must refuse it instead of verifying a token that is not byte-for-byte what was signed.
#[test]
fn non_canonical_base64_is_refused() {
    let gate = Gate::from_json(
        &json!({ "keys": { "keys": [public_key("hs256")] }, "require_exp": false }).to_string(),
    )
    .unwrap();
    let token = signing_key("hs256")
        .sign(json!({ "did": "d" }).as_object().unwrap())
        .unwrap();
    let check = |token: &str| {
        gate.check(
            &Request::new("GET", "/").with_header("approov-token", token),
            NOW,
        )
    };
    assert!(check(&token).allow);
    // A 32-byte MAC is 43 characters: the last one carries 2 data bits and 4 zero bits.
    let last = token.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let index = alphabet.find(last).unwrap();
    let sibling = alphabet.chars().nth(index ^ 1).unwrap();
    let altered = format!("{}{sibling}", &token[..token.len() - 1]);
    let decision = check(&altered);
    assert!(
        !decision.allow,
        "non-canonical base64url accepted: {decision:?}"
    );
    assert_eq!(decision.reason, Reason::TokenMalformed, "{decision:?}");
}
