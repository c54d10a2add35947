//! Why the gate decided what it did, step by step: for the playground and for debugging.
//!
//! [`Gate::explain`] decides the request exactly as [`Gate::check`] does (its `decision` *is*
//! `check`'s result) and, next to it, shows the work: the token's header and claims decoded
//! **without** verification, every verification step with its outcome, and the Rego input the
//! policy saw. The steps come from running the same functions `check` runs (`extract`,
//! `verify`, the binding check), so they cannot tell a different story. Hosts on the request
//! path call `check`; this does more work and returns untrusted data.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::binding::{self, BindingOutcome};
use crate::config::Mode;
use crate::decision::{Decision, Reason};
use crate::error::TokenError;
use crate::gate::Gate;
use crate::request::Request;
use crate::token::{self, VerifiedToken};

/// The decision with its working: see the [module docs](self).
///
/// ```
/// use attestgate_policy::{mint::SigningKey, Gate, Request, StepId, StepStatus};
///
/// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
/// let gate = Gate::from_json(&format!(r#"{{ "keys": {{ "approov_secret": "{secret}" }} }}"#)).unwrap();
/// let claims = serde_json::json!({ "exp": 1_000, "did": "device-1" });
/// let token = SigningKey::hs256_from_base64_secret(secret).unwrap()
///     .sign(claims.as_object().unwrap()).unwrap();
/// let request = Request::new("GET", "/").with_header("approov-token", token.as_str());
///
/// let explained = gate.explain(&request, 5_000);
/// assert_eq!(explained.decision, gate.check(&request, 5_000));
/// let failed = explained.steps.iter().find(|s| s.status == StepStatus::Failed).unwrap();
/// assert_eq!(failed.id, StepId::Time);
/// // The claims are shown even though the token has expired, marked as unverified.
/// assert_eq!(explained.token.unwrap().claims.unwrap()["did"], "device-1");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// Exactly what [`Gate::check`] returns for the same request and time.
    pub decision: Decision,
    /// The route rule that matched, if any.
    pub rule: Option<RuleMatch>,
    /// The mode that applied (the rule's, else the config's).
    pub mode: Mode,
    /// The token as found in the request, decoded without verifying anything. `None` when
    /// no token was found (or a bypass rule skipped the gate).
    pub token: Option<DecodedToken>,
    /// Every step in order: route, extract, structure, key, signature, claims, time,
    /// issuer and audience, binding, policy.
    pub steps: Vec<Step>,
    /// The Rego rule evaluated, when the policy ran.
    pub policy_entrypoint: Option<String>,
    /// The Rego input document, when the policy ran.
    pub policy_input: Option<Value>,
}

/// The route rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMatch {
    /// Its position in `rules`.
    pub index: usize,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Its entrypoint, if it overrides the policy's.
    pub entrypoint: Option<String>,
}

/// A token decoded for display only. Nothing here has been verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodedToken {
    /// The token, without the header prefix.
    pub raw: String,
    /// The JOSE header, if the first segment decodes to JSON.
    pub header: Option<Value>,
    /// The claims, if the second segment decodes to JSON.
    pub claims: Option<Value>,
    /// Length of the decoded signature, if the third segment decodes.
    pub signature_bytes: Option<usize>,
    /// Why a segment did not decode.
    pub problems: Vec<String>,
}

/// One step of the gate's pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Which step.
    pub id: StepId,
    /// A short title for people.
    pub title: &'static str,
    /// Passed, failed (the step that decided a denial), or skipped.
    pub status: StepStatus,
    /// What was checked or found.
    pub detail: String,
}

/// The steps of [`Gate::check`], in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepId {
    /// The first matching route rule and its mode.
    Route,
    /// The token header: present once, with its prefix.
    Extract,
    /// Size, base64url alphabet, three segments, strict header JSON, no `crit`/`b64`.
    Structure,
    /// The `alg` and `kid` select a key pinned to that algorithm.
    Key,
    /// The signature verifies.
    Signature,
    /// The claims are strict JSON with well-typed registered claims.
    Claims,
    /// `exp` and `nbf` against `now`, with the leeway.
    Time,
    /// `iss` and `aud` against the config.
    IssuerAudience,
    /// The token binding claim against the bound headers.
    Binding,
    /// The Rego policy's decision.
    Policy,
}

