//! Request signatures: HTTP Message Signatures (RFC 9421) as Approov's SDK sends them, and the
//! body digest they cover (`Content-Digest`, RFC 9530).
//!
//! Two kinds of signature, each under its own label of one `Signature-Input` / `Signature`
//! pair:
//! - **install** (`ecdsa-p256-sha256`): the app install holds a P-256 key; the attestation
//!   token names its public half (claim `ipk`, base64 DER SubjectPublicKeyInfo);
//! - **account** (`hmac-sha256`): the account's message-signing key, shared by every app of
//!   the account, so that a device without secure hardware still signs.
//!
//! Verifying rebuilds the signature base exactly as RFC 9421 §2.5 says from the request as
//! received (component parameters `sf`, `key`, `bs` and `@query-param;name` included),
//! checks the `created` / `expires` parameters against the caller's clock, checks that every
//! required component is covered and verifies the signature (§3.3.4, §3.3.3).
//!
//! Structured fields are parsed and serialized with the `sfv` crate (RFC 8941).
//!
//! ```
//! use attestgate_policy::signature::{self, InstallKey, Message, SignOptions, VerifyOptions};
//! use p256::ecdsa::SigningKey;
//!
//! let key = SigningKey::from_slice(&[7; 32]).unwrap();
//! let headers = vec![("Host".to_owned(), "api.example.com".to_owned())];
//! let message = Message::request("GET", "https", "api.example.com", "/v1/shapes?x=1", &headers);
//! let options = SignOptions::new(["@method", "@target-uri"], 1_700_000_000);
//! let (input, sig) = signature::sign(&key, &message, &options).unwrap();
//!
//! let mut headers = headers.clone();
//! headers.push(("Signature-Input".to_owned(), input));
//! headers.push(("Signature".to_owned(), sig));
//! let message = Message::request("GET", "https", "api.example.com", "/v1/shapes?x=1", &headers);
//! let install = InstallKey::from_verifying_key(*key.verifying_key());
//! let verified = signature::verify(&message, None, &install, &VerifyOptions::default(), 1_700_000_010).unwrap();
//! assert_eq!(verified.components, ["@method", "@target-uri"]);
//! ```

mod digest;
mod keys;
mod message;
mod parse;
mod sign;
mod step;
mod verify;

pub use crate::config::{
    Accept, SignatureConfig, SignatureMode, DEFAULT_ACCOUNT_LABEL, DEFAULT_LABEL,
};
pub use digest::{check_content_digest, content_digest, DigestAlgorithm};
pub use keys::{AccountKey, InstallKey, SignatureKey};
pub use message::{signature_base, Message};
pub(crate) use parse::covers;
pub use parse::{parse, ParsedSignature};
pub use sign::{sign, sign_with, SignOptions, Signer};
pub(crate) use step::SignatureOutcome;
pub(crate) use verify::verify_through;
pub use verify::{verify, verify_base, verify_with, Verified, VerifyOptions};

/// The install signature's algorithm (RFC 9421 §3.3.4).
pub(crate) const ALGORITHM: &str = "ecdsa-p256-sha256";

/// The account signature's algorithm (RFC 9421 §3.3.3).
pub(crate) const ACCOUNT_ALGORITHM: &str = "hmac-sha256";

/// Shortest account key accepted: the HMAC's output size, as for `approov_secret`.
pub(crate) const MIN_ACCOUNT_KEY_BYTES: usize = 32;

