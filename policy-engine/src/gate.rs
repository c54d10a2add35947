//! The gate: a loaded config, ready to decide requests.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::binding::{self, BindingOutcome};
use crate::config::{Config, Mode, RouteRule, MAX_JSON_DEPTH, MAX_TOKEN_BYTES};
use crate::decision::{Decision, Reason};
use crate::error::{ConfigError, TokenError};
use crate::input::{Parts, PolicyInput};
use crate::keys::KeySet;
use crate::policy::{Policy, PolicyOutcome};
use crate::remote::Dynamic;
use crate::request::{is_header_name, is_header_value, Request};
use crate::signature::SignatureMode;
use crate::steps::{StepId, StepStatus};
use crate::token::{self, VerifiedToken, VerifyOptions};
use crate::verifier::{HostVerifier, ProbeReport, Verifier};

/// What a view of the one decision pipeline supplies and sees: the two expensive steps, which
/// the decision cache memoizes (verifying a raw token with the given keys, evaluating the
/// policy on an input), and each step as it ends, which [`Gate::explain`] records.
pub(crate) trait Hooks {
    fn verify(&mut self, raw: &str, keys: &[&KeySet]) -> Result<VerifiedToken, TokenError>;
    fn evaluate(
        &mut self,
        policy: &Policy,
        entrypoint: &str,
        input: &mut PolicyInput<'_>,
    ) -> Result<PolicyOutcome, String>;
    /// A step ended; `detail` is only called by views that keep it.
    fn step(&mut self, _id: StepId, _status: StepStatus, _detail: &dyn Fn() -> String) {}
    /// The policy is about to evaluate this input at this entrypoint.
    fn policy_input(&mut self, _entrypoint: &str, _input: &mut PolicyInput<'_>) {}
}

/// No memo: every step done for every request. The other views build on it.
pub(crate) struct Direct<'g> {
    pub(crate) gate: &'g Gate,
    pub(crate) now: i64,
}

impl Hooks for Direct<'_> {
    fn verify(&mut self, raw: &str, keys: &[&KeySet]) -> Result<VerifiedToken, TokenError> {
        token::verify(raw, keys, &self.gate.verifier, &self.gate.verify, self.now)
    }

    fn evaluate(
        &mut self,
        policy: &Policy,
        entrypoint: &str,
        input: &mut PolicyInput<'_>,
    ) -> Result<PolicyOutcome, String> {
        policy.evaluate_borrowed(entrypoint, input.document())
    }
}

/// A loaded, validated configuration: keys parsed, policy compiled. Build it once, then call
/// [`Gate::check`] for every request; it holds no per-request state.
///
/// ```
/// use attestgate_policy::{Gate, Reason, Request};
///
/// let gate = Gate::from_json(r#"{
///     "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
///     "rules": [ { "path": "/health", "mode": "bypass" } ]
/// }"#).unwrap();
///
/// let health = gate.check(&Request::new("GET", "/health"), 1_700_000_000);
/// assert!(health.allow);
///
/// let decision = gate.check(&Request::new("GET", "/api"), 1_700_000_000);
/// assert!(!decision.allow);
/// assert_eq!((decision.status, decision.reason), (401, Reason::TokenMissing));
/// ```
#[derive(Debug)]
pub struct Gate {
    config: Config,
    keys: KeySet,
    pub(crate) verify: VerifyOptions,
    policy: Option<Policy>,
    /// Unique per loaded gate, so a [`crate::DecisionCache`] never serves another gate's answers.
    pub(crate) id: u64,
    /// The request headers a decision can depend on.
    pub(crate) headers_read: HeaderScope,
    /// [`Gate::signatures_are_costly`] and [`Gate::needs_source_ip`], derived once at load:
    /// both are asked on the request path.
    costly_signatures: bool,
    source_ip_read: bool,
    /// Whether any request can need its body ([`Gate::needs_body`]): signatures are checked
    /// somewhere. Derived once at load.
    may_need_body: bool,
    /// The policy reasons counted by name ([`Gate::counted_policy_reason`]), from the modules'
    /// literals at load.
    policy_reason_names: BTreeSet<String>,
    /// Who checks public-key signatures: built in, or the host's crypto for the schemes it
    /// passed the known answers of ([`Gate::use_host_verifier`]).
    pub(crate) verifier: Verifier,
}

/// Why a request's path cannot be routed: it holds a control character, or its readings
/// ([`Request::path_readings`]) fall under different route rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathRefusal {
    /// The readings fall under different rules.
    #[error("the path reads differently under common upstream conventions ({}) and those readings fall under different route rules", readings.join(", "))]
    Ambiguous {
        /// The distinct readings.
        readings: Vec<String>,
    },
    /// A control character, raw or percent-encoded ([`Request::path_has_control_character`]).
    #[error("the path holds a control character (raw, percent-encoded or encoded twice)")]
    Invalid,
}

impl PathRefusal {
    fn reason(&self) -> Reason {
        match self {
            PathRefusal::Ambiguous { .. } => Reason::PathAmbiguous,
            PathRefusal::Invalid => Reason::PathInvalid,
        }
    }
}

/// Which request headers a decision can depend on. The whole-decision cache keys on these
/// only, so a header no step reads (Envoy's per-request `x-request-id`) cannot defeat it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderScope {
    /// Any header may matter: a request signature covers headers, or the policy reads
    /// `input.request.headers` whole or in ways the scan cannot follow.
    All,
    /// Only these (lower-case, sorted): the token header, bound headers and the headers the
    /// policy reads by name.
    Only(Vec<String>),
}

impl HeaderScope {
    fn of(config: &Config, policy: Option<&Policy>) -> HeaderScope {
        if checks_signatures(config) {
            return HeaderScope::All;
        }
        let mut names = vec![config.token.header.to_ascii_lowercase()];
        if let Some(binding) = &config.binding {
            names.extend(binding.headers.iter().map(|h| h.to_ascii_lowercase()));
        }
        if let Some(policy) = policy {
            let Some(paths) = policy.read_paths() else {
                return HeaderScope::All;
            };
            for path in paths {
                match path.as_slice() {
                    [request] if request == "request" => return HeaderScope::All,
                    [request, headers] if request == "request" && headers == "headers" => {
                        return HeaderScope::All
                    }
                    [request, headers, name, ..]
                        if request == "request" && headers == "headers" =>
                    {
                        names.push(name.to_ascii_lowercase());
                    }
                    _ => {}
                }
            }
        }
        names.sort();
        names.dedup();
        HeaderScope::Only(names)
    }
}