impl StepId {
    /// All steps, in pipeline order.
    pub const ALL: [StepId; 10] = [
        StepId::Route,
        StepId::Extract,
        StepId::Structure,
        StepId::Key,
        StepId::Signature,
        StepId::Claims,
        StepId::Time,
        StepId::IssuerAudience,
        StepId::Binding,
        StepId::Policy,
    ];

    /// A short title for people.
    pub fn title(self) -> &'static str {
        match self {
            StepId::Route => "Route rule",
            StepId::Extract => "Find the token",
            StepId::Structure => "Token structure",
            StepId::Key => "Algorithm and key",
            StepId::Signature => "Signature",
            StepId::Claims => "Claims",
            StepId::Time => "Expiry and not-before",
            StepId::IssuerAudience => "Issuer and audience",
            StepId::Binding => "Token binding",
            StepId::Policy => "Rego policy",
        }
    }
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The check passed.
    Passed,
    /// The check failed; this step decided the denial.
    Failed,
    /// Not reached: an earlier step failed, or a bypass rule matched.
    Skipped,
}

/// Builds the step list: everything before the deciding step passed, the rest is skipped.
struct Steps(Vec<Step>);

impl Steps {
    fn push(&mut self, id: StepId, status: StepStatus, detail: impl Into<String>) {
        self.0.push(Step {
            id,
            title: id.title(),
            status,
            detail: detail.into(),
        });
    }

    fn pass(&mut self, id: StepId, detail: impl Into<String>) {
        self.push(id, StepStatus::Passed, detail);
    }

    /// Fails `id` and skips every later step.
    fn fail(mut self, id: StepId, detail: impl Into<String>) -> Vec<Step> {
        self.push(id, StepStatus::Failed, detail);
        self.skip_rest("an earlier step failed")
    }

    fn skip_rest(mut self, why: &str) -> Vec<Step> {
        let done = self.0.len();
        for id in StepId::ALL.into_iter().skip(done) {
            self.push(id, StepStatus::Skipped, why);
        }
        self.0
    }
}

