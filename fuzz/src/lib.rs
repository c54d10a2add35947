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

use std::sync::OnceLock;

use attestgate_testkit::SigningKey;
use attestgate_policy::{Decision, Gate, Reason, Request, Verdict};
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
