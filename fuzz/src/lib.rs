//! Shared code of the fuzz targets: the gates they decide with, and the input formats.
//!
//! The gates are the request corpus's (`corpus/cases`), materialized at [`NOW`], so the seed
//! inputs `attestgate-corpus --fuzz-seeds` writes from the same corpus reach deep: valid
//! tokens, every gate config and every request of the corpus.
//!
//! Input formats (the seed writer in `corpus/src/main.rs` produces them):
//! - `token`: one mode byte, then
//!   - mode 0: the token text (bytes, lossily UTF-8), in the `adversarial/all_keys` gate;
//!   - mode 1: `header JSON \0 claims JSON`, signed with the HS256 test key as they are;
//!   - mode 2: claims JSON, signed with the HS256 test key under `{"alg":"HS256","kid":"hs"}`.
//! - `config`: the gate config text (JSON, as the filter gets it).
//! - `check`: one byte choosing the corpus gate, then the request as text: a first line
//!   `METHOD PATH`, then `name: value` lines (`:authority: host` sets the host).
//! - `policy_plan`: `Rego module \0 input JSON`, compared on the compiled plan and regorus'
//!   interpreter ([`policy_plan`]; its seeds are the shipped policies, without comment lines,
//!   each with a few gate inputs).

use std::sync::OnceLock;

use attestgate_policy::{Decision, Gate, Reason, Request, Verdict};
use attestgate_testkit::SigningKey;
use serde_json::Value;

/// The clock of every decision; the corpus tokens are minted for it.
pub const NOW: i64 = 1_700_000_000;

/// What the targets share, built once.
pub struct Fixture {
    /// The corpus gates, in materialized order, with their names.
    pub gates: Vec<(String, Gate)>,
    /// The HS256 test key (`kid` `hs`) that `adversarial/all_keys` trusts.
    pub hs256: SigningKey,
    /// A token the `adversarial/all_keys` gate allows.
    pub good_token: String,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

fn build() -> Result<Fixture, String> {
    let corpus =
        attestgate_corpus::load(&attestgate_corpus::cases_dir()).map_err(|e| e.to_string())?;
    let materialized = corpus.materialize(NOW).map_err(|e| e.to_string())?;
    let mut gates = Vec::new();
    for gate in &materialized.gates {
        let loaded = Gate::from_json(&gate.config.to_string()).map_err(|e| e.to_string())?;
        gates.push((gate.name.clone(), loaded));
    }
    let jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(attestgate_corpus::keys_dir().join("hs256.json"))
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let hs256 = SigningKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let claims = serde_json::json!({ "exp": NOW + 300 });
    let good_token = hs256
        .sign(claims.as_object().ok_or("claims")?)
        .map_err(|e| e.to_string())?;
    Ok(Fixture {
        gates,
        hs256,
        good_token,
    })
}

/// The fixture; a broken corpus aborts the fuzzer at once rather than fuzzing nothing.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| match build() {
        Ok(fixture) => fixture,
        Err(err) => {
            eprintln!("attestgate-fuzz: cannot build the fixture: {err}");
            std::process::abort();
        }
    })
}

fn gate_named(name: &str) -> &'static Gate {
    let fixture = fixture();
    match fixture.gates.iter().find(|(n, _)| n == name) {
        Some((_, gate)) => gate,
        None => {
            eprintln!("attestgate-fuzz: no gate {name}");
            std::process::abort()
        }
    }
}

/// A broken invariant: a crash libFuzzer records, with the input.
fn violated(what: &str, decision: &Decision) -> ! {
    eprintln!("invariant violated: {what}\n{decision:?}");
    std::process::abort()
}

