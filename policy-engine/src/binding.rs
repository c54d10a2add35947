//! Approov token binding: the token carries a hash of request headers (typically
//! `Authorization`), so a token lifted from one session cannot be replayed with another.

use base64ct::{Base64, Encoding};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::BindingConfig;
use crate::decision::Reason;
use crate::request::Request;

/// What the binding check found, given to the policy as `input.binding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct BindingOutcome {
    /// A binding claim was present and compared.
    pub(crate) checked: bool,
    /// It matched.
    pub(crate) valid: bool,
}

/// The expected claim value: standard padded base64 of SHA-256 over the bound header values
/// concatenated in order. `None` when a bound header is absent or repeated: with two copies
/// there is no telling which one the upstream will use (Envoy joins them with a comma).
///
/// ```
/// use attestgate_policy::{binding_hash, Request};
/// let request = Request::new("GET", "/").with_header("Authorization", "Bearer abc");
/// let hash = binding_hash(&["authorization".to_string()], &request).unwrap();
/// assert_eq!(hash.len(), 44); // 32 bytes, padded base64
/// ```
pub fn binding_hash(headers: &[String], request: &Request) -> Option<String> {
    let mut hasher = Sha256::new();
    for name in headers {
        let mut values = request.header_values(name);
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        hasher.update(value.as_bytes());
    }
    Some(Base64::encode_string(&hasher.finalize()))
}

/// Checks the binding claim. A missing claim is an error only when the binding is required.
pub(crate) fn check(
    config: &BindingConfig,
    request: &Request,
    claims: &Map<String, Value>,
) -> Result<BindingOutcome, (Reason, String)> {
    let claim = match claims.get(&config.claim) {
        None if config.required => {
            return Err((
                Reason::BindingMissing,
                format!("token has no `{}` binding claim", config.claim),
            ))
        }
        None => return Ok(BindingOutcome::default()),
        Some(Value::String(claim)) => claim,
        Some(_) => {
            return Err((
                Reason::BindingMismatch,
                format!("binding claim `{}` is not a string", config.claim),
            ))
        }
    };
    let Some(expected) = binding_hash(&config.headers, request) else {
        return Err((
            Reason::BindingMismatch,
            format!(
                "bound header missing or repeated (binding covers {})",
                config.headers.join(", ")
            ),
        ));
    };
    if &expected != claim {
        return Err((
            Reason::BindingMismatch,
            "binding claim does not match the bound headers".to_owned(),
        ));
    }
    Ok(BindingOutcome {
        checked: true,
        valid: true,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(required: bool) -> BindingConfig {
        BindingConfig {
            headers: vec!["authorization".into()],
            claim: "pay".into(),
            required,
        }
    }

    #[test]
    fn known_answer_for_sha256_of_header() {
        // SHA-256("abc") is ba7816bf...; its standard base64 is below.
        let r = Request::new("GET", "/").with_header("Authorization", "abc");
        assert_eq!(
            binding_hash(&["authorization".into()], &r).unwrap(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }

    #[test]
    fn headers_are_concatenated_in_order() {
        let r = Request::new("GET", "/")
            .with_header("a", "ab")
            .with_header("b", "c");
        assert_eq!(
            binding_hash(&["a".into(), "b".into()], &r),
            binding_hash(
                &["x".into()],
                &Request::new("GET", "/").with_header("x", "abc")
            )
        );
    }

    #[test]
    fn outcomes() {
        let r = Request::new("GET", "/").with_header("Authorization", "abc");
        let good: Map<String, Value> =
            serde_json::from_str(r#"{"pay":"ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="}"#)
                .unwrap();
        let urlsafe: Map<String, Value> =
            serde_json::from_str(r#"{"pay":"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"}"#)
                .unwrap();
        let none = Map::new();
        assert_eq!(
            check(&config(false), &r, &good),
            Ok(BindingOutcome {
                checked: true,
                valid: true
            })
        );
        assert_eq!(
            check(&config(false), &r, &none),
            Ok(BindingOutcome::default())
        );
        assert_eq!(
            check(&config(true), &r, &none).unwrap_err().0,
            Reason::BindingMissing
        );
        assert_eq!(
            check(&config(false), &r, &urlsafe).unwrap_err().0,
            Reason::BindingMismatch
        );
        let bare = Request::new("GET", "/");
        assert_eq!(
            check(&config(false), &bare, &good).unwrap_err().0,
            Reason::BindingMismatch
        );
    }
}
