//! Why the gate decided what it did, step by step: for the playground and for debugging.
//!
//! [`Gate::explain`] decides the request exactly as [`Gate::check`] does and, next to it, shows
//! the work: the token's header and claims decoded **without** verification, every step of
//! the pipeline with its outcome, and the Rego input the policy saw. It is an observer of the
//! one pipeline `check` runs (each step reports to it as it ends), so it cannot tell a
//! different story. Hosts on the request path call `check`; this does more work and returns
//! untrusted data.

use serde::Serialize;
use serde_json::Value;

use crate::config::Mode;
use crate::decision::{Decision, Reason};
use crate::error::TokenError;
use crate::gate::{Direct, Gate, Hooks};
use crate::input::PolicyInput;
use crate::keys::KeySet;
use crate::policy::{Policy, PolicyOutcome};
use crate::remote::Dynamic;
use crate::request::Request;
use crate::steps::{StepId, StepStatus};
use crate::token::{self, VerifiedToken};

/// The decision with its working, from [`Gate::explain`]: the decision exactly as
/// [`Gate::check`] returns it, the token's header and claims decoded **without** verification,
/// every step of the pipeline with its outcome, and the Rego input the policy saw. For the
/// playground and for debugging: hosts on the request path call `check`, which does less work
/// and returns no untrusted data.
///
/// ```
/// use attestgate_policy::{Gate, Request, StepId, StepStatus};
/// use attestgate_testkit::SigningKey;
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
    /// Every step of the pipeline ([`StepId::ALL`]): those that ran in the order they ran (all
    /// passed but the last, when it failed), then those never reached, skipped.
    pub steps: Vec<Step>,
    /// The Rego rule evaluated, when the policy ran.
    pub policy_entrypoint: Option<String>,
    /// The Rego input document, when the policy ran.
    pub policy_input: Option<Value>,
}

/// The route rule that matched.
///
/// ```
/// use attestgate_policy::{Gate, Request};
/// let gate = Gate::from_json(r#"{
///     "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
///     "rules": [ { "path": "/health", "mode": "bypass" }, { "name": "api", "path_prefix": "/api" } ]
/// }"#).unwrap();
/// let rule = gate.explain(&Request::new("GET", "/api/x"), 1_700_000_000).rule.unwrap();
/// assert_eq!((rule.index, rule.name.as_deref()), (1, Some("api")));
/// ```
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
///
/// ```
/// use attestgate_policy::{Gate, Request};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let request = Request::new("GET", "/").with_header("approov-token", "eyJhbGciOiJIUzI1NiJ9.e30.!!");
/// let token = gate.explain(&request, 1_700_000_000).token.unwrap();
/// assert_eq!(token.header.unwrap()["alg"], "HS256");
/// assert_eq!(token.claims, Some(serde_json::json!({})));
/// assert_eq!((token.signature_bytes, token.problems.len()), (None, 1)); // `!!` is not base64url
/// ```
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
///
/// ```
/// use attestgate_policy::{Gate, Request, StepId, StepStatus};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let explained = gate.explain(&Request::new("GET", "/"), 1_700_000_000);
/// let extract = explained.steps.iter().find(|s| s.id == StepId::Extract).unwrap();
/// assert_eq!((extract.title, extract.status), ("Find the token", StepStatus::Failed));
/// assert_eq!(explained.steps.len(), StepId::ALL.len());
/// ```
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

/// The pipeline's hooks for explain: verification and evaluation as the plain check does
/// them (its [`Direct`] hooks), every step recorded.
struct Recorder<'g> {
    direct: Direct<'g>,
    steps: Vec<Step>,
    policy: Option<(String, Value)>,
}

impl Hooks for Recorder<'_> {
    fn verify(&mut self, raw: &str, keys: &[&KeySet]) -> Result<VerifiedToken, TokenError> {
        self.direct.verify(raw, keys)
    }

    fn evaluate(
        &mut self,
        policy: &Policy,
        entrypoint: &str,
        input: &mut PolicyInput<'_>,
    ) -> Result<PolicyOutcome, String> {
        self.direct.evaluate(policy, entrypoint, input)
    }

    fn step(&mut self, id: StepId, status: StepStatus, detail: &dyn Fn() -> String) {
        self.steps.push(Step {
            id,
            title: id.title(),
            status,
            detail: detail(),
        });
    }

    fn policy_input(&mut self, entrypoint: &str, input: &mut PolicyInput<'_>) {
        self.policy = Some((entrypoint.to_owned(), input.document().clone()));
    }
}