/// Invariants every decision keeps, whatever the input.
pub fn check_decision(decision: &Decision) {
    if decision.allow && decision.status != 200 {
        violated("allowed with a status other than 200", decision);
    }
    if !decision.allow && !(400..=599).contains(&decision.status) {
        violated("denied without an error status", decision);
    }
    let verdict_allows = matches!(decision.reason, Reason::Allowed | Reason::Bypassed);
    if verdict_allows != (decision.verdict == Verdict::Allow) {
        violated("verdict and reason disagree", decision);
    }
    if decision.reason == Reason::InternalError {
        violated("the core produced internal_error", decision);
    }
    if decision.claims.is_some()
        && matches!(
            decision.reason,
            Reason::TokenMissing
                | Reason::TokenMalformed
                | Reason::AlgNotAllowed
                | Reason::KeyNotFound
                | Reason::SignatureInvalid
        )
    {
        violated("claims exposed for a token that did not verify", decision);
    }
}

/// The `token` target.
pub fn token(data: &[u8]) {
    let fixture = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (token, signed_parts) = match mode % 3 {
        0 => (String::from_utf8_lossy(rest).into_owned(), None),
        1 => {
            let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let (header, claims) = rest.split_at(split);
            let claims = claims.get(1..).unwrap_or_default();
            (
                fixture.hs256.sign_parts(header, claims),
                Some((header.to_vec(), claims.to_vec())),
            )
        }
        _ => {
            let header = br#"{"alg":"HS256","kid":"hs"}"#;
            (
                fixture.hs256.sign_parts(header, rest),
                Some((header.to_vec(), rest.to_vec())),
            )
        }
    };
    let gate = gate_named("adversarial/all_keys");
    let request = Request::new("GET", "/")
        .with_host("api.example.com")
        .with_header("approov-token", token.as_str());
    let decision = gate.check(&request, NOW);
    check_decision(&decision);
    if !decision.allow {
        return;
    }
    // Allowed: what was signed must be what a strict reader accepts.
    if let Some((header, claims)) = signed_parts {
        let header: Value = serde_json::from_slice(&header)
            .unwrap_or_else(|_| violated("allowed with a header serde_json refuses", &decision));
        if header.get("alg").and_then(Value::as_str) != Some("HS256")
            || header.get("crit").is_some()
            || header.get("b64").is_some_and(|b| b != &Value::Bool(true))
        {
            violated("allowed with an unacceptable header", &decision);
        }
        let claims: Value = serde_json::from_slice(&claims)
            .unwrap_or_else(|_| violated("allowed with claims serde_json refuses", &decision));
        let exp = claims.get("exp").and_then(Value::as_f64);
        if !exp.is_some_and(|exp| exp >= (NOW - 60) as f64) {
            violated("allowed without a current exp", &decision);
        }
    }
}

/// The `config` target.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(gate) = Gate::from_json(text) else {
        return;
    };
    // A config that loads must decide without panicking.
    let fixture = fixture();
    for request in [
        Request::new("GET", "/"),
        Request::new("POST", "/login").with_header("approov-token", fixture.good_token.as_str()),
    ] {
        check_decision(&gate.check(&request, NOW));
    }
}

/// Parses the `check` target's request text into proxy-wasm style headers.
pub fn request_headers(text: &str) -> Vec<(String, String)> {
    let mut lines = text.split('\n');
    let first = lines.next().unwrap_or_default();
    let (method, path) = first.split_once(' ').unwrap_or((first, "/"));
    let mut headers = vec![
        (":method".to_owned(), method.to_owned()),
        (":path".to_owned(), path.to_owned()),
    ];
    for line in lines {
        let (name, value) = match line.strip_prefix(':') {
            Some(rest) => match rest.split_once(':') {
                Some((name, value)) => (format!(":{name}"), value),
                None => continue,
            },
            None => match line.split_once(':') {
                Some((name, value)) => (name.to_owned(), value),
                None => continue,
            },
        };
        headers.push((name.to_ascii_lowercase(), value.trim_start().to_owned()));
    }
    headers
}

