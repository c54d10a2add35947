//! What a host does with a decision: the host-neutral half of every gateway integration.
//!
//! A host gathers the request facts ([`request_facts`] from `:method`/`:path`/`:authority`
//! style headers, or a [`Request`] it fills itself), decides them ([`plan_request`], through
//! its per-worker [`DecisionCache`] when it has one) and carries out the [`Action`]: go on
//! upstream after removing and setting headers, or answer locally with a JSON body. The
//! proxy-wasm filter (Envoy, Kong) and the native library (NGINX/OpenResty) both use this one
//! module, so every host strips and sets the same headers and sends the same denials.

use std::rc::Rc;

use crate::cache::{CacheOutcome, DecisionCache};
use crate::config::Mode;
use crate::decision::{Decision, Reason, Verdict};
use crate::gate::Gate;
use crate::remote::Dynamic;
use crate::request::Request;

pub use crate::decision_log::decision_log_line;

/// Header set on the upstream request when monitor mode let a failing request through.
///
/// ```
/// assert_eq!(attestgate_policy::plan::DECISION_HEADER, "x-attestgate-decision");
/// ```
pub const DECISION_HEADER: &str = "x-attestgate-decision";

/// Header naming the reason, on denials and on monitored requests.
///
/// ```
/// assert_eq!(attestgate_policy::plan::REASON_HEADER, "x-attestgate-reason");
/// ```
pub const REASON_HEADER: &str = "x-attestgate-reason";

/// What the host must do.
///
/// ```
/// use attestgate_policy::plan::{action_for, Action};
/// use attestgate_policy::{Gate, Request};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let request = Request::new("GET", "/");
/// let decision = gate.check(&request, 1_700_000_000);
/// let Action::Respond { status, body, .. } = action_for(&gate, &decision, &request) else {
///     panic!()
/// };
/// assert_eq!(status, 401);
/// assert!(body.starts_with(r#"{"error":"token_missing","reasons":["#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Let the request go upstream after removing and then setting these headers.
    Continue {
        /// Header names to remove (lower case).
        remove: Vec<String>,
        /// Headers to set, replacing any value.
        set: Vec<(String, String)>,
    },
    /// Answer locally; nothing goes upstream.
    Respond {
        /// HTTP status.
        status: u32,
        /// Reply headers.
        headers: Vec<(String, String)>,
        /// JSON body.
        body: String,
    },
}

/// Decides request facts, through the worker's decision cache when there is one, and plans
/// the action; also says whether the cache answered.
///
/// ```
/// use attestgate_policy::plan::{plan_request, Action};
/// use attestgate_policy::remote::Dynamic;
/// use attestgate_policy::{CacheOutcome, DecisionCache, Gate, Request};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let mut cache = DecisionCache::new(16);
/// let request = Request::new("GET", "/");
/// let (decision, action, outcome) =
///     plan_request(&gate, Some(&mut cache), &request, 1_700_000_000, &mut Dynamic::default());
/// assert!(!decision.allow && matches!(action, Action::Respond { status: 401, .. }));
/// assert_eq!(outcome, CacheOutcome::Uncached); // no token: nothing to verify or remember
/// ```
pub fn plan_request(
    gate: &Gate,
    cache: Option<&mut DecisionCache>,
    request: &Request,
    now: i64,
    dynamic: &mut Dynamic<'_>,
) -> (Rc<Decision>, Action, CacheOutcome) {
    let (decision, outcome) = match cache {
        Some(cache) => cache.check_shared(gate, request, now, dynamic),
        None => (
            Rc::new(gate.check_with(request, now, dynamic)),
            CacheOutcome::Uncached,
        ),
    };
    let action = action_for(gate, &decision, request);
    (decision, action, outcome)
}