/// Why a request signature was refused.
///
/// ```
/// use attestgate_policy::signature::{self, SignatureError, VerifyOptions};
/// # use attestgate_policy::signature as s;
/// # let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// # let install = s::InstallKey::from_verifying_key(*key.verifying_key());
/// # let unsigned = s::Message::request("GET", "https", "api.example.com", "/v1/x", &[]);
/// # let (input, sig) = s::sign(&key, &unsigned, &s::SignOptions::new(["@method", "@authority"], 1_700_000_000)).unwrap();
/// # let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// # let message = s::Message::request("GET", "https", "api.example.com", "/v1/x", &headers);
/// let options = VerifyOptions { required_components: vec!["@authority".to_owned()], ..VerifyOptions::default() };
/// let verify = |now| signature::verify(&message, None, &install, &options, now);
/// assert!(verify(1_700_000_010).is_ok());
/// assert_eq!(verify(1_700_000_400), Err(SignatureError::TooOld { age: 400, max: 300 }));
/// let required = VerifyOptions::default(); // covers `@method` and `@target-uri`
/// assert_eq!(
///     signature::verify(&message, None, &install, &required, 1_700_000_010),
///     Err(SignatureError::RequiredComponentNotCovered("@target-uri".to_owned())),
/// );
/// let error = signature::verify(&unsigned, None, &install, &options, 1_700_000_010).unwrap_err();
/// assert_eq!(error.to_string(), "no request signature labelled `install`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `Signature-Input` / `Signature` member under the label.
    #[error("no request signature labelled `{0}`")]
    Missing(String),
    /// `Signature-Input` is not a dictionary of inner lists with acceptable parameters.
    #[error("malformed signature-input: {0}")]
    MalformedInput(String),
    /// `Signature` is not a dictionary with a 64-byte byte sequence under the label.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The `alg` parameter names another algorithm.
    #[error("unsupported signature algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// A covered component this verifier does not derive (e.g. trailers, `;tr`).
    #[error("unsupported covered component `{0}`")]
    UnsupportedComponent(String),
    /// A component parameter RFC 9421 does not define, or one used where the RFC forbids it
    /// (`bs` with `sf` or `key`, `req` in a request, `name` outside `@query-param`).
    #[error("invalid parameters on component `{component}`: {message}")]
    InvalidComponentParameter {
        /// The component identifier.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// `sf` or `key` is given for a field whose value is not a structured field.
    #[error("covered field `{0}` is not a structured field")]
    NotStructured(String),
    /// `key` names a member the dictionary field does not have.
    #[error("covered field `{field}` has no dictionary member `{key}`")]
    MemberAbsent {
        /// The field.
        field: String,
        /// The member.
        key: String,
    },
    /// `@query-param` names a parameter the query has more than once (RFC 9421 §2.2.8).
    #[error("query parameter `{0}` appears more than once")]
    QueryParamRepeated(String),
    /// A configured component the signature does not cover.
    #[error("required component `{0}` is not covered by the signature")]
    RequiredComponentNotCovered(String),
    /// A covered header field the request does not have.
    #[error("covered component `{0}` is absent from the request")]
    ComponentAbsent(String),
    /// No `created` parameter while one is required.
    #[error("signature has no `created` parameter")]
    MissingCreated,
    /// `created` lies further in the future than the allowed clock skew.
    #[error("signature created {0}s in the future")]
    CreatedInFuture(i64),
    /// `created` is older than the allowed age.
    #[error("signature is {age}s old, more than the {max}s allowed")]
    TooOld {
        /// Seconds since `created`.
        age: i64,
        /// The configured maximum.
        max: i64,
    },
    /// `expires` has passed.
    #[error("signature expired {0}s ago")]
    Expired(i64),
    /// The install key is not a base64 DER P-256 SubjectPublicKeyInfo.
    #[error("invalid install key: {0}")]
    InvalidKey(String),
    /// The token has no install key claim.
    #[error("token has no install key claim `{0}`")]
    NoKey(String),
    /// The account signature's key is not configured.
    #[error("no account key is configured")]
    NoAccountKey,
    /// The signature does not verify over the signature base.
    #[error("request signature does not verify")]
    BadSignature,
    /// `content-digest` is covered but the body is not available to check it.
    #[error("content-digest is covered but the body is unavailable")]
    BodyUnavailable,
    /// `Content-Digest` is malformed or has no sha-256 / sha-512 member.
    #[error("malformed content-digest: {0}")]
    MalformedDigest(String),
    /// The body does not hash to the `Content-Digest` value.
    #[error("content-digest {0} does not match the body")]
    DigestMismatch(&'static str),
}