thread_local! {
    /// One decision cache per corpus gate, kept across inputs so that hits come from what
    /// earlier inputs left: a cached answer must always be the uncached one.
    static CACHES: std::cell::RefCell<Vec<attestgate_policy::DecisionCache>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// The `check` target: the filter's whole plan for a request, on a corpus gate, uncached and
/// through that gate's decision cache.
pub fn check(data: &[u8]) {
    let fixture = fixture();
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Some((_, gate)) = fixture
        .gates
        .get(usize::from(which) % fixture.gates.len().max(1))
    else {
        return;
    };
    let headers = request_headers(&String::from_utf8_lossy(rest));
    let (decision, action) = attestgate_filter::plan::plan(
        gate,
        headers.clone(),
        Some(b"203.0.113.7:5100"),
        NOW,
        &mut attestgate_policy::remote::Dynamic::default(),
    );
    check_decision(&decision);
    let index = usize::from(which) % fixture.gates.len().max(1);
    CACHES.with(|caches| {
        let mut caches = caches.borrow_mut();
        while caches.len() < fixture.gates.len() {
            caches.push(attestgate_policy::DecisionCache::new(64));
        }
        if let Some(cache) = caches.get_mut(index) {
            let (cached, cached_action, _) = attestgate_filter::plan::plan_cached(
                gate,
                Some(cache),
                headers,
                Some(b"203.0.113.7:5100"),
                NOW,
                &mut attestgate_policy::remote::Dynamic::default(),
            );
            if *cached != decision || cached_action != action {
                violated("the decision cache answers differently", &cached);
            }
        }
    });
    let token_header = gate.config().token.header.to_ascii_lowercase();
    match action {
        attestgate_filter::plan::Action::Respond { status, .. } => {
            if decision.allow || status != u32::from(decision.status) {
                violated("a reply that does not match the decision", &decision);
            }
        }
        attestgate_filter::plan::Action::Continue { remove, set } => {
            if !decision.allow {
                violated("a denial that goes upstream", &decision);
            }
            if !gate.config().forward && !remove.contains(&token_header) {
                violated("the token goes upstream", &decision);
            }
            for (name, value) in &set {
                if name == &token_header {
                    violated("the gate sets the token header", &decision);
                }
                if value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                    violated("a control character in an upstream header", &decision);
                }
            }
        }
    }
}

/// What the `signature`, `route` and `policy_input` targets decide with
/// (`attestgate_corpus::fuzzing` holds their configs and input formats, shared with the seeds).
pub struct Extra {
    /// Requires install or account request signatures covering method, target and body.
    pub signature_gate: Gate,
    /// The token every `signature` request carries.
    pub signature_token: String,
    /// Route rules: bypass, monitor, string prefix, method-limited.
    pub route_gate: Gate,
    /// A policy that allows exactly when its input is as documented.
    pub policy_gate: Gate,
    /// Signs the `policy_input` target's claims (the policy gate's key).
    pub policy_key: SigningKey,
}

impl std::fmt::Debug for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extra").finish_non_exhaustive()
    }
}

fn build_extra() -> Result<Extra, String> {
    use attestgate_corpus::fuzzing;
    let gate = |config: String| Gate::from_json(&config).map_err(|e| e.to_string());
    Ok(Extra {
        signature_gate: gate(fuzzing::signature_gate_config())?,
        signature_token: fuzzing::signature_token(NOW)?,
        route_gate: gate(fuzzing::route_gate_config())?,
        policy_gate: gate(fuzzing::policy_gate_config())?,
        policy_key: SigningKey::hs256_from_base64_secret(fuzzing::TOKEN_SECRET)
            .map_err(|e| e.to_string())?,
    })
}

/// The extra gates, built once.
pub fn extra() -> &'static Extra {
    static EXTRA: OnceLock<Extra> = OnceLock::new();
    EXTRA.get_or_init(|| match build_extra() {
        Ok(extra) => extra,
        Err(err) => {
            eprintln!("attestgate-fuzz: cannot build the extra gates: {err}");
            std::process::abort();
        }
    })
}