/// Builds the core's view of a request from proxy-wasm style headers (`:method`, `:path`,
/// `:authority` and the rest; other pseudo-headers are dropped) and the client address (with
/// or without a port). A `Host` header, when there is one, is the host: ngx_wasm_module's
/// `:authority` is its own server name and port.
///
/// ```
/// use attestgate_policy::plan::request_facts;
/// let headers = vec![(":method".to_owned(), "GET".to_owned()), (":path".to_owned(), "/a?b".to_owned()),
///                    (":authority".to_owned(), "api.example.com".to_owned())];
/// let request = request_facts(headers, Some(b"[2001:db8::1]:443"));
/// assert_eq!((request.method.as_str(), request.path.as_str(), request.host.as_str()),
///            ("GET", "/a?b", "api.example.com"));
/// assert_eq!(request.source_ip.as_deref(), Some("2001:db8::1"));
/// ```
pub fn request_facts(headers: Vec<(String, String)>, source_address: Option<&[u8]>) -> Request {
    let mut request = Request::default();
    let mut host_header = None;
    for (name, value) in headers {
        match name.as_str() {
            ":method" => request.method = value,
            ":path" => request.path = value,
            ":authority" => request.host = value,
            pseudo if pseudo.starts_with(':') => {}
            _ => {
                if host_header.is_none() && name.eq_ignore_ascii_case("host") {
                    host_header = Some(value.clone());
                }
                request.headers.push((name, value));
            }
        }
    }
    if let Some(host) = host_header {
        request.host = host;
    }
    request.source_ip = source_address
        .and_then(|raw| std::str::from_utf8(raw).ok())
        .map(strip_port);
    request
}

/// `203.0.113.7:5100` → `203.0.113.7`, `[2001:db8::1]:443` → `2001:db8::1`.
fn strip_port(address: &str) -> String {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host.to_owned()
        }
        _ => address.to_owned(),
    }
}

/// The action for a decision: a denial becomes a JSON reply with the reason header; an
/// allowed request loses the token header (unless `forward`) and every client-sent copy of
/// the gate's own headers (the `claim_to_headers` targets, [`DECISION_HEADER`],
/// [`REASON_HEADER`], the policy's headers), then gets the verified claim and policy headers;
/// monitor mode adds the decision and reason headers to a denial it lets through.
///
/// A copy is any header of `request` whose name an upstream may read as the gate's: in any
/// case, and with `_` (or any other byte that is not a letter or digit) for `-`
/// ([`same_header_when_folded`]). CGI, WSGI, Rack and PHP hand both `X-Device-Id` and
/// `X_Device_Id` to the application as `HTTP_X_DEVICE_ID`, and NGINX's `$http_x_device_id`
/// reads either, so the client's `x_device_id` must go as surely as its `x-device-id`.
///
/// ```
/// use attestgate_policy::plan::{action_for, Action};
/// use attestgate_policy::{Gate, Request};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="},
///                               "mode":"monitor"}"#).unwrap();
/// let request = Request::new("GET", "/").with_header("X_Attestgate_Decision", "allow");
/// let decision = gate.check(&request, 1_700_000_000);
/// let Action::Continue { remove, set } = action_for(&gate, &decision, &request) else { panic!() };
/// assert!(remove.contains(&"approov-token".to_owned()));
/// assert!(remove.contains(&"x_attestgate_decision".to_owned()));
/// assert!(set.contains(&("x-attestgate-reason".to_owned(), "token_missing".to_owned())));
/// ```
pub fn action_for(gate: &Gate, decision: &Decision, request: &Request) -> Action {
    let config = gate.config();
    if !decision.allow {
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                REASON_HEADER.to_owned(),
                decision.reason.as_str().to_owned(),
            ),
        ];
        headers.extend(decision.headers.clone());
        return Action::Respond {
            status: u32::from(decision.status),
            headers,
            body: decision.error_body(),
        };
    }
    let token_header = config.token.header.as_str();
    // Headers the gate vouches for are never taken from the client.
    let mut remove: Vec<String> = config
        .claim_to_headers
        .iter()
        .map(|mapping| mapping.header.to_ascii_lowercase())
        .chain([DECISION_HEADER.to_owned(), REASON_HEADER.to_owned()])
        .collect();
    if !config.forward {
        remove.push(token_header.to_ascii_lowercase());
    }
    let mut set: Vec<(String, String)> = decision.headers.clone().into_iter().collect();
    if decision.mode == Mode::Monitor && decision.verdict == Verdict::Deny {
        set.push((DECISION_HEADER.to_owned(), "deny".to_owned()));
        set.push((
            REASON_HEADER.to_owned(),
            decision.reason.as_str().to_owned(),
        ));
    }
    let owned: Vec<&str> = remove
        .iter()
        .map(String::as_str)
        .chain(set.iter().map(|(name, _)| name.as_str()))
        .chain([token_header])
        .collect();
    let mut spellings: Vec<String> = Vec::new();
    for (name, _) in &request.headers {
        // A host removes a header by name in any case: only other spellings need naming.
        let listed = |list: &[String]| list.iter().any(|n| n.eq_ignore_ascii_case(name));
        let set_here = set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if set_here || listed(&remove) || listed(&spellings) {
            continue;
        }
        // With `forward`, the token header itself goes on; its other spellings do not.
        if config.forward && name.eq_ignore_ascii_case(token_header) {
            continue;
        }
        if owned
            .iter()
            .any(|gate_name| same_header_when_folded(name, gate_name))
        {
            spellings.push(name.to_ascii_lowercase());
        }
    }
    remove.extend(spellings);
    Action::Continue { remove, set }
}

