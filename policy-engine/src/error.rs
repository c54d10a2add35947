//! One error enum per boundary: loading a config, and verifying a token.

use crate::capability::{Capability, Host};
use crate::decision::Reason;
use crate::json::StrictJsonError;

/// Why a configuration was refused. Hosts log this and refuse to start.
///
/// ```
/// use attestgate_policy::{ConfigError, Gate};
/// let error = Gate::from_json(r#"{ "keys": {} }"#).unwrap_err();
/// assert!(matches!(error, ConfigError::NoKeys));
/// // An unknown field fails the load, and the message names it.
/// let error = Gate::from_json(r#"{ "kyes": {} }"#).unwrap_err();
/// assert!(matches!(error, ConfigError::Parse(_)));
/// assert!(error.to_string().contains("kyes"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not valid JSON/YAML, a wrong type, or an unknown field (serde names it).
    #[error("invalid config: {0}")]
    Parse(String),
    /// A key could not be loaded.
    #[error("invalid key {key}: {message}")]
    Key {
        /// Which key: `keys[1] (kid `a`)`, or `approov_secret`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// No key at all: every token would be refused.
    #[error(
        "no verification keys configured: set `keys.keys`, `keys.approov_secret`, `keys.remote` \
         or `host_verification`"
    )]
    NoKeys,
    /// The Rego policy failed to compile.
    #[error("invalid policy: {0}")]
    Policy(String),
    /// A field needs something of its host that this host does not have (a fetched JWKS
    /// where nothing fetches, rate limits without shared state, ...): the host would accept
    /// the field and not enforce it. [`crate::capability`] decides; the message names the
    /// field, the host and the hosts that have what it needs.
    ///
    /// ```
    /// use attestgate_policy::capability::{Capability, Host};
    /// use attestgate_policy::{ConfigError, Gate};
    /// let config = r#"{ "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
    ///                   "rules": [{ "rate_limit": { "requests": 1, "per_seconds": 600 } }] }"#;
    /// let error = Gate::from_json_for(config, Host::Native).unwrap_err();
    /// let ConfigError::Unsupported { field, host, capability } = &error else { panic!() };
    /// assert_eq!((field.as_str(), *host, *capability),
    ///            ("rules[0].rate_limit", Host::Native, Capability::SharedState));
    /// assert!(error.to_string().starts_with("unsupported `rules[0].rate_limit`"));
    /// ```
    #[error(
        "unsupported `{field}` ({what}): it needs {needs}, which {host} does not have; leave it \
         out, or run the gate where it is enforced ({hosts})",
        what = crate::capability::NEEDS.iter()
            .find(|need| field_matches(need.field, field))
            .map_or("", |need| need.what),
        needs = capability.description(),
        hosts = crate::capability::hosts_with(*capability),
    )]
    Unsupported {
        /// The field in this config: `keys.remote`, `rules[2].rate_limit`.
        field: String,
        /// The host that refuses it.
        host: Host,
        /// What the field needs and the host lacks.
        capability: Capability,
    },
    /// A field has a value that parses but makes no sense.
    #[error("invalid `{field}`: {message}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// Whether a config's field (`rules[2].rate_limit`) is the schema path `rules[].rate_limit`.
fn field_matches(schema_path: &str, field: &str) -> bool {
    let mut plain = String::with_capacity(field.len());
    let mut in_index = false;
    for c in field.chars() {
        match c {
            '[' => {
                in_index = true;
                plain.push('[');
            }
            ']' => {
                in_index = false;
                plain.push(']');
            }
            _ if in_index => {}
            _ => plain.push(c),
        }
    }
    plain == schema_path
}

/// Why a token failed verification. Each maps to a stable [`Reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum TokenError {
    /// No token header in the request.
    #[error("no token in header `{0}`")]
    Missing(String),
    /// The token header appears more than once.
    #[error("token header `{0}` appears more than once")]
    Duplicated(String),
    /// The header does not start with the configured prefix.
    #[error("token header lacks the `{0}` prefix")]
    MissingPrefix(String),
    /// Longer than the configured maximum.
    #[error("token is {0} bytes, more than the {1} allowed")]
    TooLong(usize, usize),
    /// Not three base64url segments.
    #[error("token is not a compact jws: {0}")]
    Structure(&'static str),
    /// Header or claims are not acceptable JSON.
    #[error("token {part} is not acceptable json: {error}")]
    Json {
        /// `header` or `claims`.
        part: &'static str,
        /// The problem.
        error: StrictJsonError,
    },
    /// The header failed to parse.
    #[error("token header is malformed: {0}")]
    Header(String),
    /// The header marks something critical we do not implement (`crit`, `b64`).
    #[error("token header uses unsupported `{0}`")]
    Unsupported(&'static str),
    /// Claims failed to parse (e.g. `exp` is not a number).
    #[error("token claims are malformed: {0}")]
    Claims(String),
    /// The token has no `exp` and one is required.
    #[error("token has no `exp` claim")]
    NoExpiry,
    /// `alg` is `none`, unknown, or no configured key is pinned to it.
    #[error("algorithm `{0}` is not allowed")]
    AlgNotAllowed(String),
    /// No key has the token's `kid`.
    #[error("no key with kid `{0}`")]
    KeyNotFound(String),
    /// The signature failed.
    #[error("signature does not verify")]
    SignatureInvalid,
    /// `exp` is past.
    #[error("token expired")]
    Expired,
    /// `nbf` is ahead.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` differs.
    #[error("issuer does not match")]
    IssuerMismatch,
    /// `aud` does not intersect the configured audiences.
    #[error("audience does not match")]
    AudienceMismatch,
}

impl TokenError {
    /// The pipeline step that refuses a token with this error.
    pub(crate) fn step(&self) -> crate::steps::StepId {
        use crate::steps::StepId;
        match self {
            TokenError::Missing(_) | TokenError::Duplicated(_) | TokenError::MissingPrefix(_) => {
                StepId::Extract
            }
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
        }
    }

    /// The stable reason code for this error.
    pub(crate) fn reason(&self) -> Reason {
        match self {
            TokenError::Missing(_) => Reason::TokenMissing,
            TokenError::AlgNotAllowed(_) => Reason::AlgNotAllowed,
            TokenError::KeyNotFound(_) => Reason::KeyNotFound,
            TokenError::SignatureInvalid => Reason::SignatureInvalid,
            TokenError::Expired => Reason::TokenExpired,
            TokenError::NotYetValid => Reason::TokenNotYetValid,
            TokenError::IssuerMismatch => Reason::IssuerMismatch,
            TokenError::AudienceMismatch => Reason::AudienceMismatch,
            TokenError::Duplicated(_)
            | TokenError::MissingPrefix(_)
            | TokenError::TooLong(..)
            | TokenError::Structure(_)
            | TokenError::Json { .. }
            | TokenError::Header(_)
            | TokenError::Unsupported(_)
            | TokenError::Claims(_)
            | TokenError::NoExpiry => Reason::TokenMalformed,
        }
    }
}