impl Gate {
    /// Decides the request as [`Gate::check`] does and explains the decision: see
    /// [`Explanation`].
    pub fn explain(&self, request: &Request, now: i64) -> Explanation {
        let decision = self.check(request, now);
        let config = self.config();
        let route = self.matching_rule(request);
        let matched = route.clone().ok().flatten().map(|rule| RuleMatch {
            index: config
                .rules
                .iter()
                .position(|r| std::ptr::eq(r, rule))
                .unwrap_or_default(),
            name: rule.name.clone(),
            entrypoint: rule.entrypoint.clone(),
        });
        let mode = route
            .clone()
            .ok()
            .flatten()
            .and_then(|r| r.mode)
            .unwrap_or(config.mode);
        let mut explanation = Explanation {
            decision,
            rule: matched,
            mode,
            token: None,
            steps: Vec::new(),
            policy_entrypoint: None,
            policy_input: None,
        };
        let mut steps = Steps(Vec::new());
        if let Err(ambiguity) = route {
            explanation.steps = steps.fail(StepId::Route, ambiguity.to_string());
            return explanation;
        }
        let rule_text = match &explanation.rule {
            Some(RuleMatch {
                name: Some(name), ..
            }) => format!("rule `{name}` matched"),
            Some(rule) => format!("rules[{}] matched", rule.index),
            None => "no rule matched; the default mode applies".to_owned(),
        };
        steps.pass(
            StepId::Route,
            format!("{rule_text} (mode {})", mode.as_str()),
        );
        if mode == Mode::Bypass {
            explanation.steps = steps.skip_rest("bypassed: nothing is checked");
            return explanation;
        }

        let token_config = &config.token;
        let raw = match token::extract(request, token_config) {
            Ok(raw) => raw,
            Err(err) => {
                explanation.steps = steps.fail(StepId::Extract, err.to_string());
                return explanation;
            }
        };
        let prefix = token_config
            .prefix
            .as_deref()
            .map(|p| format!(" after the prefix `{}`", p.trim_end()))
            .unwrap_or_default();
        steps.pass(
            StepId::Extract,
            format!("found once in `{}`{prefix}", token_config.header),
        );
        explanation.token = Some(decode_untrusted(raw));

        let verified = match token::verify(raw, &[self.keys()], &self.verify, now) {
            Ok(token) => token,
            Err(err) => {
                explanation.steps = self.failed_verification(steps, raw, &err);
                return explanation;
            }
        };
        self.passed_verification(&mut steps, raw, &verified, now);

        let binding = match &config.binding {
            None => {
                steps.pass(StepId::Binding, "not configured");
                BindingOutcome::default()
            }
            Some(binding_config) => {
                match binding::check(binding_config, request, &verified.claims) {
                    Ok(outcome) => {
                        let detail = if outcome.checked {
                            format!(
                                "`{}` matches SHA-256 of {}",
                                binding_config.claim,
                                binding_config.headers.join(" + ")
                            )
                        } else {
                            format!("no `{}` claim; binding is optional", binding_config.claim)
                        };
                        steps.pass(StepId::Binding, detail);
                        outcome
                    }
                    Err((_, message)) => {
                        explanation.steps = steps.fail(StepId::Binding, message);
                        return explanation;
                    }
                }
            }
        };

        if config.policy.is_none() {
            steps.pass(
                StepId::Policy,
                "no policy configured: a verified token is enough",
            );
            explanation.steps = steps.0;
            return explanation;
        }
        let entrypoint = explanation
            .rule
            .as_ref()
            .and_then(|r| r.entrypoint.clone())
            .unwrap_or_else(|| self.policy_entrypoint().to_owned());
        let rule_name = explanation.rule.as_ref().and_then(|r| r.name.as_deref());
        explanation.policy_input =
            Some(self.policy_input(request, &verified, binding, now, rule_name));
        let outcome = &explanation.decision;
        let verdict_reasons = if outcome.reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", outcome.reasons.join(", "))
        };
        match outcome.reason {
            Reason::PolicyDenied => {
                let how = if outcome.allow {
                    "denied (monitor mode: reported, the request goes on)".to_owned()
                } else {
                    format!("denied with status {}", outcome.status)
                };
                explanation.steps = steps.fail(
                    StepId::Policy,
                    format!("`{entrypoint}` {how}{verdict_reasons}"),
                );
            }
            Reason::PolicyError => {
                let detail = outcome.detail.as_deref().unwrap_or("evaluation failed");
                explanation.steps =
                    steps.fail(StepId::Policy, format!("`{entrypoint}` failed: {detail}"));
            }
            _ => {
                steps.pass(
                    StepId::Policy,
                    format!("`{entrypoint}` allowed{verdict_reasons}"),
                );
                explanation.steps = steps.0;
            }
        }
        explanation.policy_entrypoint = Some(entrypoint);
        explanation
    }

    /// The steps of a token that failed `verify`: which one failed follows from the error.
    fn failed_verification(&self, mut steps: Steps, raw: &str, err: &TokenError) -> Vec<Step> {
        let failed = match err {
            TokenError::TooLong(..)
            | TokenError::Structure(_)
            | TokenError::Header(_)
            | TokenError::Unsupported(_) => StepId::Structure,
            TokenError::Json { part, .. } if *part == "header" => StepId::Structure,
            TokenError::Json { .. } | TokenError::Claims(_) => StepId::Claims,
            TokenError::AlgNotAllowed(_) | TokenError::KeyNotFound(_) => StepId::Key,
            TokenError::SignatureInvalid => StepId::Signature,
            TokenError::Expired | TokenError::NotYetValid | TokenError::NoExpiry => StepId::Time,
            TokenError::IssuerMismatch | TokenError::AudienceMismatch => StepId::IssuerAudience,
            // `extract` reports these, never `verify`.
            TokenError::Missing(_) | TokenError::Duplicated(_) | TokenError::MissingPrefix(_) => {
                StepId::Structure
            }
        };
        let header = decode_segment(raw, 0).ok();
        for id in [
            StepId::Structure,
            StepId::Key,
            StepId::Signature,
            StepId::Claims,
            StepId::Time,
        ] {
            if id == failed {
                break;
            }
            let detail = match id {
                StepId::Time => "within the validity window".to_owned(),
                _ => self.passed_detail(id, raw, header.as_ref()),
            };
            steps.pass(id, detail);
        }
        steps.fail(failed, err.to_string())
    }

    fn passed_verification(&self, steps: &mut Steps, raw: &str, token: &VerifiedToken, now: i64) {
        let header = decode_segment(raw, 0).ok();
        for id in [
            StepId::Structure,
            StepId::Key,
            StepId::Signature,
            StepId::Claims,
        ] {
            steps.pass(id, self.passed_detail(id, raw, header.as_ref()));
        }
        steps.pass(StepId::Time, self.time_detail(&token.claims, now));
        let issuer = match &self.verify.issuer {
            Some(issuer) => format!("iss is `{issuer}`"),
            None => "no issuer required".to_owned(),
        };
        let audience = match &self.verify.audiences {
            Some(audiences) => format!("aud holds one of {}", audiences.join(", ")),
            None => "no audience required".to_owned(),
        };
        steps.pass(StepId::IssuerAudience, format!("{issuer}; {audience}"));
    }

    /// What a passed step checked, for the steps up to the claims.
    fn passed_detail(&self, id: StepId, raw: &str, header: Option<&Value>) -> String {
        let field = |name: &str| {
            header
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
            StepId::Signature => "verified".to_owned(),
            _ => "strict JSON; registered claims well-typed".to_owned(),
        }
    }

    fn time_detail(&self, claims: &Map<String, Value>, now: i64) -> String {
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
}

