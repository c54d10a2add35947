//! What the gate decided, in a form every host can act on and the CLI prints as JSON.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Mode;

/// A stable, machine-readable code for a decision. These strings are public API: clients,
/// dashboards and metrics key on them.
///
/// ```
/// use attestgate_policy::Reason;
/// let reason: Reason = serde_json::from_str(r#""device_denied""#).unwrap();
/// assert_eq!(reason, Reason::DeviceDenied);
/// assert_eq!(reason.to_string(), "device_denied");
/// assert!(Reason::ALL.contains(&reason));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Verified and allowed by the policy.
    Allowed,
    /// A bypass rule matched; nothing was checked.
    Bypassed,
    /// No token in the request.
    TokenMissing,
    /// The token is not a well-formed compact JWS we accept.
    TokenMalformed,
    /// The token's algorithm is not one a configured key is pinned to.
    AlgNotAllowed,
    /// No configured key has the token's `kid`.
    KeyNotFound,
    /// The signature does not verify.
    SignatureInvalid,
    /// `exp` has passed (beyond the leeway).
    TokenExpired,
    /// `nbf` is still ahead (beyond the leeway).
    TokenNotYetValid,
    /// `iss` differs from the configured issuer.
    IssuerMismatch,
    /// `aud` holds none of the configured audiences.
    AudienceMismatch,
    /// Binding required but the token has no binding claim.
    BindingMissing,
    /// The binding claim does not match the bound headers.
    BindingMismatch,
    /// An install-key request signature is required but the request carries none.
    RequestSignatureMissing,
    /// The request signature (RFC 9421) failed: malformed, stale, not covering what it must,
    /// or not made by the token's install key.
    RequestSignatureInvalid,
    /// The policy denied the request.
    PolicyDenied,
    /// The policy failed to evaluate or returned something unusable.
    PolicyError,
    /// The gate itself failed; used by hosts, never by the core.
    InternalError,
    /// Keys come only from a remote JWKS, and none has been fetched yet.
    KeysUnavailable,
    /// The token's device is on the denylist.
    DeviceDenied,
    /// The device (or client address) is over its rate limit.
    RateLimited,
    /// The path reads differently under common upstream conventions (encoded slashes,
    /// backslashes, `;` parameters, dot segments), and the readings fall under different
    /// route rules: which rule applies cannot be told, so the request is refused (400).
    PathAmbiguous,
    /// The path holds a control character (a NUL, a line break), raw, percent-encoded or
    /// encoded twice: no upstream has a use for one, and servers disagree on where it ends the
    /// path, so the request is refused (400), in every mode.
    PathInvalid,
    /// The request body must be read for its signed `content-digest`, and it is longer than
    /// the route's `max_body_bytes` (413).
    BodyTooLarge,
    /// The host could not load the config; every request on that route is refused (500).
    /// Used by hosts that cannot refuse a config at load (ngx_wasm_module), never by the core.
    ConfigInvalid,
    /// A header the gate strips or sets came more than once, and the host cannot remove the
    /// extra copies (ngx_wasm_module), so the request is refused (400). Never by the core.
    DuplicateHeader,
    /// The request must be decided on its body, and it has no `Content-Length`; the host
    /// cannot see the end of a chunked body it never gets (ngx_wasm_module) (411). Never by
    /// the core.
    LengthRequired,
}

impl Reason {
    /// All reasons, for metrics that pre-register one counter each.
    ///
    /// ```
    /// use attestgate_policy::Reason;
    /// let counters: Vec<String> = Reason::ALL.iter().map(|r| format!("attestgate.{r}")).collect();
    /// assert_eq!(counters.first().map(String::as_str), Some("attestgate.allowed"));
    /// ```
    pub const ALL: [Reason; 27] = [
        Reason::Allowed,
        Reason::Bypassed,
        Reason::TokenMissing,
        Reason::TokenMalformed,
        Reason::AlgNotAllowed,
        Reason::KeyNotFound,
        Reason::SignatureInvalid,
        Reason::TokenExpired,
        Reason::TokenNotYetValid,
        Reason::IssuerMismatch,
        Reason::AudienceMismatch,
        Reason::BindingMissing,
        Reason::BindingMismatch,
        Reason::RequestSignatureMissing,
        Reason::RequestSignatureInvalid,
        Reason::PolicyDenied,
        Reason::PolicyError,
        Reason::InternalError,
        Reason::KeysUnavailable,
        Reason::DeviceDenied,
        Reason::RateLimited,
        Reason::PathAmbiguous,
        Reason::PathInvalid,
        Reason::BodyTooLarge,
        Reason::ConfigInvalid,
        Reason::DuplicateHeader,
        Reason::LengthRequired,
    ];

