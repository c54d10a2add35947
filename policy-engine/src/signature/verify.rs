//! Verifying a signature: what the verifier requires, the checks that need no key and the
//! ECDSA / HMAC check over the signature base.

use hmac::Mac;
use p256::ecdsa::Signature;

use super::message::base_of;
use super::{
    check_content_digest, parse, InstallKey, Message, ParsedSignature, SignatureConfig,
    SignatureError, SignatureKey,
};
use crate::verifier::Verifier;

/// What a verifier requires of a signature.
///
/// ```
/// use attestgate_policy::signature::{self, VerifyOptions};
/// # use attestgate_policy::signature as s;
/// # let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// # let install = s::InstallKey::from_verifying_key(*key.verifying_key());
/// # let unsigned = s::Message::request("GET", "https", "api.example.com", "/v1/x", &[]);
/// # let (input, sig) = s::sign(&key, &unsigned, &s::SignOptions::new(["@method", "@authority"], 1_700_000_000)).unwrap();
/// # let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// # let message = s::Message::request("GET", "https", "api.example.com", "/v1/x", &headers);
/// let defaults = VerifyOptions::default();
/// assert_eq!((defaults.label.as_str(), defaults.max_age_seconds), ("install", 300));
/// // The default requires `@method` and `@target-uri`; this signature covers `@authority`.
/// assert!(signature::verify(&message, None, &install, &defaults, 1_700_000_000).is_err());
/// let options = VerifyOptions { required_components: vec!["@authority".to_owned()], ..defaults };
/// assert!(signature::verify(&message, None, &install, &options, 1_700_000_000).is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The label to verify; others are ignored.
    pub label: String,
    /// Components the signature must cover.
    pub required_components: Vec<String>,
    /// Maximum seconds since `created`; 0 for no limit.
    pub max_age_seconds: u32,
    /// Allowed clock difference for `created` in the future and `expires` in the past.
    pub clock_skew_seconds: u32,
    /// Refuse signatures without `created`.
    pub require_created: bool,
}

impl Default for VerifyOptions {
    /// What the default [`SignatureConfig`] requires.
    fn default() -> VerifyOptions {
        SignatureConfig::default().verify_options()
    }
}

/// A signature that verified.
///
/// ```
/// use attestgate_policy::signature::{self, VerifyOptions};
/// # use attestgate_policy::signature as s;
/// # let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// # let install = s::InstallKey::from_verifying_key(*key.verifying_key());
/// # let unsigned = s::Message::request("GET", "https", "api.example.com", "/v1/x", &[]);
/// # let (input, sig) = s::sign(&key, &unsigned, &s::SignOptions::new(["@method", "@authority"], 1_700_000_000)).unwrap();
/// # let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// # let message = s::Message::request("GET", "https", "api.example.com", "/v1/x", &headers);
/// let options = VerifyOptions { required_components: vec![], ..VerifyOptions::default() };
/// let verified = signature::verify(&message, None, &install, &options, 1_700_000_000).unwrap();
/// assert_eq!(verified.components, ["@method", "@authority"]);
/// assert_eq!((verified.created, verified.keyid), (Some(1_700_000_000), None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The covered components, in order.
    pub components: Vec<String>,
    /// The `keyid` parameter, if any.
    pub keyid: Option<String>,
    /// The `created` parameter, if any.
    pub created: Option<i64>,
}

/// Verifies the install signature under `options.label` at time `now` (unix seconds). `body`
/// is the complete request body when the host has it; it is needed only when
/// `content-digest` is covered, and then the digest is checked against it.
///
/// ```
/// use attestgate_policy::signature::{self, content_digest, DigestAlgorithm, InstallKey, Message, SignOptions, SignatureError, VerifyOptions};
/// let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// let install = InstallKey::from_verifying_key(*key.verifying_key());
/// let mut headers = vec![("Content-Digest".to_owned(), content_digest(b"{}", DigestAlgorithm::Sha256))];
/// let options = SignOptions::new(["@method", "@target-uri", "content-digest"], 1_700_000_000);
/// let message = Message::request("POST", "https", "h", "/pay", &headers);
/// let (input, sig) = signature::sign(&key, &message, &options).unwrap();
/// headers.extend([("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)]);
/// let message = Message::request("POST", "https", "h", "/pay", &headers);
///
/// let verify = |body| signature::verify(&message, body, &install, &VerifyOptions::default(), 1_700_000_000);
/// assert!(verify(Some(b"{}")).is_ok());
/// assert!(matches!(verify(Some(b"{\"amount\":1}")), Err(SignatureError::DigestMismatch(_))));
/// assert_eq!(verify(None), Err(SignatureError::BodyUnavailable));
/// ```
pub fn verify(
    message: &Message<'_>,
    body: Option<&[u8]>,
    key: &InstallKey,
    options: &VerifyOptions,
    now: i64,
) -> Result<Verified, SignatureError> {
    verify_with(message, body, SignatureKey::Install(key), options, now)
}

