//! `Content-Digest` (RFC 9530): checking a body against it and writing one.

use base64ct::{Base64, Encoding};
use sfv::{Dictionary, Parser};
use sha2::{Digest, Sha256, Sha512};

use super::parse::signature_bytes;
use super::SignatureError;

/// Checks a `Content-Digest` value (RFC 9530) against the body: every `sha-256` / `sha-512`
/// member must match, and there must be at least one; other algorithms are ignored.
///
/// ```
/// use attestgate_policy::signature::{check_content_digest, content_digest, DigestAlgorithm, SignatureError};
/// let value = content_digest(b"hello", DigestAlgorithm::Sha512);
/// assert_eq!(check_content_digest(&value, b"hello"), Ok(()));
/// assert!(matches!(check_content_digest(&value, b"hullo"), Err(SignatureError::DigestMismatch(_))));
/// assert!(matches!(check_content_digest("md5=:AAAA:", b"hello"), Err(SignatureError::MalformedDigest(_))));
/// ```
pub fn check_content_digest(value: &str, body: &[u8]) -> Result<(), SignatureError> {
    let dict = Parser::new(value)
        .parse::<Dictionary>()
        .map_err(|e| SignatureError::MalformedDigest(e.to_string()))?;
    let mut checked = false;
    for (alg, entry) in &dict {
        let (name, expected): (&'static str, Vec<u8>) = match alg.as_str() {
            "sha-256" => ("sha-256", Sha256::digest(body).to_vec()),
            "sha-512" => ("sha-512", Sha512::digest(body).to_vec()),
            _ => continue,
        };
        let actual = signature_bytes(entry).map_err(|_| {
            SignatureError::MalformedDigest(format!("{name} is not a byte sequence"))
        })?;
        if actual != expected {
            return Err(SignatureError::DigestMismatch(name));
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(SignatureError::MalformedDigest(
            "no sha-256 or sha-512 member".to_owned(),
        ))
    }
}

/// The digest algorithms [`content_digest`] can produce.
///
/// ```
/// use attestgate_policy::signature::{content_digest, DigestAlgorithm};
/// assert!(content_digest(b"", DigestAlgorithm::Sha256).starts_with("sha-256=:"));
/// assert!(content_digest(b"", DigestAlgorithm::Sha512).starts_with("sha-512=:"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// `sha-256`
    Sha256,
    /// `sha-512`
    Sha512,
}

/// A `Content-Digest` value for a body, e.g. `sha-256=:…:`.
///
/// ```
/// use attestgate_policy::signature::{content_digest, DigestAlgorithm};
/// // RFC 9530 appendix B.1.
/// assert_eq!(
///     content_digest(b"{\"hello\": \"world\"}\n", DigestAlgorithm::Sha256),
///     "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:",
/// );
/// ```
pub fn content_digest(body: &[u8], algorithm: DigestAlgorithm) -> String {
    let (name, digest) = match algorithm {
        DigestAlgorithm::Sha256 => ("sha-256", Sha256::digest(body).to_vec()),
        DigestAlgorithm::Sha512 => ("sha-512", Sha512::digest(body).to_vec()),
    };
    format!("{name}=:{}:", Base64::encode_string(&digest))
}