/// The `signature` target: request-signature parsing (`Signature-Input`, `Signature`,
/// `Content-Digest`) and verification. A request the gate allows was signed as it is: the same
/// request with its body, path or method changed must be refused.
pub fn signature(data: &[u8]) {
    let extra = extra();
    let request = attestgate_corpus::fuzzing::signature_request(data, &extra.signature_token);
    // The digest parser alone, on whatever the input holds.
    if let Some(digest) = request.header_values("content-digest").next() {
        let _ = attestgate_policy::signature::check_content_digest(
            digest,
            request.body.as_deref().unwrap_or_default(),
        );
    }
    let decision = extra.signature_gate.check(&request, NOW);
    check_decision(&decision);
    if !decision.allow {
        return;
    }
    let mut tampered = Vec::new();
    let mut body = request.body.clone().unwrap_or_default();
    body.push(b'x');
    tampered.push(("body", {
        let mut r = request.clone();
        r.body = Some(body);
        r
    }));
    tampered.push(("path", {
        let mut r = request.clone();
        r.path = format!("{}x", r.path);
        r
    }));
    tampered.push(("method", {
        let mut r = request.clone();
        r.method = if r.method == "POST" {
            "PUT".into()
        } else {
            "POST".into()
        };
        r
    }));
    for (what, changed) in tampered {
        let again = extra.signature_gate.check(&changed, NOW);
        if again.allow {
            violated(
                &format!("a signed request with its {what} changed is allowed"),
                &again,
            );
        }
    }
}

/// The rule an independent reading of `path` falls under: first match wins, as the gate
/// documents it (exact `path`; `path_prefix` on segment boundaries unless `string`; methods).
fn oracle_rule(gate: &Gate, method: &str, path: &str) -> Option<String> {
    for (index, rule) in gate.config().rules.iter().enumerate() {
        if !rule.methods.is_empty() && !rule.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
        {
            continue;
        }
        let hit = match (&rule.path, &rule.path_prefix) {
            (Some(exact), _) => path == exact,
            (None, Some(prefix)) => match path.strip_prefix(prefix.as_str()) {
                None => false,
                Some(rest) => {
                    rule.prefix_match == attestgate_policy::PrefixMatch::String
                        || rest.is_empty()
                        || rest.starts_with('/')
                        || prefix.ends_with('/')
                }
            },
            (None, None) => true,
        };
        if hit {
            return Some(
                rule.name
                    .clone()
                    .unwrap_or_else(|| format!("rules[{index}]")),
            );
        }
    }
    None
}

/// Whether the path (before `?` or `#`) holds a control byte raw or after one or two rounds
/// of `%XX` decoding: the oracle for `path_invalid`, written apart from the core's.
fn oracle_has_control(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if path.chars().any(char::is_control) {
        return true;
    }
    let decode = |text: &[u8]| -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some((&first, tail)) = rest.split_first() {
            let digit = |at: usize| tail.get(at).and_then(|&d| char::from(d).to_digit(16));
            match digit(0).zip(digit(1)) {
                Some((high, low)) if first == b'%' => {
                    out.push(u8::try_from(high * 16 + low).unwrap_or_default());
                    rest = tail.get(2..).unwrap_or_default();
                }
                _ => {
                    out.push(first);
                    rest = tail;
                }
            }
        }
        out
    };
    let once = decode(path.as_bytes());
    let twice = decode(&once);
    [once, twice]
        .iter()
        .any(|bytes| bytes.iter().any(|&b| b < 0x20 || b == 0x7f))
}