/// [`verify`] with either kind of key.
///
/// ```
/// use attestgate_policy::signature::{self, AccountKey, Message, SignOptions, SignatureKey, Signer, VerifyOptions};
/// let account = AccountKey::from_bytes(vec![7; 32]).unwrap();
/// let options = SignOptions { label: "account".to_owned(), ..SignOptions::new(["@method"], 1_700_000_000) };
/// let (input, sig) = signature::sign_with(Signer::Account(&account), &Message::request("GET", "https", "h", "/", &[]), &options).unwrap();
/// let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// let message = Message::request("GET", "https", "h", "/", &headers);
/// let verify = VerifyOptions { label: "account".to_owned(), required_components: vec!["@method".to_owned()], ..VerifyOptions::default() };
/// let verified = signature::verify_with(&message, None, SignatureKey::Account(&account), &verify, 1_700_000_005).unwrap();
/// assert_eq!(verified.components, ["@method"]);
/// ```
pub fn verify_with(
    message: &Message<'_>,
    body: Option<&[u8]>,
    key: SignatureKey<'_>,
    options: &VerifyOptions,
    now: i64,
) -> Result<Verified, SignatureError> {
    verify_through(&Verifier::default(), message, body, key, options, now)
}

/// [`verify_with`] through the gate's [`Verifier`]: the host's crypto, if it took
/// `ecdsa-p256-sha256`, checks an install signature.
pub(crate) fn verify_through(
    verifier: &Verifier,
    message: &Message<'_>,
    body: Option<&[u8]>,
    key: SignatureKey<'_>,
    options: &VerifyOptions,
    now: i64,
) -> Result<Verified, SignatureError> {
    let parsed = parse(message, &options.label)?;
    if let Some(alg) = &parsed.alg {
        if alg != key.algorithm() {
            return Err(SignatureError::UnsupportedAlgorithm(alg.clone()));
        }
    }
    check_parsed(&parsed, options, now)?;
    let base = base_of(message, &parsed.items, &parsed.signature_params)?;
    match key {
        SignatureKey::Install(key) => check_install(verifier, key, &base, &parsed.signature)?,
        SignatureKey::Account(key) => {
            let mut mac = key.mac()?;
            mac.update(base.as_bytes());
            // Constant-time comparison.
            mac.verify_slice(&parsed.signature)
                .map_err(|_| SignatureError::BadSignature)?;
        }
    }
    if parsed.items.iter().any(|c| c.name == "content-digest") {
        let digest = message
            .field("content-digest")
            .ok_or_else(|| SignatureError::ComponentAbsent("content-digest".to_owned()))?;
        check_content_digest(&digest, body.ok_or(SignatureError::BodyUnavailable)?)?;
    }
    Ok(Verified {
        components: parsed.components,
        keyid: parsed.keyid,
        created: parsed.created,
    })
}

/// The checks that need no key: required components, `created`, `expires`.
pub(crate) fn check_parsed(
    parsed: &ParsedSignature,
    options: &VerifyOptions,
    now: i64,
) -> Result<(), SignatureError> {
    for required in &options.required_components {
        if !parsed.items.iter().any(|c| &c.name == required) {
            return Err(SignatureError::RequiredComponentNotCovered(
                required.clone(),
            ));
        }
    }
    let skew = i64::from(options.clock_skew_seconds);
    match parsed.created {
        Some(created) => {
            let age = now.saturating_sub(created);
            if -age > skew {
                return Err(SignatureError::CreatedInFuture(-age));
            }
            let max = i64::from(options.max_age_seconds);
            if max > 0 && age > max {
                return Err(SignatureError::TooOld { age, max });
            }
        }
        None if options.require_created => return Err(SignatureError::MissingCreated),
        None => {}
    }
    if let Some(expires) = parsed.expires {
        let late = now.saturating_sub(expires);
        if late > skew {
            return Err(SignatureError::Expired(late));
        }
    }
    Ok(())
}

/// Verifies a 64-byte `r || s` `ecdsa-p256-sha256` signature over a signature base.
///
/// ```
/// use attestgate_policy::signature::{verify_base, InstallKey, SignatureError};
/// use p256::ecdsa::{signature::Signer, Signature};
/// let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// let install = InstallKey::from_verifying_key(*key.verifying_key());
/// let base = "\"@method\": GET\n\"@signature-params\": (\"@method\")";
/// let signature: Signature = key.sign(base.as_bytes());
/// assert_eq!(verify_base(&install, base, &signature.to_bytes()), Ok(()));
/// assert_eq!(verify_base(&install, "tampered", &signature.to_bytes()), Err(SignatureError::BadSignature));
/// assert!(matches!(verify_base(&install, base, &[0; 63]), Err(SignatureError::MalformedSignature(_))));
/// ```
pub fn verify_base(key: &InstallKey, base: &str, signature: &[u8]) -> Result<(), SignatureError> {
    check_install(&Verifier::default(), key, base, signature)
}

fn check_install(
    verifier: &Verifier,
    key: &InstallKey,
    base: &str,
    signature: &[u8],
) -> Result<(), SignatureError> {
    if signature.len() != 64 {
        return Err(SignatureError::MalformedSignature(format!(
            "{} bytes, not 64",
            signature.len()
        )));
    }
    if Signature::from_slice(signature).is_err() {
        return Err(SignatureError::MalformedSignature(
            "not a p-256 r || s".to_owned(),
        ));
    }
    if verifier.ecdsa_p256(&key.0, None, base.as_bytes(), signature) {
        Ok(())
    } else {
        Err(SignatureError::BadSignature)
    }
}