/// Whether an upstream may read two header names as one: ASCII letters compared without
/// case, digits as they are, and every other byte (`-`, `_`, `.`, …) alike, as CGI-style
/// environments map them all to `_`.
///
/// ```
/// use attestgate_policy::plan::same_header_when_folded;
/// assert!(same_header_when_folded("X_Device_Id", "x-device-id"));
/// assert!(same_header_when_folded("approov.token", "Approov-Token"));
/// assert!(!same_header_when_folded("x-device-ids", "x-device-id"));
/// assert!(!same_header_when_folded("x-device-1d", "x-device-id"));
/// ```
pub fn same_header_when_folded(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            if x.is_ascii_alphanumeric() || y.is_ascii_alphanumeric() {
                x.eq_ignore_ascii_case(&y)
            } else {
                true
            }
        })
}

/// A refusal the host makes itself (its own failure, a config it could not load, a request
/// it cannot handle exactly): the same JSON and reason header as the gate's denials, with the
/// reason's default status.
///
/// ```
/// use attestgate_policy::plan::{host_refusal, Action};
/// use attestgate_policy::Reason;
/// let Action::Respond { status, body, .. } = host_refusal(Reason::ConfigInvalid, &[]) else {
///     panic!()
/// };
/// assert_eq!((status, body.as_str()), (500, r#"{"error":"config_invalid","reasons":[]}"#));
/// ```
pub fn host_refusal(reason: Reason, reasons: &[&str]) -> Action {
    Action::Respond {
        status: u32::from(reason.default_status()),
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (REASON_HEADER.to_owned(), reason.as_str().to_owned()),
        ],
        body: serde_json::json!({ "error": reason.as_str(), "reasons": reasons }).to_string(),
    }
}

/// Requests answered without verifying a signature (a cached decision or verified token).
///
/// ```
/// assert_eq!(attestgate_policy::plan::CACHE_HITS, "attestgate.cache.hits");
/// ```
pub const CACHE_HITS: &str = "attestgate.cache.hits";

/// Requests whose token was verified (and the result cached).
///
/// ```
/// assert_eq!(attestgate_policy::plan::CACHE_MISSES, "attestgate.cache.misses");
/// ```
pub const CACHE_MISSES: &str = "attestgate.cache.misses";

/// Failures inside a host's glue (a request refused with `internal_error`).
///
/// ```
/// assert_eq!(attestgate_policy::plan::ERRORS, "attestgate.errors");
/// ```
pub const ERRORS: &str = "attestgate.errors";