/// The `route` target: `METHOD PATH` on hostile paths, without a token. Every reading of the
/// path an upstream might take ([`Request::path_readings`]) falls under one rule, and the
/// decision is that rule's; readings under different rules are refused as `path_ambiguous`.
/// Without a token, only a bypass or monitor rule lets a request through.
pub fn route(data: &[u8]) {
    let gate = &extra().route_gate;
    let text = String::from_utf8_lossy(data);
    let (method, path) = text.split_once(' ').unwrap_or(("GET", &text));
    if path.is_empty() || !path.starts_with('/') {
        return;
    }
    let request = Request::new(method, path).with_host("api.example.com");
    let decision = gate.check(&request, NOW);
    check_decision(&decision);
    // A control character, raw or behind one or two percent-decodings, is refused first.
    let invalid = oracle_has_control(path);
    if decision.reason == Reason::PathInvalid || invalid {
        if !(invalid && decision.reason == Reason::PathInvalid) {
            violated(
                "path_invalid exactly when the path holds a control character",
                &decision,
            );
        }
        return;
    }
    let readings = request.path_readings();
    let rules: std::collections::BTreeSet<Option<String>> = readings
        .iter()
        .map(|reading| oracle_rule(gate, method, reading))
        .collect();
    if decision.reason == Reason::PathAmbiguous {
        if rules.len() < 2 {
            violated(
                "path_ambiguous, yet every reading falls under one rule",
                &decision,
            );
        }
        return;
    }
    if rules.len() > 1 {
        violated(
            "readings under different rules, and not refused as ambiguous",
            &decision,
        );
    }
    if let Some(expected) = rules.into_iter().next() {
        if decision.rule != expected {
            violated(
                "the decision's rule is not the one every reading falls under",
                &decision,
            );
        }
    }
    if decision.allow
        && !matches!(
            decision.mode,
            attestgate_policy::Mode::Bypass | attestgate_policy::Mode::Monitor
        )
    {
        violated(
            "a request without a token allowed outside bypass and monitor",
            &decision,
        );
    }
}

/// The `policy_input` target: `claims JSON \0 header lines`. The claims are signed as they
/// are (HS256), so they reach the policy whenever the strict reader takes them. The input
/// document must hold exactly the verified claims and the request's headers (lower-case,
/// repeated ones joined, the token left out); the policy then always allows, and `explain`
/// decides as `check` does.
pub fn policy_input(data: &[u8]) {
    let extra = extra();
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (claims, rest) = data.split_at(split);
    let token = extra
        .policy_key
        .sign_parts(br#"{"alg":"HS256","typ":"JWT"}"#, claims);
    let mut request = Request::new("GET", "/v1/shapes")
        .with_host("api.example.com")
        .with_header("approov-token", token.as_str());
    let lines = String::from_utf8_lossy(rest.get(1..).unwrap_or_default()).into_owned();
    for line in lines.split('\n') {
        if let Some((name, value)) = line.split_once(':') {
            request = request.with_header(name.trim(), value.trim());
        }
    }
    let gate = &extra.policy_gate;
    let decision = gate.check(&request, NOW);
    check_decision(&decision);
    let explanation = gate.explain(&request, NOW);
    if explanation.decision != decision {
        violated(
            "explain decides otherwise than check",
            &explanation.decision,
        );
    }
    if decision.reason == Reason::PolicyDenied || decision.reason == Reason::PolicyError {
        violated("the policy saw an input not as documented", &decision);
    }
    let Some(input) = explanation.policy_input else {
        return;
    };
    let mut signed: Value = match serde_json::from_slice(claims) {
        Ok(value) => value,
        Err(_) => violated("the policy ran on claims serde_json refuses", &decision),
    };
    // As documented (docs/configuration.md): `exp`, `nbf` and `iat` reach the policy as whole
    // seconds, the time the gate checked: the signed number without its fraction.
    if let (Some(signed), Some(seen)) = (
        signed.as_object_mut(),
        input.pointer("/token/claims").and_then(Value::as_object),
    ) {
        for name in ["exp", "nbf", "iat"] {
            if let Some(at) = signed.get(name).and_then(Value::as_f64) {
                let whole = seen.get(name).and_then(Value::as_f64);
                if whole != Some(at.floor()) && whole != Some(at.trunc()) {
                    violated(
                        &format!("the policy input's `{name}` is not the signed one's seconds"),
                        &decision,
                    );
                }
                if let Some(whole) = seen.get(name) {
                    signed.insert(name.to_owned(), whole.clone());
                }
            }
        }
    }
    if !input
        .pointer("/token/claims")
        .is_some_and(|claims| same_json(claims, &signed))
    {
        violated(
            "the policy input's claims are not the signed ones",
            &decision,
        );
    }
    let mut expected = serde_json::Map::new();
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("approov-token") {
            continue;
        }
        let name = name.to_ascii_lowercase();
        match expected.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(value);
            }
            _ => {
                expected.insert(name, Value::String(value.clone()));
            }
        }
    }
    if input.pointer("/request/headers") != Some(&Value::Object(expected)) {
        violated(
            "the policy input's headers are not the request's",
            &decision,
        );
    }
}

