//! The steps of the gate's one decision pipeline ([`crate::Gate::check`]), named so that every
//! view of a decision (the plain check, the decision cache, [`crate::Gate::explain`]) observes
//! the same sequence.

use serde::Serialize;

use crate::decision::Reason;

/// The steps of [`crate::Gate::check`], in the order a request that passes them all meets them.
///
/// ```
/// use attestgate_policy::StepId;
/// assert_eq!(StepId::ALL.first(), Some(&StepId::Route));
/// // Serialized in snake case, as `Gate::explain` reports them.
/// assert_eq!(serde_json::to_value(StepId::RateLimit).unwrap(), "rate_limit");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepId {
    /// The first matching route rule and its mode, under every reading of the path.
    Route,
    /// The token header: present once, with its prefix.
    Extract,
    /// Size, base64url alphabet, three segments, strict header JSON, no `crit`/`b64`.
    Structure,
    /// The `alg` and `kid` select a key pinned to that algorithm.
    Key,
    /// The signature verifies (or, in hybrid mode, the gateway verified it).
    Signature,
    /// The claims are strict JSON with well-typed registered claims.
    Claims,
    /// `exp` and `nbf` against `now`, with the leeway.
    Time,
    /// `iss` and `aud` against the config.
    IssuerAudience,
    /// Hybrid mode: the gateway's verifier left its record for this very token.
    HostRecord,
    /// The device id against the denylist.
    Denylist,
    /// The token binding claim against the bound headers.
    Binding,
    /// RFC 9421 request signatures (install, account) and the signed body's size.
    RequestSignature,
    /// The route's per-device rate limit.
    RateLimit,
    /// The Rego policy's decision.
    Policy,
    /// Enforce, or monitor (a denial reported, the request let through).
    Mode,
}

impl StepId {
    /// All steps, in pipeline order.
    ///
    /// ```
    /// use attestgate_policy::StepId;
    /// assert_eq!(StepId::ALL.len(), 15);
    /// assert_eq!(StepId::ALL.last(), Some(&StepId::Mode));
    /// ```
    pub const ALL: [StepId; 15] = [
        StepId::Route,
        StepId::Extract,
        StepId::Structure,
        StepId::Key,
        StepId::Signature,
        StepId::Claims,
        StepId::Time,
        StepId::IssuerAudience,
        StepId::HostRecord,
        StepId::Denylist,
        StepId::Binding,
        StepId::RequestSignature,
        StepId::RateLimit,
        StepId::Policy,
        StepId::Mode,
    ];

    /// The steps of verifying the token itself, in order (`TokenError::step` names the one
    /// that refused it).
    pub(crate) const TOKEN: [StepId; 6] = [
        StepId::Structure,
        StepId::Key,
        StepId::Signature,
        StepId::Claims,
        StepId::Time,
        StepId::IssuerAudience,
    ];

    /// A short title for people.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::StepId::Denylist.title(), "Device denylist");
    /// ```
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
            StepId::HostRecord => "Gateway verification record",
            StepId::Denylist => "Device denylist",
            StepId::Binding => "Token binding",
            StepId::RequestSignature => "Request signature",
            StepId::RateLimit => "Rate limit",
            StepId::Policy => "Rego policy",
            StepId::Mode => "Mode",
        }
    }

    /// The step a denial with this reason comes from; `None` for reasons no step gives
    /// (allowed, bypassed, and what only hosts produce).
    ///
    /// ```
    /// use attestgate_policy::{Reason, StepId};
    /// assert_eq!(StepId::of_reason(Reason::DeviceDenied), Some(StepId::Denylist));
    /// assert_eq!(StepId::of_reason(Reason::Allowed), None);
    /// ```
    pub fn of_reason(reason: Reason) -> Option<StepId> {
        Some(match reason {
            Reason::PathAmbiguous | Reason::PathInvalid => StepId::Route,
            Reason::TokenMissing => StepId::Extract,
            Reason::KeysUnavailable | Reason::AlgNotAllowed | Reason::KeyNotFound => StepId::Key,
            Reason::SignatureInvalid => StepId::Signature,
            Reason::TokenExpired | Reason::TokenNotYetValid => StepId::Time,
            Reason::IssuerMismatch | Reason::AudienceMismatch => StepId::IssuerAudience,
            Reason::DeviceDenied => StepId::Denylist,
            Reason::BindingMissing | Reason::BindingMismatch => StepId::Binding,
            Reason::RequestSignatureMissing
            | Reason::RequestSignatureInvalid
            | Reason::BodyTooLarge => StepId::RequestSignature,
            Reason::RateLimited => StepId::RateLimit,
            Reason::PolicyDenied | Reason::PolicyError => StepId::Policy,
            // Extract (a repeated header), Structure or Claims: the error says which.
            Reason::TokenMalformed => return None,
            _ => return None,
        })
    }
}

/// How a step went.
///
/// ```
/// use attestgate_policy::{Gate, Request, StepId, StepStatus};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let explained = gate.explain(&Request::new("GET", "/api"), 1_700_000_000);
/// let status = |id| explained.steps.iter().find(|s| s.id == id).map(|s| s.status);
/// assert_eq!(status(StepId::Route), Some(StepStatus::Passed));
/// assert_eq!(status(StepId::Extract), Some(StepStatus::Failed)); // no token
/// assert_eq!(status(StepId::Policy), Some(StepStatus::Skipped));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The check passed (or has nothing to check: "not configured").
    Passed,
    /// The check failed; this step decided the denial.
    Failed,
    /// Not reached: an earlier step failed, or a bypass rule matched.
    Skipped,
}