impl Gate {
    /// Decides the request as [`Gate::check`] does and explains the decision: see
    /// [`Explanation`].
    ///
    /// ```
    /// use attestgate_policy::{Gate, Reason, Request};
    /// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// let request = Request::new("GET", "/");
    /// let explained = gate.explain(&request, 1_700_000_000);
    /// assert_eq!(explained.decision.reason, Reason::TokenMissing);
    /// assert_eq!(explained.decision, gate.check(&request, 1_700_000_000));
    /// assert!(explained.token.is_none() && explained.policy_input.is_none());
    /// ```
    pub fn explain(&self, request: &Request, now: i64) -> Explanation {
        let mut recorder = Recorder {
            direct: Direct { gate: self, now },
            steps: Vec::new(),
            policy: None,
        };
        let route = self.matching_rule(request);
        let matched = route.clone().ok().flatten();
        let decision =
            self.check_hooked(request, route, now, &mut Dynamic::default(), &mut recorder);
        let config = self.config();
        let rule = matched.map(|rule| RuleMatch {
            index: config
                .rules
                .iter()
                .position(|r| std::ptr::eq(r, rule))
                .unwrap_or_default(),
            name: rule.name.clone(),
            entrypoint: rule.entrypoint.clone(),
        });
        let mode = matched.and_then(|r| r.mode).unwrap_or(config.mode);
        // Steps never reached: skipped, after the ones that ran.
        let mut steps = recorder.steps;
        let why = if mode == Mode::Bypass && decision.reason == Reason::Bypassed {
            "bypassed: nothing is checked"
        } else {
            "an earlier step failed"
        };
        for id in StepId::ALL {
            if !steps.iter().any(|step| step.id == id) {
                steps.push(Step {
                    id,
                    title: id.title(),
                    status: StepStatus::Skipped,
                    detail: why.to_owned(),
                });
            }
        }
        let token = (mode != Mode::Bypass)
            .then(|| token::extract(request, &config.token).ok())
            .flatten()
            .map(decode_untrusted);
        let (policy_entrypoint, policy_input) = recorder.policy.unzip();
        Explanation {
            decision,
            rule,
            mode,
            token,
            steps,
            policy_entrypoint,
            policy_input,
        }
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
    let signature_bytes = match raw.split('.').nth(2).map(token::segment_bytes) {
        Some(Some(bytes)) => Some(bytes.len()),
        Some(None) => {
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
    let bytes = token::segment_bytes(segment).ok_or("not base64url")?;
    serde_json::from_slice(&bytes).map_err(|err| format!("not JSON ({err})"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use attestgate_testkit::SigningKey;
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
    /// was skipped (but the mode, which monitor mode passes after a failure).
    fn failed_step(e: &Explanation) -> Option<StepId> {
        assert_eq!(e.steps.len(), StepId::ALL.len());
        let ids: Vec<StepId> = e.steps.iter().map(|s| s.id).collect();
        assert_eq!(ids, StepId::ALL);
        let failed = e.steps.iter().position(|s| s.status == StepStatus::Failed);
        if let Some(at) = failed {
            assert!(e.steps[..at].iter().all(|s| s.status == StepStatus::Passed));
            assert!(e.steps[at + 1..]
                .iter()
                .all(|s| s.status == StepStatus::Skipped
                    || (s.id == StepId::Mode && e.mode == Mode::Monitor)));
        }
        failed.map(|at| e.steps[at].id)
    }

    fn detail(e: &Explanation, id: StepId) -> &str {
        &e.steps.iter().find(|s| s.id == id).unwrap().detail
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
        let policy = detail(&e, StepId::Policy);
        assert!(
            policy.contains("denied with status 403: device_rooted"),
            "{policy}"
        );
        let e = g.explain(&request("/api", Some(&token(good_claims()))), NOW + 3_600);
        assert_eq!(detail(&e, StepId::Time), "token expired");
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
        let policy = detail(&e, StepId::Policy);
        assert!(policy.contains("monitor mode"), "{policy}");
        assert!(policy.contains("device_rooted"), "{policy}");
        assert!(detail(&e, StepId::Mode).starts_with("monitor"));
    }

    /// Issue #16: explain reported "every step passed" for these while check denied.
    #[test]
    fn the_denylist_and_request_signatures_fail_their_own_steps() {
        let g = gate(json!({
            "denylist": { "devices": ["stolen"] },
            "rules": [{ "path_prefix": "/pay", "signature": { "mode": "required" } }],
        }));
        let mut stolen = good_claims();
        stolen["did"] = json!("stolen");
        let r = request("/api", Some(&token(stolen)));
        let e = g.explain(&r, NOW);
        assert_eq!(e.decision, g.check(&r, NOW));
        assert_eq!(e.decision.reason, Reason::DeviceDenied);
        assert_eq!(failed_step(&e), Some(StepId::Denylist));

        let r = request("/pay", Some(&token(good_claims())));
        let e = g.explain(&r, NOW);
        assert_eq!(e.decision, g.check(&r, NOW));
        assert_eq!(e.decision.reason, Reason::RequestSignatureMissing);
        assert_eq!(failed_step(&e), Some(StepId::RequestSignature));
        assert_eq!(e.policy_input, None);
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
        assert!(detail(&e, StepId::Binding).contains("not configured"));
        assert!(detail(&e, StepId::Policy).contains("no policy"));
    }
}