/// The counters a decision increments, by name: one for the outcome and, for a denial, one
/// naming its reason; for a policy denial also one per policy reason,
/// `attestgate.policy_reason.<reason>` (enforced) or `attestgate.monitored_policy_reason.<reason>`
/// (monitor mode), the reason as [`Gate::counted_policy_reason`] names it (a reason the policy's
/// source does not write is `other`). Every host counts these names, so a dashboard reads them
/// alike; a host creates a counter when it is first incremented.
///
/// ```
/// use attestgate_policy::plan::counters;
/// use attestgate_policy::{Gate, Request};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let decision = gate.check(&Request::new("GET", "/"), 1_700_000_000);
/// assert_eq!(counters(&gate, &decision), ["attestgate.denied", "attestgate.denied.token_missing"]);
/// ```
pub fn counters(gate: &Gate, decision: &Decision) -> Vec<String> {
    let mut names = match (decision.allow, decision.verdict, decision.reason) {
        (true, _, Reason::Bypassed) => vec!["attestgate.bypassed".to_owned()],
        (true, Verdict::Allow, _) => vec!["attestgate.allowed".to_owned()],
        (true, Verdict::Deny, reason) => vec![
            "attestgate.monitored_denied".to_owned(),
            format!("attestgate.monitored_denied.{reason}"),
        ],
        (false, _, reason) => refusal_counters(reason),
    };
    if decision.reason == Reason::PolicyDenied {
        let prefix = if decision.allow {
            "attestgate.monitored_policy_reason"
        } else {
            "attestgate.policy_reason"
        };
        // At most the record's number of reasons, each counted once.
        let mut counted: Vec<&str> = decision
            .reasons
            .iter()
            .take(crate::record::MAX_POLICY_REASONS)
            .map(|reason| gate.counted_policy_reason(reason))
            .collect();
        counted.sort_unstable();
        counted.dedup();
        names.extend(counted.into_iter().map(|name| format!("{prefix}.{name}")));
    }
    names
}

/// Every policy-reason counter `gate` can increment (see [`counters`]): a bounded set, fixed at
/// load.
///
/// ```
/// use attestgate_policy::plan::policy_reason_counter_names;
/// let gate = attestgate_policy::Gate::from_json(r#"{"keys":{"approov_secret":
///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let names = policy_reason_counter_names(&gate);
/// assert!(names.contains(&"attestgate.policy_reason.other".to_owned()));
/// assert!(names.contains(&"attestgate.monitored_policy_reason.other".to_owned()));
/// ```
pub fn policy_reason_counter_names(gate: &Gate) -> Vec<String> {
    let reasons: Vec<&str> = gate
        .policy_reason_names()
        .chain(std::iter::once("other"))
        .collect();
    [
        "attestgate.policy_reason",
        "attestgate.monitored_policy_reason",
    ]
    .iter()
    .flat_map(|prefix| reasons.iter().map(move |r| format!("{prefix}.{r}")))
    .collect()
}

/// The counters of a refusal a host makes itself ([`host_refusal`]), as [`counters`] names a
/// denial's.
///
/// ```
/// use attestgate_policy::plan::refusal_counters;
/// use attestgate_policy::Reason;
/// assert_eq!(refusal_counters(Reason::ConfigInvalid),
///            ["attestgate.denied", "attestgate.denied.config_invalid"]);
/// ```
pub fn refusal_counters(reason: Reason) -> Vec<String> {
    vec![
        "attestgate.denied".to_owned(),
        format!("attestgate.denied.{reason}"),
    ]
}

/// The cache counter a request increments, if any.
///
/// ```
/// use attestgate_policy::plan::{cache_counter, CACHE_HITS};
/// use attestgate_policy::CacheOutcome;
/// assert_eq!(cache_counter(CacheOutcome::Hit).as_deref(), Some(CACHE_HITS));
/// assert_eq!(cache_counter(CacheOutcome::Uncached), None);
/// ```
pub fn cache_counter(outcome: CacheOutcome) -> Option<String> {
    match outcome {
        CacheOutcome::Hit => Some(CACHE_HITS.to_owned()),
        CacheOutcome::Miss => Some(CACHE_MISSES.to_owned()),
        CacheOutcome::Uncached => None,
    }
}