/// Decodes the token's segments for display, verifying nothing.
fn decode_untrusted(raw: &str) -> DecodedToken {
    let mut problems = Vec::new();
    let mut json = |index: usize, part: &str| match decode_segment(raw, index) {
        Ok(value) => Some(value),
        Err(problem) => {
            problems.push(format!("{part}: {problem}"));
            None
        }
    };
    let header = json(0, "header");
    let claims = json(1, "claims");
    let signature_bytes = match raw.split('.').nth(2).map(Base64UrlUnpadded::decode_vec) {
        Some(Ok(bytes)) => Some(bytes.len()),
        Some(Err(_)) => {
            problems.push("signature: not base64url".to_owned());
            None
        }
        None => {
            problems.push("signature: missing".to_owned());
            None
        }
    };
    DecodedToken {
        raw: raw.to_owned(),
        header,
        claims,
        signature_bytes,
        problems,
    }
}

fn decode_segment(raw: &str, index: usize) -> Result<Value, String> {
    let segment = raw.split('.').nth(index).ok_or("missing")?;
    let bytes = Base64UrlUnpadded::decode_vec(segment).map_err(|_| "not base64url")?;
    serde_json::from_slice(&bytes).map_err(|err| format!("not JSON ({err})"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::mint::SigningKey;
    use serde_json::json;

    const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    const NOW: i64 = 1_700_000_000;
    const POLICY: &str = r#"package attestgate
decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}
deny contains "device_rooted" if input.token.claims.rooted
"#;

    fn gate(extra: Value) -> Gate {
        let mut config = json!({
            "keys": { "approov_secret": SECRET },
            "issuer": "attest.example",
            "binding": { "headers": ["authorization"], "claim": "pay" },
            "policy": { "modules": { "p.rego": POLICY } },
            "rules": [
                { "name": "health", "path": "/health", "mode": "bypass" },
                { "name": "watch", "path": "/watch", "mode": "monitor" },
            ],
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        Gate::from_json(&config.to_string()).unwrap()
    }

    fn token(claims: Value) -> String {
        SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap()
    }

    fn good_claims() -> Value {
        json!({"exp": NOW + 300, "iss": "attest.example", "rooted": false})
    }

    fn request(path: &str, token: Option<&str>) -> Request {
        let r = Request::new("GET", path).with_header("authorization", "Bearer abc");
        match token {
            Some(t) => r.with_header("approov-token", t),
            None => r,
        }
    }

    fn statuses(e: &Explanation) -> Vec<(StepId, StepStatus)> {
        e.steps.iter().map(|s| (s.id, s.status)).collect()
    }

    /// The step that failed, and that every step before it passed and every one after it
    /// was skipped.
    fn failed_step(e: &Explanation) -> Option<StepId> {
        assert_eq!(e.steps.len(), StepId::ALL.len());
        let ids: Vec<StepId> = e.steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, StepId::ALL);
        let failed = e.steps.iter().position(|s| s.status == StepStatus::Failed);
        if let Some(at) = failed {
            assert!(e.steps[..at].iter().all(|s| s.status == StepStatus::Passed));
            assert!(e.steps[at + 1..]
                .iter()
                .all(|s| s.status == StepStatus::Skipped));
        }
        failed.map(|at| e.steps[at].id)
    }

    #[test]
    fn an_allowed_request_passes_every_step_and_shows_the_input() {
        let g = gate(json!({}));
        let r = request("/api", Some(&token(good_claims())));
        let e = g.explain(&r, NOW);
        assert_eq!(e.decision, g.check(&r, NOW));
        assert!(e.decision.allow);
        assert_eq!(failed_step(&e), None);
        assert!(e.steps.iter().all(|s| s.status == StepStatus::Passed));
        let input = e.policy_input.unwrap();
        assert_eq!(input["token"]["claims"]["iss"], "attest.example");
        assert_eq!(input["request"]["headers"]["authorization"], "Bearer abc");
        assert_eq!(input["now"], NOW);
        assert_eq!(
            e.policy_entrypoint.as_deref(),
            Some("data.attestgate.decision")
        );
        let decoded = e.token.unwrap();
        assert_eq!(decoded.header.unwrap()["alg"], "HS256");
        assert_eq!(decoded.signature_bytes, Some(32));
        assert!(decoded.problems.is_empty());
    }

    #[test]
    fn the_failed_step_matches_the_decision_reason() {
        let g = gate(json!({}));
        let forged =
            SigningKey::hs256_from_base64_secret("b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q=")
                .unwrap()
                .sign(good_claims().as_object().unwrap())
                .unwrap();
        let mut rooted = good_claims();
        rooted["rooted"] = json!(true);
        let mut wrong_iss = good_claims();
        wrong_iss["iss"] = json!("other");
        let mut bad_pay = good_claims();
        bad_pay["pay"] = json!("AAAA");
        let mut bad_exp = good_claims();
        bad_exp["exp"] = json!("soon");
        let cases: Vec<(Option<String>, StepId, Reason)> = vec![
            (None, StepId::Extract, Reason::TokenMissing),
            (
                Some("a.b".into()),
                StepId::Structure,
                Reason::TokenMalformed,
            ),
            (Some(forged), StepId::Signature, Reason::SignatureInvalid),
            (
                Some(token(json!({"exp": NOW - 600, "iss": "attest.example"}))),
                StepId::Time,
                Reason::TokenExpired,
            ),
            (
                Some(token(wrong_iss)),
                StepId::IssuerAudience,
                Reason::IssuerMismatch,
            ),
            (
                Some(token(bad_pay)),
                StepId::Binding,
                Reason::BindingMismatch,
            ),
            (Some(token(bad_exp)), StepId::Claims, Reason::TokenMalformed),
            (Some(token(rooted)), StepId::Policy, Reason::PolicyDenied),
        ];
        for (token, step, reason) in cases {
            let r = request("/api", token.as_deref());
            let e = g.explain(&r, NOW);
            assert_eq!(e.decision, g.check(&r, NOW), "{step:?}");
            assert_eq!(e.decision.reason, reason, "{step:?}");
            assert_eq!(failed_step(&e), Some(step), "{:?}", statuses(&e));
            assert_eq!(e.policy_input.is_some(), step == StepId::Policy, "{step:?}");
        }
        let mut rooted = good_claims();
        rooted["rooted"] = json!(true);
        let e = g.explain(&request("/api", Some(&token(rooted))), NOW);
        let policy = &e.steps[9].detail;
        assert!(
            policy.contains("denied with status 403: device_rooted"),
            "{policy}"
        );
        let e = g.explain(&request("/api", Some(&token(good_claims()))), NOW + 3_600);
        assert_eq!(e.steps[6].detail, "token expired");
    }

    #[test]
    fn key_step_fails_on_an_unknown_kid_and_the_claims_are_still_decoded() {
        let g = gate(json!({}));
        let t = SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .with_kid(Some("nope".into()))
            .sign(good_claims().as_object().unwrap())
            .unwrap();
        let e = g.explain(&request("/api", Some(&t)), NOW);
        assert_eq!(e.decision.reason, Reason::KeyNotFound);
        assert_eq!(failed_step(&e), Some(StepId::Key));
        let decoded = e.token.unwrap();
        assert_eq!(decoded.header.unwrap()["kid"], "nope");
        assert_eq!(decoded.claims.unwrap()["iss"], "attest.example");
    }

    #[test]
    fn bypass_skips_everything_and_monitor_reports_the_failed_step() {
        let g = gate(json!({}));
        let e = g.explain(&request("/health", None), NOW);
        assert_eq!(e.decision.reason, Reason::Bypassed);
        assert_eq!(e.mode, Mode::Bypass);
        assert_eq!(e.rule.as_ref().unwrap().name.as_deref(), Some("health"));
        assert_eq!(e.steps[0].status, StepStatus::Passed);
        assert!(e.steps[1..].iter().all(|s| s.status == StepStatus::Skipped));

        let mut rooted = good_claims();
        rooted["rooted"] = json!(true);
        let e = g.explain(&request("/watch", Some(&token(rooted))), NOW);
        assert!(e.decision.allow);
        assert_eq!(e.mode, Mode::Monitor);
        assert_eq!(failed_step(&e), Some(StepId::Policy));
        let policy = e.steps.last().unwrap();
        assert!(policy.detail.contains("monitor mode"), "{}", policy.detail);
        assert!(policy.detail.contains("device_rooted"), "{}", policy.detail);
    }

    #[test]
    fn undecodable_segments_are_reported_not_fatal() {
        let d = decode_untrusted("eyJhbGciOiJIUzI1NiJ9.%%%");
        assert_eq!(d.header.unwrap()["alg"], "HS256");
        assert_eq!(d.claims, None);
        assert_eq!(d.signature_bytes, None);
        assert_eq!(d.problems, ["claims: not base64url", "signature: missing"]);
    }

    #[test]
    fn without_policy_or_binding_those_steps_pass_as_not_configured() {
        let g = Gate::from_json(&json!({"keys": {"approov_secret": SECRET}}).to_string()).unwrap();
        let e = g.explain(&request("/", Some(&token(good_claims()))), NOW);
        assert!(e.decision.allow);
        assert_eq!(failed_step(&e), None);
        assert_eq!(e.policy_input, None);
        assert!(e.steps[8].detail.contains("not configured"));
        assert!(e.steps[9].detail.contains("no policy"));
    }
}