/// Whether request signatures are checked anywhere: at the top level or on some rule.
fn checks_signatures(config: &Config) -> bool {
    config.signature.mode != SignatureMode::Off
        || config.rules.iter().any(|rule| {
            rule.signature
                .as_ref()
                .is_some_and(|s| s.mode != SignatureMode::Off)
        })
}

static NEXT_GATE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Gate {
    /// Parses a JSON config and loads it.
    ///
    /// ```
    /// use attestgate_policy::{ConfigError, Gate};
    /// let gate = Gate::from_json(r#"{
    ///     "token": { "header": "Authorization", "prefix": "Bearer " },
    ///     "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" }
    /// }"#).unwrap();
    /// assert_eq!(gate.config().token.prefix.as_deref(), Some("Bearer "));
    /// assert!(matches!(Gate::from_json("[]"), Err(ConfigError::Parse(_))));
    /// ```
    pub fn from_json(text: &str) -> Result<Gate, ConfigError> {
        Gate::from_config(parse(text)?)
    }

    /// [`Gate::from_json`] for a host: also refuses what `host` cannot carry out
    /// ([`crate::capability::refused`]) with [`ConfigError::Unsupported`]. Every host loads
    /// its config through this (or [`Gate::for_host`]).
    ///
    /// ```
    /// use attestgate_policy::capability::Host;
    /// use attestgate_policy::Gate;
    /// let config = r#"{ "host_verification": { "payload_in_metadata": "p" } }"#;
    /// assert!(Gate::from_json_for(config, Host::Envoy).is_ok());
    /// let error = Gate::from_json_for(config, Host::KongWasm).unwrap_err().to_string();
    /// assert!(error.contains("`host_verification`") && error.contains("Kong 3.4-3.10"), "{error}");
    /// ```
    pub fn from_json_for(text: &str, host: crate::capability::Host) -> Result<Gate, ConfigError> {
        let config: Config = parse(text)?;
        Gate::for_host(config, host)
    }

    /// [`Gate::from_config`] for a host: also refuses what `host` cannot carry out.
    ///
    /// ```
    /// use attestgate_policy::capability::Host;
    /// use attestgate_policy::{Config, ConfigError, Gate};
    /// let config: Config = serde_json::from_str(r#"{ "log_decisions": true,
    ///     "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" } }"#).unwrap();
    /// assert!(Gate::for_host(config.clone(), Host::Envoy).is_ok());
    /// assert!(matches!(Gate::for_host(config, Host::Worker), Err(ConfigError::Unsupported { .. })));
    /// ```
    pub fn for_host(config: Config, host: crate::capability::Host) -> Result<Gate, ConfigError> {
        let gate = Gate::from_config(config)?;
        refuse_unsupported(gate.config(), host)?;
        Ok(gate)
    }

    /// Validates a config, parses its keys and compiles its policy.
    ///
    /// ```
    /// use attestgate_policy::{Config, ConfigError, Gate};
    /// // The CLI reads YAML; any serde format gives a `Config`.
    /// let mut config: Config = serde_yaml::from_str("
    /// keys:
    ///   approov_secret: MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=
    /// ").unwrap();
    /// assert!(Gate::from_config(config.clone()).is_ok());
    /// config.keys.approov_secret = Some("c2hvcnQ=".to_owned()); // 5 bytes: too weak
    /// assert!(matches!(Gate::from_config(config), Err(ConfigError::Key { .. })));
    /// ```
    pub fn from_config(config: Config) -> Result<Gate, ConfigError> {
        validate(&config)?;
        let keys = match &config.host_verification {
            // The gateway holds the keys; local ones would suggest a second check that never runs.
            Some(_) if config.keys != crate::config::KeysConfig::default() => {
                return Err(ConfigError::Invalid {
                    field: "keys".into(),
                    message: "leave `keys` empty with `host_verification`: the gateway verifies \
                              signatures"
                        .into(),
                })
            }
            Some(_) => KeySet::default(),
            None => KeySet::load(&config.keys)?,
        };
        let policy = match &config.policy {
            Some(policy) => Some(Policy::compile(
                policy,
                config
                    .rules
                    .iter()
                    .filter_map(|rule| rule.entrypoint.as_deref()),
            )?),
            None => None,
        };
        let verify = VerifyOptions {
            max_bytes: config.token.max_bytes,
            max_json_depth: config.token.max_json_depth,
            issuer: config.issuer.clone(),
            audiences: config.audiences.clone(),
            leeway_seconds: i64::from(config.leeway_seconds),
            require_exp: config.require_exp,
            signature_by_host: config.host_verification.is_some(),
        };
        let headers_read = HeaderScope::of(&config, policy.as_ref());
        let policy_reason_names = crate::reason_names::reason_names(
            config
                .policy
                .iter()
                .flat_map(|p| p.modules.values().map(String::as_str)),
        );
        let mut gate = Gate {
            headers_read,
            policy_reason_names,
            costly_signatures: false,
            source_ip_read: false,
            may_need_body: false,
            config,
            keys,
            verify,
            policy,
            id: NEXT_GATE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            verifier: Verifier::default(),
        };
        gate.costly_signatures = gate.derive_costly_signatures();
        gate.source_ip_read = gate.derive_source_ip_read();
        gate.may_need_body = checks_signatures(&gate.config);
        Ok(gate)
    }

    /// The name a policy reason is counted under: the reason itself when the policy's source
    /// writes it as a literal (a set fixed at load), else `other`, so no policy can grow a
    /// host's counters without limit.
    ///
    /// ```
    /// let gate = attestgate_policy::Gate::from_json(r#"{ "keys": { "approov_secret":
    ///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" }, "policy": { "modules": { "p.rego":
    ///     "package attestgate\nimport rego.v1\ndecision := {\"allow\": false, \"reasons\": [\"rooted\", sprintf(\"v%d\", [1])]}" } } }"#).unwrap();
    /// assert_eq!(gate.counted_policy_reason("rooted"), "rooted");
    /// assert_eq!(gate.counted_policy_reason("v1"), "other");
    /// ```
    pub fn counted_policy_reason<'a>(&self, reason: &'a str) -> &'a str {
        if self.policy_reason_names.contains(reason) {
            reason
        } else {
            "other"
        }
    }

    /// Every policy reason counted by name (see [`Gate::counted_policy_reason`]), `other`
    /// aside; at most 256.
    pub fn policy_reason_names(&self) -> impl Iterator<Item = &str> {
        self.policy_reason_names.iter().map(String::as_str)
    }

    /// Whether a token's signature costs more to verify than to look up: only then does the
    /// decision cache keep token verdicts. An HMAC over the token costs about what the
    /// SHA-256 of it that keys the cache costs, so with HMAC keys only (or in hybrid mode,
    /// where the gateway verified) the token level would double a fresh token's hashing and
    /// save nothing, a flood of forged HMAC tokens included.
    pub(crate) fn signatures_are_costly(&self) -> bool {
        self.costly_signatures
    }

    fn derive_costly_signatures(&self) -> bool {
        self.config.host_verification.is_none()
            && (self.config.keys.remote.is_some()
                || self.keys.keys().iter().any(|key| {
                    !matches!(
                        key.algorithm(),
                        crate::keys::Algorithm::Hs256
                            | crate::keys::Algorithm::Hs384
                            | crate::keys::Algorithm::Hs512
                    )
                }))
    }

    /// Whether a decision can depend on the client's address: a rate limit (which counts by
    /// address when a token names no device), or a policy that reads
    /// `input.request.source_ip` (or reads in ways the scan cannot follow). Hosts for which
    /// the address costs a call (Envoy's `source.address` property costs about as much as
    /// reading every header) skip it otherwise.
    ///
    /// ```
    /// use attestgate_policy::Gate;
    /// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    /// let gate = |policy: &str| Gate::from_json(&format!(
    ///     r#"{{"keys":{{"approov_secret":"{secret}"}},"policy":{{"modules":{{"p.rego":{}}}}}}}"#,
    ///     serde_json::to_string(&format!("package attestgate\ndecision := {policy}")).unwrap(),
    /// )).unwrap();
    /// assert!(!gate("input.token.claims.ok").needs_source_ip());
    /// assert!(gate("input.request.source_ip == \"10.0.0.1\"").needs_source_ip());
    /// assert!(gate("count(input) > 1").needs_source_ip());
    /// ```
    pub fn needs_source_ip(&self) -> bool {
        self.source_ip_read
    }

    fn derive_source_ip_read(&self) -> bool {
        if self
            .config
            .rules
            .iter()
            .any(|rule| rule.rate_limit.is_some())
        {
            return true;
        }
        let Some(policy) = &self.policy else {
            return false;
        };
        match policy.read_paths() {
            None => true,
            Some(paths) => paths.iter().any(|path| match path.as_slice() {
                [request] => request == "request",
                [request, field, ..] => request == "request" && field == "source_ip",
                [] => true,
            }),
        }
    }

    /// The config this gate was built from.
    ///
    /// ```
    /// use attestgate_policy::{Gate, Mode};
    /// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// assert_eq!(gate.config().mode, Mode::Enforce);
    /// assert_eq!(gate.config().token.header, "approov-token");
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The load log line about the policy: which entrypoints run as a compiled plan and which
    /// stay interpreted, with the construct and file:line that kept them so; `None` without a
    /// policy.
    ///
    /// ```
    /// use attestgate_policy::Gate;
    /// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="},
    ///     "policy":{"modules":{"p.rego":"package attestgate\ndecision := true"}}}"#).unwrap();
    /// assert_eq!(gate.policy_summary().unwrap(), "policy: data.attestgate.decision compiled to a plan");
    /// ```
    pub fn policy_summary(&self) -> Option<String> {
        self.policy.as_ref().map(Policy::summary)
    }

    /// Some entrypoint of the policy stays interpreted (see [`Gate::policy_summary`] for which
    /// and why).
    pub fn policy_interpreted(&self) -> bool {
        self.policy.as_ref().is_some_and(|p| !p.is_planned())
    }

    /// Lets the host's own crypto check public-key signatures (JWS `ES256` and `RS*`, RFC 9421
    /// `ecdsa-p256-sha256`): each scheme moves to `host` only if it accepts a known valid
    /// signature and refuses a forgery ([`verifier`](crate::verifier)); every other check stays
    /// built in. Call once, at load; the report is the host's log line.
    ///
    /// ```
    /// use attestgate_policy::{Gate, verifier::{HostCheck, HostVerifier, Scheme}};
    /// #[derive(Debug)]
    /// struct Says(bool); // a host that answers the same whatever it is asked
    /// impl HostVerifier for Says {
    ///     fn verify(&self, _: &HostCheck<'_>) -> Option<bool> { Some(self.0) }
    /// }
    /// let mut gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// let report = gate.use_host_verifier(Box::new(Says(true)));
    /// assert!(report.on_host().is_empty()); // it accepted the forgery of every scheme
    /// assert_eq!(report.refused()[0].0, Scheme::EcdsaP256Sha256);
    /// ```
    pub fn use_host_verifier(&mut self, host: Box<dyn HostVerifier>) -> ProbeReport {
        let (verifier, report) = Verifier::probed(host);
        self.verifier = verifier;
        report
    }

    /// The loaded keys.
    ///
    /// ```
    /// use attestgate_policy::{Algorithm, Gate};
    /// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// assert_eq!(gate.keys().keys()[0].algorithm(), Algorithm::Hs256);
    /// ```
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Whether every token waits on fetched keys: keys come only from `keys.remote` (no local
    /// keys, no gateway verifier). Until the first JWKS lands such a gate answers
    /// `keys_unavailable`, so a host that can hold a request holds it for that fetch.
    ///
    /// ```
    /// use attestgate_policy::Gate;
    ///
    /// let remote = r#"{"keys":{"remote":{"upstream":"jwks","authority":"keys.example.com","path":"/jwks.json"}}}"#;
    /// assert!(Gate::from_json(remote).unwrap().waits_for_fetched_keys());
    /// let local = r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#;
    /// assert!(!Gate::from_json(local).unwrap().waits_for_fetched_keys());
    /// ```
    pub fn waits_for_fetched_keys(&self) -> bool {
        self.config.host_verification.is_none() && self.keys.keys().is_empty()
    }

    /// Decides one request at time `now` (unix seconds, from the host's clock), with no
    /// fetched keys or denylist and no rate limiter (see [`Gate::check_with`]).
    ///
    /// ```
    /// use attestgate_policy::{Gate, Reason, Request};
    /// use attestgate_testkit::SigningKey;
    /// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    /// let gate = Gate::from_json(&format!(r#"{{ "keys": {{ "approov_secret": "{secret}" }} }}"#)).unwrap();
    /// let claims = serde_json::json!({ "exp": 1_700_000_300, "nbf": 1_700_000_100 });
    /// let token = SigningKey::hs256_from_base64_secret(secret).unwrap()
    ///     .sign(claims.as_object().unwrap()).unwrap();
    /// let request = Request::new("GET", "/").with_header("approov-token", token);
    /// assert_eq!(gate.check(&request, 1_700_000_000).reason, Reason::TokenNotYetValid);
    /// let decision = gate.check(&request, 1_700_000_200);
    /// assert_eq!((decision.allow, decision.reason), (true, Reason::Allowed));
    /// assert_eq!(decision.claims.unwrap()["exp"], 1_700_000_300);
    /// ```
    pub fn check(&self, request: &Request, now: i64) -> Decision {
        self.check_with(request, now, &mut Dynamic::default())
    }

    /// Decides one request with what the host holds of the remote JWKS and denylist, and
    /// with its rate limiter.
    ///
    /// ```
    /// use attestgate_policy::remote::{Dynamic, MemoryLimiter};
    /// use attestgate_policy::{Gate, Reason, Request};
    /// use attestgate_testkit::SigningKey;
    ///
    /// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    /// let gate = Gate::from_json(&format!(r#"{{
    ///     "keys": {{ "approov_secret": "{secret}" }},
    ///     "rules": [ {{ "path": "/login", "rate_limit": {{ "requests": 1, "per_seconds": 60 }} }} ]
    /// }}"#)).unwrap();
    /// let claims = serde_json::json!({ "exp": 1_700_000_300, "did": "device-1" });
    /// let token = SigningKey::hs256_from_base64_secret(secret).unwrap()
    ///     .sign(claims.as_object().unwrap()).unwrap();
    /// let login = Request::new("POST", "/login").with_header("Approov-Token", token.as_str());
    ///
    /// let mut limiter = MemoryLimiter::default();
    /// let mut dynamic = Dynamic { limiter: Some(&mut limiter), ..Dynamic::default() };
    /// assert!(gate.check_with(&login, 1_700_000_000, &mut dynamic).allow);
    /// let again = gate.check_with(&login, 1_700_000_000, &mut dynamic);
    /// assert_eq!((again.status, again.reason), (429, Reason::RateLimited));
    /// assert_eq!(again.headers.get("retry-after").map(String::as_str), Some("60"));
    /// ```
    pub fn check_with(&self, request: &Request, now: i64, dynamic: &mut Dynamic<'_>) -> Decision {
        let route = self.matching_rule(request);
        self.check_hooked(
            request,
            route,
            now,
            dynamic,
            &mut Direct { gate: self, now },
        )
    }

    /// [`Gate::check_with`] with token verification and policy evaluation done by `hooks`
    /// (the decision cache's memos), and every step reported to it (explain's record). `route`
    /// is [`Gate::matching_rule`] of the request, which callers have already worked out.
    pub(crate) fn check_hooked(
        &self,
        request: &Request,
        route: Result<Option<&RouteRule>, PathRefusal>,
        now: i64,
        dynamic: &mut Dynamic<'_>,
        hooks: &mut dyn Hooks,
    ) -> Decision {
        let rule = match route {
            Ok(rule) => rule,
            Err(refusal) => {
                // Refused in every mode: no rule can be trusted to be the one that applies.
                let message = refusal.to_string();
                hooks.step(StepId::Route, StepStatus::Failed, &|| message.clone());
                return Decision::denied(Mode::Enforce, refusal.reason(), vec![message]);
            }
        };
        let mode = rule.and_then(|r| r.mode).unwrap_or(self.config.mode);
        let rule_name = rule.and_then(|r| r.name.clone());
        hooks.step(StepId::Route, StepStatus::Passed, &|| {
            let which = match (rule, &rule_name) {
                (Some(_), Some(name)) => format!("rule `{name}` matched"),
                (Some(rule), None) => format!(
                    "rules[{}] matched",
                    self.config
                        .rules
                        .iter()
                        .position(|r| std::ptr::eq(r, rule))
                        .unwrap_or_default()
                ),
                (None, _) => "no rule matched; the default mode applies".to_owned(),
            };
            format!("{which} (mode {})", mode.as_str())
        });
        let mut decision = match mode {
            Mode::Bypass => Decision::allowed(mode, Reason::Bypassed),
            Mode::Enforce | Mode::Monitor => self.decide(request, now, mode, rule, dynamic, hooks),
        };
        if mode == Mode::Monitor && !decision.allow {
            // Report, don't block. Reply headers are meaningless when nothing is replied.
            decision.allow = true;
            decision.status = 200;
            decision.headers = self.claim_headers(decision.claims.as_deref());
            hooks.step(StepId::Mode, StepStatus::Passed, &|| {
                "monitor: the denial is reported and the request goes on".to_owned()
            });
        } else if mode != Mode::Bypass && decision.allow {
            hooks.step(StepId::Mode, StepStatus::Passed, &|| {
                mode.as_str().to_owned()
            });
        }
        decision.rule = rule_name;
        decision
    }

    /// The first rule matching the request, if any: by method, and by path under every
    /// reading an upstream may give it ([`Request::path_readings`]). When the readings fall
    /// under different rules (or some under a rule and some under none), the request is
    /// [`PathRefusal::Ambiguous`]: a bypass or monitor rule must never apply to a path that
    /// some upstream resolves outside it. A path with a control character is
    /// [`PathRefusal::Invalid`], with rules or without.
    pub(crate) fn matching_rule(
        &self,
        request: &Request,
    ) -> Result<Option<&RouteRule>, PathRefusal> {
        if request.path_has_control_character() {
            return Err(PathRefusal::Invalid);
        }
        if self.config.rules.is_empty() {
            return Ok(None);
        }
        let readings = request.path_readings();
        let mut chosen: Option<Option<usize>> = None;
        for reading in &readings {
            let index = self.rule_index(reading, &request.method);
            match chosen {
                None => chosen = Some(index),
                Some(first) if first == index => {}
                Some(_) => {
                    return Err(PathRefusal::Ambiguous { readings });
                }
            }
        }
        Ok(chosen
            .flatten()
            .and_then(|index| self.config.rules.get(index)))
    }

    /// The index of the first rule matching one reading of the path.
    fn rule_index(&self, path: &str, method: &str) -> Option<usize> {
        self.config.rules.iter().position(|rule| {
            let path_ok = match (&rule.path, &rule.path_prefix) {
                (Some(exact), _) => path == exact,
                (None, Some(prefix)) => rule.prefix_match.matches(prefix, path),
                (None, None) => true,
            };
            let method_ok = rule.methods.is_empty()
                || rule.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
            path_ok && method_ok
        })
    }

    fn decide(
        &self,
        request: &Request,
        now: i64,
        mode: Mode,
        rule: Option<&RouteRule>,
        dynamic: &mut Dynamic<'_>,
        hooks: &mut dyn Hooks,
    ) -> Decision {
        // Every denial below goes through here: the step it failed at is reported once.
        let deny = |hooks: &mut dyn Hooks, step: StepId, reason: Reason, message: String| {
            hooks.step(step, StepStatus::Failed, &|| message.clone());
            Decision::denied(mode, reason, vec![message])
        };
        let raw = match token::extract(request, &self.config.token) {
            Ok(raw) => raw,
            Err(err) => return deny(hooks, StepId::Extract, err.reason(), err.to_string()),
        };
        hooks.step(StepId::Extract, StepStatus::Passed, &|| {
            let prefix = self
                .config
                .token
                .prefix
                .as_deref()
                .map(|p| format!(" after the prefix `{}`", p.trim_end()))
                .unwrap_or_default();
            format!("found once in `{}`{prefix}", self.config.token.header)
        });
        let host_record = match &self.config.host_verification {
            Some(host) => match dynamic.host_verified {
                Some(record) => Some(record),
                None => {
                    return deny(
                        hooks,
                        StepId::HostRecord,
                        Reason::SignatureInvalid,
                        format!(
                        "the gateway verified no token on this request (no `{}` in `{}` metadata)",
                        host.payload_in_metadata, host.filter
                    ),
                    )
                }
            },
            None => None,
        };
        if self.waits_for_fetched_keys() && dynamic.remote_keys.is_none() {
            // Only fetched keys are configured and none has arrived yet.
            return deny(
                hooks,
                StepId::Key,
                Reason::KeysUnavailable,
                "no keys fetched yet".to_owned(),
            );
        }
        let mut keys = vec![&self.keys];
        keys.extend(dynamic.remote_keys);
        let token = match hooks.verify(raw, &keys) {
            Ok(token) => token,
            Err(err) => {
                let failed = err.step();
                for id in StepId::TOKEN {
                    if id == failed {
                        break;
                    }
                    hooks.step(id, StepStatus::Passed, &|| {
                        self.token_step_detail(id, raw, None)
                    });
                }
                return deny(hooks, failed, err.reason(), err.to_string());
            }
        };
        for id in StepId::TOKEN {
            hooks.step(id, StepStatus::Passed, &|| {
                self.token_step_detail(id, raw, Some((&token.claims, now)))
            });
        }
        let with_claims = |mut decision: Decision, claims| {
            decision.claims = Some(std::sync::Arc::new(claims));
            decision
        };
        match host_record {
            Some(record) => {
                // The record must be this token's: a verifier that read another header value, or
                // a route where it let a request through unverified, must not vouch for this one.
                let exp = token.claims.get("exp").and_then(Value::as_f64);
                let same = match (exp, record.exp) {
                    (Some(ours), Some(theirs)) => ours == theirs.floor(),
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    return deny(
                        hooks,
                        StepId::HostRecord,
                        Reason::SignatureInvalid,
                        "the token is not the one the gateway verified (`exp` differs)".to_owned(),
                    );
                }
                hooks.step(StepId::HostRecord, StepStatus::Passed, &|| {
                    "the gateway verified this token (its `exp` matches)".to_owned()
                });
            }
            None => hooks.step(StepId::HostRecord, StepStatus::Passed, &|| {
                "not configured: the gate verifies signatures itself".to_owned()
            }),
        }
        let device = self.device_id(&token.claims);
        match (&device, &self.config.denylist) {
            (Some(id), Some(denylist)) => {
                let listed = denylist.devices.iter().any(|d| d == id)
                    || dynamic.denylist.is_some_and(|list| list.contains(id));
                if listed {
                    let decision = deny(
                        hooks,
                        StepId::Denylist,
                        Reason::DeviceDenied,
                        "the device is on the denylist".to_owned(),
                    );
                    return with_claims(decision, token.claims);
                }
                hooks.step(StepId::Denylist, StepStatus::Passed, &|| {
                    format!("device `{id}` is not listed")
                });
            }
            (None, Some(denylist)) => hooks.step(StepId::Denylist, StepStatus::Passed, &|| {
                format!("the token has no device id `{}`", denylist.claim)
            }),
            (_, None) => hooks.step(StepId::Denylist, StepStatus::Passed, &|| {
                "not configured".to_owned()
            }),
        }
        let binding = match &self.config.binding {
            Some(config) => match binding::check(config, request, &token.claims) {
                Ok(outcome) => {
                    hooks.step(StepId::Binding, StepStatus::Passed, &|| {
                        if outcome.checked {
                            format!(
                                "`{}` matches SHA-256 of {}",
                                config.claim,
                                config.headers.join(" + ")
                            )
                        } else {
                            format!("no `{}` claim; binding is optional", config.claim)
                        }
                    });
                    outcome
                }
                Err((reason, message)) => {
                    let decision = deny(hooks, StepId::Binding, reason, message);
                    return with_claims(decision, token.claims);
                }
            },
            None => {
                hooks.step(StepId::Binding, StepStatus::Passed, &|| {
                    "not configured".to_owned()
                });
                BindingOutcome::default()
            }
        };
        let signature_config = self.signature_config_of(rule);
        if request
            .body
            .as_ref()
            .is_some_and(|body| body.len() > signature_config.max_body_bytes)
            && signature_config.body_needed(request)
        {
            let decision = deny(
                hooks,
                StepId::RequestSignature,
                Reason::BodyTooLarge,
                format!(
                    "the signed body is longer than {} bytes",
                    signature_config.max_body_bytes
                ),
            );
            return with_claims(decision, token.claims);
        }
        let signature = signature_config.check(request, &token.claims, &self.verifier, now);
        if let Some(reason) = signature.denial(signature_config.mode) {
            let message = signature
                .error
                .as_ref()
                .map_or_else(|| "no accepted signature".to_owned(), ToString::to_string);
            let decision = deny(hooks, StepId::RequestSignature, reason, message);
            return with_claims(decision, token.claims);
        }
        hooks.step(StepId::RequestSignature, StepStatus::Passed, &|| match (
            signature_config.mode,
            signature.valid,
        ) {
            (SignatureMode::Off, _) => "not checked on this route".to_owned(),
            (_, true) => format!(
                "verified ({}), covering {}",
                [
                    signature.install.valid.then_some("install"),
                    signature.account.valid.then_some("account"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" and "),
                signature.components.join(", ")
            ),
            (_, false) => "none present (optional on this route)".to_owned(),
        });
        match (
            rule.and_then(|r| r.rate_limit.as_ref()),
            dynamic.limiter.as_deref_mut(),
        ) {
            (Some(limit), Some(limiter)) => {
                // One bucket per rule and device; a token without a device id is limited by the
                // client address it came from.
                let who = match (&device, &request.source_ip) {
                    (Some(id), _) => format!("device:{id}"),
                    (None, Some(ip)) => format!("ip:{ip}"),
                    (None, None) => "unknown".to_owned(),
                };
                let index = self
                    .config
                    .rules
                    .iter()
                    .position(|r| Some(r) == rule)
                    .unwrap_or(usize::MAX);
                if let Err(wait) = limiter.take(&format!("rule{index}:{who}"), limit, now) {
                    let mut decision = deny(
                        hooks,
                        StepId::RateLimit,
                        Reason::RateLimited,
                        "too many requests from this device".to_owned(),
                    );
                    decision
                        .headers
                        .insert("retry-after".to_owned(), wait.to_string());
                    return with_claims(decision, token.claims);
                }
                hooks.step(StepId::RateLimit, StepStatus::Passed, &|| {
                    format!(
                        "within {} requests per {} s ({who})",
                        limit.requests, limit.per_seconds
                    )
                });
            }
            (Some(_), None) => hooks.step(StepId::RateLimit, StepStatus::Passed, &|| {
                "this host keeps no rate-limit buckets".to_owned()
            }),
            (None, _) => hooks.step(StepId::RateLimit, StepStatus::Passed, &|| {
                "not configured".to_owned()
            }),
        }
        let Some(policy) = &self.policy else {
            hooks.step(StepId::Policy, StepStatus::Passed, &|| {
                "no policy configured: a verified token is enough".to_owned()
            });
            let mut decision = Decision::allowed(mode, Reason::Allowed);
            decision.headers = self.claim_headers(Some(&token.claims));
            return with_claims(decision, token.claims);
        };
        let rule_name = rule.and_then(|r| r.name.as_deref());
        // The claims move into the input and back out: no copy of them per request (a policy
        // memo hit never converts the input for Rego either).
        let VerifiedToken {
            alg,
            kid,
            typ,
            claims,
        } = token;
        let device = self.device_id(&claims);
        let parts = Parts {
            request,
            token_header: &self.config.token.header,
            alg,
            kid,
            typ,
            binding,
            device,
            now,
            rule: rule_name,
            signature: &signature,
        };
        let mut input = PolicyInput::new(parts, claims);
        let entrypoint = rule
            .and_then(|r| r.entrypoint.as_deref())
            .unwrap_or(self.policy_entrypoint());
        hooks.policy_input(entrypoint, &mut input);
        let outcome = hooks.evaluate(policy, entrypoint, &mut input);
        let claims = input.into_claims();
        let listed = |reasons: &[String]| {
            if reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", reasons.join(", "))
            }
        };
        let decision = match outcome {
            Ok(outcome) if outcome.allow => {
                hooks.step(StepId::Policy, StepStatus::Passed, &|| {
                    format!("`{entrypoint}` allowed{}", listed(&outcome.reasons))
                });
                let mut decision = Decision::allowed(mode, Reason::Allowed);
                decision.reasons = outcome.reasons;
                decision.headers = self.claim_headers(Some(&claims));
                decision.headers.extend(outcome.headers);
                decision
            }
            Ok(outcome) => {
                let status = outcome
                    .status
                    .unwrap_or_else(|| Reason::PolicyDenied.default_status());
                hooks.step(StepId::Policy, StepStatus::Failed, &|| {
                    let how = match mode {
                        Mode::Monitor => {
                            "denied (monitor mode: reported, the request goes on)".to_owned()
                        }
                        _ => format!("denied with status {status}"),
                    };
                    format!("`{entrypoint}` {how}{}", listed(&outcome.reasons))
                });
                let mut decision = Decision::denied(mode, Reason::PolicyDenied, outcome.reasons);
                decision.status = status;
                decision.headers = outcome.headers;
                decision
            }
            Err(error) => {
                hooks.step(StepId::Policy, StepStatus::Failed, &|| {
                    format!("`{entrypoint}` failed: {error}")
                });
                let mut decision = Decision::denied(
                    mode,
                    Reason::PolicyError,
                    vec!["policy evaluation failed".to_owned()],
                );
                decision.detail = Some(error);
                decision
            }
        };
        with_claims(decision, claims)
    }

    /// What a passed token step checked, for explain. `claims` (with `now`) once verified.
    fn token_step_detail(
        &self,
        id: StepId,
        raw: &str,
        claims: Option<(&Map<String, Value>, i64)>,
    ) -> String {
        let header = crate::token::untrusted_header(raw);
        let field = |name: &str| {
            header
                .as_ref()
                .and_then(|h| h.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match id {
            StepId::Structure => format!(
                "three base64url segments, {} bytes (at most {}), strict header JSON",
                raw.len(),
                self.verify.max_bytes
            ),
            StepId::Key => {
                let alg = field("alg").unwrap_or_else(|| "?".to_owned());
                match field("kid") {
                    Some(kid) => format!("alg {alg}; kid `{kid}` names a key pinned to {alg}"),
                    None => format!("alg {alg}; no kid, so every key pinned to {alg} is tried"),
                }
            }
            StepId::Signature if self.verify.signature_by_host => {
                "verified by the gateway (hybrid mode)".to_owned()
            }
            StepId::Signature => "verified".to_owned(),
            StepId::Time => {
                let Some((claims, now)) = claims else {
                    return "within the validity window".to_owned();
                };
                let leeway = self.verify.leeway_seconds;
                let exp = match claims.get("exp").and_then(Value::as_i64) {
                    Some(exp) => format!("exp is {} s from now", exp.saturating_sub(now)),
                    None => "no exp (not required)".to_owned(),
                };
                let nbf = match claims.get("nbf").and_then(Value::as_i64) {
                    Some(nbf) => format!("; nbf was {} s ago", now.saturating_sub(nbf)),
                    None => String::new(),
                };
                format!("{exp}{nbf} (leeway {leeway} s)")
            }
            StepId::IssuerAudience => {
                let issuer = match &self.verify.issuer {
                    Some(issuer) => format!("iss is `{issuer}`"),
                    None => "no issuer required".to_owned(),
                };
                let audience = match &self.verify.audiences {
                    Some(audiences) => format!("aud holds one of {}", audiences.join(", ")),
                    None => "no audience required".to_owned(),
                };
                format!("{issuer}; {audience}")
            }
            _ => "strict JSON; registered claims well-typed".to_owned(),
        }
    }

    /// The device id claim (the denylist's `claim`, `did` by default), if it is a string.
    fn device_id(&self, claims: &Map<String, Value>) -> Option<String> {
        let claim = self
            .config
            .denylist
            .as_ref()
            .map_or("did", |d| d.claim.as_str());
        lookup(claims, claim)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Whether a request must be decided on its complete body: its route checks signatures and
    /// a signature it carries covers `content-digest`. Hosts ask at the request headers, then
    /// read at most [`Gate::max_body_bytes`] + 1 bytes of body before deciding.
    ///
    /// ```
    /// use attestgate_policy::{Gate, Request};
    /// let gate = Gate::from_json(r#"{
    ///     "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
    ///     "signature": { "mode": "required" }
    /// }"#).unwrap();
    /// let get = Request::new("GET", "/v1/x")
    ///     .with_header("Signature-Input", r#"install=("@method" "@target-uri");created=1"#);
    /// let post = Request::new("POST", "/v1/x")
    ///     .with_header("Signature-Input", r#"install=("@method" "content-digest");created=1"#);
    /// assert!(!gate.needs_body(&get));
    /// assert!(gate.needs_body(&post));
    /// assert_eq!(gate.max_body_bytes(&post), 1024 * 1024);
    /// ```
    pub fn needs_body(&self, request: &Request) -> bool {
        self.may_need_body && self.signature_config(request).body_needed(request)
    }

    /// Most body bytes a request's route reads (its signature's `max_body_bytes`): a longer
    /// body is refused with `body_too_large`.
    ///
    /// ```
    /// use attestgate_policy::{Gate, Request};
    /// let gate = Gate::from_json(r#"{
    ///     "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
    ///     "signature": { "mode": "required" },
    ///     "rules": [ { "path_prefix": "/upload", "signature": { "mode": "required", "max_body_bytes": 8 } } ]
    /// }"#).unwrap();
    /// assert_eq!(gate.max_body_bytes(&Request::new("POST", "/upload/a")), 8);
    /// assert_eq!(gate.max_body_bytes(&Request::new("POST", "/v1/x")), 1024 * 1024);
    /// ```
    pub fn max_body_bytes(&self, request: &Request) -> usize {
        self.signature_config(request).max_body_bytes
    }

    /// The request-signature config for a request: its rule's, else the top-level one.
    pub(crate) fn signature_config(&self, request: &Request) -> &crate::signature::SignatureConfig {
        self.signature_config_of(self.matching_rule(request).ok().flatten())
    }

    /// The signature config of a matched rule (the top-level one without a rule or a block).
    fn signature_config_of<'g>(
        &'g self,
        rule: Option<&'g RouteRule>,
    ) -> &'g crate::signature::SignatureConfig {
        rule.and_then(|rule| rule.signature.as_ref())
            .unwrap_or(&self.config.signature)
    }

    pub(crate) fn policy_entrypoint(&self) -> &str {
        self.config
            .policy
            .as_ref()
            .map_or("data.attestgate.decision", |p| p.entrypoint.as_str())
    }

    /// `claim_to_headers`, for claims that exist and make a safe header value.
    fn claim_headers(&self, claims: Option<&Map<String, Value>>) -> BTreeMap<String, String> {
        let Some(claims) = claims else {
            return BTreeMap::new();
        };
        self.config
            .claim_to_headers
            .iter()
            .filter_map(|mapping| {
                let value = lookup(claims, &mapping.claim)?;
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                is_header_value(&text).then(|| (mapping.header.to_ascii_lowercase(), text))
            })
            .collect()
    }
}

/// Follows a dotted path (`att.device.platform`) through nested objects.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// A config from its JSON text.
fn parse(text: &str) -> Result<Config, ConfigError> {
    // serde also reads a struct from an array of its fields in order; with every field
    // optional, `[]` would load as the default config.
    if text.trim_start().starts_with('[') {
        return Err(ConfigError::Parse(
            "invalid type: sequence, expected struct Config (a JSON object)".to_owned(),
        ));
    }
    serde_json::from_str(text).map_err(|err| ConfigError::Parse(err.to_string()))
}

/// The capability check both host loaders share.
fn refuse_unsupported(config: &Config, host: crate::capability::Host) -> Result<(), ConfigError> {
    match crate::capability::refused(config, host) {
        Some(demand) => Err(ConfigError::Unsupported {
            field: demand.field,
            host,
            capability: demand.need.capability,
        }),
        None => Ok(()),
    }
}

fn validate(config: &Config) -> Result<(), ConfigError> {
    let invalid = |field: &str, message: &str| {
        Err(ConfigError::Invalid {
            field: field.to_owned(),
            message: message.to_owned(),
        })
    };
    if config.mode == Mode::Bypass {
        return invalid("mode", "`bypass` is only allowed in a rule");
    }
    if let Some(log) = &config.decision_log {
        crate::decision_log::validate(log, config.log_decisions)
            .map_err(|(field, message)| ConfigError::Invalid { field, message })?;
    }
    if !is_header_name(&config.token.header) {
        return invalid("token.header", "not a valid header name");
    }
    if !(1..=MAX_TOKEN_BYTES).contains(&config.token.max_bytes) {
        return invalid(
            "token.max_bytes",
            &format!("must be between 1 and {MAX_TOKEN_BYTES}"),
        );
    }
    if !(1..=MAX_JSON_DEPTH).contains(&config.token.max_json_depth) {
        return invalid(
            "token.max_json_depth",
            &format!("must be between 1 and {MAX_JSON_DEPTH}"),
        );
    }
    if config.audiences.as_ref().is_some_and(Vec::is_empty) {
        return invalid(
            "audiences",
            "an empty list refuses every token; omit it instead",
        );
    }
    if let Some(binding) = &config.binding {
        if binding.headers.is_empty() || binding.headers.iter().any(|h| !is_header_name(h)) {
            return invalid("binding.headers", "list one or more valid header names");
        }
        if binding.claim.is_empty() {
            return invalid("binding.claim", "must not be empty");
        }
    }
    if let Some(host) = &config.host_verification {
        if host.filter.is_empty() || host.payload_in_metadata.is_empty() {
            return invalid(
                "host_verification",
                "`filter` and `payload_in_metadata` must not be empty",
            );
        }
    }
    let fields = &config.record_fields;
    if fields
        .iter()
        .enumerate()
        .any(|(i, field)| fields.iter().skip(i + 1).any(|later| later == field))
    {
        return invalid("record_fields", "a field is listed more than once");
    }
    config.signature.validate("signature")?;
    for (i, rule) in config.rules.iter().enumerate() {
        let field = format!("rules[{i}]");
        if let Some(signature) = &rule.signature {
            signature.validate(&format!("{field}.signature"))?;
        }
        if rule.path.is_some() && rule.path_prefix.is_some() {
            return invalid(&field, "set `path` or `path_prefix`, not both");
        }
        if rule.entrypoint.is_some() && config.policy.is_none() {
            return invalid(&field, "`entrypoint` needs a `policy`");
        }
        if rule.methods.iter().any(|m| !is_header_name(m)) {
            return invalid(&field, "methods must be HTTP method names");
        }
        if let Some(limit) = &rule.rate_limit {
            if limit.requests == 0 || limit.per_seconds == 0 {
                return invalid(
                    &format!("{field}.rate_limit"),
                    "`requests` and `per_seconds` must be at least 1",
                );
            }
        }
    }
    let remotes = [
        ("keys.remote", config.keys.remote.as_ref()),
        (
            "denylist.remote",
            config.denylist.as_ref().and_then(|d| d.remote.as_ref()),
        ),
    ];
    for (field, remote) in remotes {
        let Some(remote) = remote else { continue };
        if remote.upstream.is_empty() || remote.authority.is_empty() {
            return invalid(field, "`upstream` and `authority` must not be empty");
        }
        if !remote.path.starts_with('/') {
            return invalid(field, "`path` must start with `/`");
        }
        if remote.refresh_seconds == 0 || remote.timeout_ms == 0 || remote.max_bytes == 0 {
            return invalid(
                field,
                "`refresh_seconds`, `timeout_ms` and `max_bytes` must be at least 1",
            );
        }
    }
    if config.denylist.as_ref().is_some_and(|d| d.claim.is_empty()) {
        return invalid("denylist.claim", "must not be empty");
    }
    for (i, mapping) in config.claim_to_headers.iter().enumerate() {
        if !is_header_name(&mapping.header)
            || mapping.header.eq_ignore_ascii_case(&config.token.header)
            || mapping.claim.is_empty()
        {
            return invalid(
                &format!("claim_to_headers[{i}]"),
                "needs a claim and a valid header name other than the token header",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_rule_matches_every_reading_of_the_path_or_the_path_is_ambiguous() {
        let gate = Gate::from_json(
            r#"{
                "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
                "rules": [ { "path_prefix": "/beta", "mode": "monitor" } ]
            }"#,
        )
        .unwrap();
        let rule = |path: &str| gate.matching_rule(&Request::new("GET", path));
        assert!(rule("/beta/x").unwrap().is_some());
        assert!(rule("/betamax").unwrap().is_none());
        assert!(rule("/beta/..;/admin").is_err());
    }
}