/// Every counter name, so a host can define them all (showing 0) before the first request.
///
/// ```
/// use attestgate_policy::plan::all_counter_names;
/// let names = all_counter_names();
/// assert!(names.iter().any(|name| name == "attestgate.denied.token_expired"));
/// assert!(names.iter().any(|name| name == "attestgate.cache.hits"));
/// ```
pub fn all_counter_names() -> Vec<String> {
    let mut names = vec![
        "attestgate.allowed".to_owned(),
        "attestgate.bypassed".to_owned(),
        "attestgate.denied".to_owned(),
        "attestgate.monitored_denied".to_owned(),
        ERRORS.to_owned(),
        "attestgate.jwks.fetched".to_owned(),
        "attestgate.jwks.fetch_failed".to_owned(),
        "attestgate.denylist.fetched".to_owned(),
        "attestgate.denylist.fetch_failed".to_owned(),
        CACHE_HITS.to_owned(),
        CACHE_MISSES.to_owned(),
    ];
    for reason in Reason::ALL {
        if !matches!(reason, Reason::Allowed | Reason::Bypassed) {
            names.push(format!("attestgate.denied.{reason}"));
            names.push(format!("attestgate.monitored_denied.{reason}"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_client_addresses() {
        assert_eq!(strip_port("203.0.113.7:5100"), "203.0.113.7");
        assert_eq!(strip_port("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(strip_port("2001:db8::1"), "2001:db8::1");
        assert_eq!(strip_port("10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn a_host_header_wins_over_the_authority() {
        let headers = vec![
            (":authority".to_owned(), "localhost:8080".to_owned()),
            ("Host".to_owned(), "api.example.com".to_owned()),
            (":scheme".to_owned(), "http".to_owned()),
        ];
        let request = request_facts(headers, Some(&[0xff]));
        assert_eq!(request.host, "api.example.com");
        assert_eq!(request.headers.len(), 1);
        assert_eq!(request.source_ip, None);
    }

    /// The headers an upstream receives: the client's, less `remove` (in any case), with
    /// `set` replacing, as every host carries out an [`Action::Continue`].
    fn upstream_of(request: &Request, action: &Action) -> Vec<(String, String)> {
        let Action::Continue { remove, set } = action else {
            panic!("denied: {action:?}")
        };
        let mut headers: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(name, _)| {
                !remove.iter().any(|r| r.eq_ignore_ascii_case(name))
                    && !set.iter().any(|(s, _)| s.eq_ignore_ascii_case(name))
            })
            .cloned()
            .collect();
        headers.extend(set.iter().cloned());
        headers
    }

    /// Seven spellings of a header name, as issue #26 sent them through every host (the
    /// test kit's `upstream::spellings`, which the end-to-end tests use).
    fn spellings(name: &str) -> Vec<String> {
        let underscored = name.replace('-', "_");
        vec![
            name.to_owned(),
            name.to_ascii_uppercase(),
            name.replacen('x', "X", 1),
            underscored.clone(),
            underscored.to_ascii_uppercase(),
            underscored.replacen('a', "A", 1),
            name.replace('-', "."),
        ]
    }

    #[test]
    fn no_spelling_of_a_gate_header_reaches_the_upstream() {
        let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
        for forward in [false, true] {
            let config = format!(
                r#"{{"keys":{{"approov_secret":"{secret}"}},"mode":"monitor","forward":{forward},
                    "claim_to_headers":[{{"claim":"did","header":"x-device-id"}}]}}"#
            );
            let gate = Gate::from_json(&config).unwrap();
            let mut request = Request::new("GET", "/")
                .with_header("x-device-ids", "kept")
                .with_header("x_device", "kept")
                .with_header("x-attestgate-decisions", "kept");
            for owned in [
                "x-device-id",
                "x-attestgate-decision",
                "x-attestgate-reason",
                "approov-token",
            ] {
                for spelling in spellings(owned) {
                    request = request.with_header(spelling, "spoofed");
                }
            }
            let decision = gate.check(&request, 1_700_000_000);
            let upstream = upstream_of(&request, &action_for(&gate, &decision, &request));
            for (name, value) in &upstream {
                let forwarded_token = forward && name.eq_ignore_ascii_case("approov-token");
                if value == "spoofed" && !forwarded_token {
                    panic!("forward {forward}: the client's {name} reached the upstream");
                }
            }
            let kept = upstream.iter().filter(|(_, v)| v == "kept").count();
            assert_eq!(kept, 3, "forward {forward}: {upstream:?}");
            // The monitor headers are the gate's, once each.
            let decisions: Vec<_> = upstream
                .iter()
                .filter(|(n, _)| same_header_when_folded(n, DECISION_HEADER))
                .collect();
            assert_eq!(
                decisions,
                [&(DECISION_HEADER.to_owned(), "deny".to_owned())]
            );
        }
    }

    #[test]
    fn a_policy_header_is_the_gates_in_every_spelling() {
        let gate = Gate::from_json(
            r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="},"mode":"monitor"}"#,
        )
        .unwrap();
        let request = Request::new("GET", "/")
            .with_header("X_Risk", "low")
            .with_header("x-risk", "low");
        let mut decision = gate.check(&request, 1_700_000_000);
        decision
            .headers
            .insert("x-risk".to_owned(), "high".to_owned());
        let upstream = upstream_of(&request, &action_for(&gate, &decision, &request));
        let risk: Vec<_> = upstream
            .iter()
            .filter(|(n, _)| same_header_when_folded(n, "x-risk"))
            .collect();
        assert_eq!(risk, [&("x-risk".to_owned(), "high".to_owned())]);
    }

    #[test]
    fn folding_takes_case_and_separators_only() {
        assert!(same_header_when_folded("APPROOV_TOKEN", "approov-token"));
        assert!(same_header_when_folded("a~b", "a-b"));
        assert!(!same_header_when_folded("approov-tokens", "approov-token"));
        assert!(!same_header_when_folded("approov-token", "approov-tokem"));
        assert!(!same_header_when_folded("x-1", "x-2"));
        assert!(!same_header_when_folded("x-a", "x1a"));
    }

    /// A policy denial counts each reason once, by name when the source writes it, as `other`
    /// when it is made from data; enforced and monitored apart.
    #[test]
    fn policy_reasons_are_counted_by_name_or_as_other() {
        let policy = "package attestgate\nimport rego.v1\n\
            decision := {\"allow\": false, \"reasons\": [\"device_rooted\", \"device_rooted\", \
            sprintf(\"made_%v\", [input.request.method])]}";
        let config = |mode: &str| {
            serde_json::json!({
                "mode": mode,
                "keys": {"approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="},
                "policy": {"modules": {"p.rego": policy}},
            })
            .to_string()
        };
        let claims = serde_json::json!({"exp": 1_700_000_300});
        let token = attestgate_testkit::SigningKey::hs256_from_base64_secret(
            "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=",
        )
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
        let request = Request::new("GET", "/").with_header("approov-token", token);
        for (mode, prefix) in [
            ("enforce", "attestgate.policy_reason"),
            ("monitor", "attestgate.monitored_policy_reason"),
        ] {
            let gate = Gate::from_json(&config(mode)).unwrap();
            let decision = gate.check(&request, 1_700_000_000);
            assert_eq!(decision.reason, Reason::PolicyDenied, "{decision:?}");
            let names = counters(&gate, &decision);
            let reasons: Vec<&String> = names.iter().filter(|n| n.starts_with(prefix)).collect();
            assert_eq!(
                reasons,
                [
                    &format!("{prefix}.device_rooted"),
                    &format!("{prefix}.other")
                ],
                "{names:?}"
            );
            let possible = policy_reason_counter_names(&gate);
            assert!(names
                .iter()
                .filter(|n| n.contains("policy_reason"))
                .all(|n| possible.contains(n)));
            assert!(!possible.iter().any(|n| n.contains("made_")));
        }
    }

    #[test]
    fn every_counter_a_decision_uses_is_predefined() {
        let gate = Gate::from_json(
            r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#,
        )
        .unwrap();
        let all = all_counter_names();
        let mut outcomes = vec![
            (true, Verdict::Allow, Reason::Allowed),
            (true, Verdict::Allow, Reason::Bypassed),
        ];
        for reason in Reason::ALL {
            if !matches!(reason, Reason::Allowed | Reason::Bypassed) {
                outcomes.push((false, Verdict::Deny, reason));
                outcomes.push((true, Verdict::Deny, reason));
            }
        }
        for (allow, verdict, reason) in outcomes {
            let mut d = gate.check(&Request::new("GET", "/"), 1_700_000_000);
            (d.allow, d.verdict, d.reason) = (allow, verdict, reason);
            // A policy's reason counters are defined when first counted, from a set the gate
            // fixes at load.
            let reasons = policy_reason_counter_names(&gate);
            for name in counters(&gate, &d) {
                assert!(
                    all.contains(&name) || reasons.contains(&name),
                    "{name} is neither predefined nor one of the gate's reason counters"
                );
            }
        }
    }
}