/// JSON equality with numbers compared by value: `1e2` and `100` are one number to Rego, and
/// the strict reader may keep either form.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The `policy_plan` target's bound on the policy text: a longer one is skipped. The shipped
/// policies without their comment lines are 0.5–4.2 KB (the seeds drop those lines).
pub const POLICY_PLAN_MAX_POLICY: usize = 8 * 1024;
/// The `policy_plan` target's bound on the input JSON: a longer one is skipped.
pub const POLICY_PLAN_MAX_INPUT: usize = 4 * 1024;

/// The `data` of every `policy_plan` policy, fixed: the settings of each shipped policy under
/// its own key, as the examples configure them (`envoy-examples/*/attestgate.yaml`, the
/// policies' header comments), so the rules that read settings see set ones.
pub const POLICY_PLAN_DATA: &str = r#"{
  "device_trust": {
    "allowed_app_ids": ["com.example.shapes", "ABCDE12345.com.example.shapes"],
    "min_app_version": "2.0.0",
    "min_os_version": {"android": "11", "ios": "15.0"},
    "denied_hooks": ["frida", "xposed"],
    "max_risk_score": 70
  },
  "android_integrity": {
    "required_integrity": "MEETS_DEVICE_INTEGRITY",
    "allowed_signers": ["5F2C3A1B9D8E7F60A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718"],
    "allowed_installers": ["com.android.vending"],
    "min_patch_level": "2024-01-01"
  },
  "ios_app_attest": {
    "allowed_app_ids": ["ABCDE12345.com.example.shapes"],
    "min_os_version": "15.0",
    "allow_development": false
  },
  "step_up": {"step_up_from": 30, "deny_above": 70, "step_up_methods": ["POST", "delete"]},
  "payments": {"risk_score_limit": 20, "max_token_age": 120, "max_clock_skew": 60},
  "app_check": {
    "allowed_app_ids": ["1:123456789012:android:abc123", "1:123456789012:ios:def456"]
  }
}"#;

/// Words that begin a line of a module without being a rule's name.
const REGO_KEYWORDS: &[&str] = &[
    "package", "import", "default", "not", "some", "every", "else", "with", "as", "in", "if",
    "contains", "true", "false", "null",
];

/// The entrypoint the `policy_plan` target compares, found lexically, line by line: the
/// package is the word after the first `package` at the start of a line (`package a.b` →
/// `data.a.b`); the rule is `decision` when a line starts with `decision` or
/// `default decision` (then a character that cannot continue a name), else the first name
/// that starts a line (after an optional `default `) and is neither a keyword nor followed by
/// `(` (a function): `login_decision := …` → `data.<package>.login_decision`. `None`
/// without a package or a rule. Whatever this picks that is not a rule, regorus refuses to
/// compile, and the target skips the input.
pub fn policy_plan_entrypoint(text: &str) -> Option<String> {
    let mut package: Option<&str> = None;
    let mut first_rule: Option<&str> = None;
    for line in text.lines() {
        if package.is_none() {
            if let Some(rest) = line.strip_prefix("package") {
                if rest.starts_with([' ', '\t']) {
                    package = rest
                        .split('#')
                        .next()
                        .and_then(|p| p.split_whitespace().next());
                }
                continue;
            }
        }
        let head = line
            .strip_prefix("default")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(line, str::trim_start);
        let length = head
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let (name, after) = head.split_at(length);
        if name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit())
            || REGO_KEYWORDS.contains(&name)
            || after.trim_start().starts_with('(')
        {
            continue;
        }
        if package.is_none() {
            continue;
        }
        if name == "decision" {
            first_rule = Some(name);
            break;
        }
        first_rule.get_or_insert(name);
    }
    Some(format!("data.{}.{}", package?, first_rule?))
}