    /// The wire form, e.g. `"token_expired"`.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::Reason::TokenExpired.as_str(), "token_expired");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::Bypassed => "bypassed",
            Reason::TokenMissing => "token_missing",
            Reason::TokenMalformed => "token_malformed",
            Reason::AlgNotAllowed => "alg_not_allowed",
            Reason::KeyNotFound => "key_not_found",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::TokenExpired => "token_expired",
            Reason::TokenNotYetValid => "token_not_yet_valid",
            Reason::IssuerMismatch => "issuer_mismatch",
            Reason::AudienceMismatch => "audience_mismatch",
            Reason::BindingMissing => "binding_missing",
            Reason::BindingMismatch => "binding_mismatch",
            Reason::RequestSignatureMissing => "request_signature_missing",
            Reason::RequestSignatureInvalid => "request_signature_invalid",
            Reason::PolicyDenied => "policy_denied",
            Reason::PolicyError => "policy_error",
            Reason::InternalError => "internal_error",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::DeviceDenied => "device_denied",
            Reason::RateLimited => "rate_limited",
            Reason::PathAmbiguous => "path_ambiguous",
            Reason::PathInvalid => "path_invalid",
            Reason::BodyTooLarge => "body_too_large",
            Reason::ConfigInvalid => "config_invalid",
            Reason::DuplicateHeader => "duplicate_header",
            Reason::LengthRequired => "length_required",
        }
    }

    /// The HTTP status a denial with this reason gets unless the policy chose one:
    /// 401 when the token fails, 403 when the policy refuses, 500 for the gate's own faults.
    ///
    /// ```
    /// use attestgate_policy::Reason;
    /// assert_eq!(Reason::TokenExpired.default_status(), 401);
    /// assert_eq!(Reason::PolicyDenied.default_status(), 403);
    /// assert_eq!(Reason::RateLimited.default_status(), 429);
    /// ```
    pub fn default_status(self) -> u16 {
        match self {
            Reason::Allowed | Reason::Bypassed => 200,
            Reason::PolicyDenied | Reason::PolicyError | Reason::DeviceDenied => 403,
            Reason::RateLimited => 429,
            Reason::PathAmbiguous | Reason::PathInvalid | Reason::DuplicateHeader => 400,
            Reason::LengthRequired => 411,
            Reason::BodyTooLarge => 413,
            Reason::InternalError | Reason::ConfigInvalid => 500,
            Reason::KeysUnavailable => 503,
            _ => 401,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the request would pass, before monitor mode has its say.
///
/// ```
/// use attestgate_policy::{Gate, Mode, Request, Verdict};
/// let gate = Gate::from_json(r#"{
///     "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
///     "mode": "monitor"
/// }"#).unwrap();
/// // No token: monitor mode lets the request through but records that it would be refused.
/// let decision = gate.check(&Request::new("GET", "/api"), 1_700_000_000);
/// assert_eq!((decision.allow, decision.verdict, decision.mode), (true, Verdict::Deny, Mode::Monitor));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Would pass.
    Allow,
    /// Would be refused.
    Deny,
}

/// The outcome of [`crate::Gate::check`].
///
/// `allow` is what the host must do. In monitor mode a failing request has `allow: true` and
/// `verdict: deny`, with the would-be `reason` and `reasons`, so it can be reported.
///
/// ```
/// use attestgate_policy::{Gate, Reason, Request, Verdict};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let decision = gate.check(&Request::new("GET", "/api"), 1_700_000_000);
/// assert!(!decision.allow);
/// assert_eq!((decision.status, decision.reason, decision.verdict), (401, Reason::TokenMissing, Verdict::Deny));
/// // The CLI prints it as JSON; empty and absent members are left out.
/// let json = serde_json::to_value(&decision).unwrap();
/// assert_eq!(json["reason"], "token_missing");
/// assert!(json.get("claims").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Let the request through.
    pub allow: bool,
    /// HTTP status: 200 when allowed, else the status to answer with.
    pub status: u16,
    /// Stable code for the outcome.
    pub reason: Reason,
    /// Human-readable details; policy reasons for policy denials.
    pub reasons: Vec<String>,
    /// Mode that applied.
    pub mode: Mode,
    /// The decision before monitor mode.
    pub verdict: Verdict,
    /// Name of the route rule that matched, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Headers to add: to the upstream request when allowed, to the local reply when denied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Verified claims, present once the signature and time checks passed. Shared, so a
    /// cached decision is handed out without copying them.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "shared_claims"
    )]
    pub claims: Option<std::sync::Arc<serde_json::Map<String, serde_json::Value>>>,
    /// Diagnostic detail for logs (never sent to clients), such as a Rego error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Decision {
    pub(crate) fn allowed(mode: Mode, reason: Reason) -> Decision {
        Decision {
            allow: true,
            status: 200,
            reason,
            reasons: Vec::new(),
            mode,
            verdict: Verdict::Allow,
            rule: None,
            headers: BTreeMap::new(),
            claims: None,
            detail: None,
        }
    }

    pub(crate) fn denied(mode: Mode, reason: Reason, reasons: Vec<String>) -> Decision {
        Decision {
            allow: false,
            status: reason.default_status(),
            reason,
            reasons,
            mode,
            verdict: Verdict::Deny,
            rule: None,
            headers: BTreeMap::new(),
            claims: None,
            detail: None,
        }
    }

    /// The JSON body a host sends with a denial: `{"error": reason, "reasons": [...]}`.
    ///
    /// ```
    /// # use attestgate_policy::{Gate, Request};
    /// # let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// let decision = gate.check(&Request::new("GET", "/"), 1_700_000_000);
    /// assert_eq!(decision.error_body(), r#"{"error":"token_missing","reasons":["no token in header `approov-token`"]}"#);
    /// ```
    pub fn error_body(&self) -> String {
        serde_json::json!({ "error": self.reason.as_str(), "reasons": self.reasons }).to_string()
    }
}

/// (De)serializes shared claims as the object they hold.
mod shared_claims {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::{Map, Value};

    pub(super) fn serialize<S: Serializer>(
        claims: &Option<Arc<Map<String, Value>>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        claims.as_deref().serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Arc<Map<String, Value>>>, D::Error> {
        Ok(Option::<Map<String, Value>>::deserialize(deserializer)?.map(Arc::new))
    }
}