/// A difference between the plan and the interpreter: a crash libFuzzer records.
fn plan_differs(
    entrypoint: &str,
    policy: &str,
    input: &Value,
    plan: &Result<Option<Value>, String>,
    interpreted: &Result<Option<Value>, String>,
) -> ! {
    eprintln!(
        "invariant violated: the plan and the interpreter differ at {entrypoint}\n\
         plan:        {plan:?}\ninterpreter: {interpreted:?}\ninput: {input}\n\
         policy:\n{policy}"
    );
    std::process::abort()
}

/// The `policy_plan` target: `Rego module \0 input JSON`, split at the first 0 byte.
///
/// - Before it: the text of one Rego module (lossily UTF-8, at most
///   [`POLICY_PLAN_MAX_POLICY`] bytes), compiled alone, with [`POLICY_PLAN_DATA`] as `data`,
///   at the entrypoint [`policy_plan_entrypoint`] finds.
/// - After it: the input document (at most [`POLICY_PLAN_MAX_INPUT`] bytes); when it is not a
///   JSON object (not JSON, another type, or absent), the input is `{}`.
///
/// An input over a bound, a module regorus refuses (`Policy::compile` fails) and a module the
/// plan does not cover (`Policy::interpreted_because` names why) are skipped. For the rest,
/// the compiled plan must decide exactly as regorus' interpreter: the same document (or both
/// undefined), or an error on both sides (the messages may differ), as
/// `policy-engine/tests/plan_differential.rs` compares them.
pub fn policy_plan(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (policy, rest) = data.split_at(split);
    let input = rest.get(1..).unwrap_or_default();
    if policy.len() > POLICY_PLAN_MAX_POLICY || input.len() > POLICY_PLAN_MAX_INPUT {
        return;
    }
    let text = String::from_utf8_lossy(policy).into_owned();
    let Some(entrypoint) = policy_plan_entrypoint(&text) else {
        return;
    };
    let input = match serde_json::from_slice::<Value>(input) {
        Ok(object @ Value::Object(_)) => object,
        _ => Value::Object(serde_json::Map::new()),
    };
    let config = attestgate_policy::PolicyConfig {
        modules: std::collections::BTreeMap::from([("policy.rego".to_owned(), text)]),
        module_files: Vec::new(),
        entrypoint,
        data: policy_plan_data().clone(),
    };
    let Ok(compiled) = attestgate_policy::Policy::compile(&config, []) else {
        return;
    };
    let entrypoint = config.entrypoint.as_str();
    if compiled.interpreted_because(entrypoint).is_some() {
        return;
    }
    use attestgate_policy::PolicyEngine;
    let plan = compiled.evaluate_document(PolicyEngine::Plan, entrypoint, input.clone());
    let interpreted =
        compiled.evaluate_document(PolicyEngine::Interpreter, entrypoint, input.clone());
    let same = match (&plan, &interpreted) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if !same {
        let text = config.modules.values().next().map_or("", String::as_str);
        plan_differs(entrypoint, text, &input, &plan, &interpreted);
    }
}

/// [`POLICY_PLAN_DATA`], parsed once.
fn policy_plan_data() -> &'static Value {
    static DATA: OnceLock<Value> = OnceLock::new();
    DATA.get_or_init(|| match serde_json::from_str(POLICY_PLAN_DATA) {
        Ok(data) => data,
        Err(err) => {
            eprintln!("attestgate-fuzz: POLICY_PLAN_DATA: {err}");
            std::process::abort();
        }
    })
}
