//! Finding the token in a request and turning it into verified claims.
//!
//! Parse, don't validate: a header value becomes an [`UntrustedToken`] only after strict
//! structural checks, and a [`VerifiedToken`] only after a pinned key, the clock, the issuer and
//! the audience all agree. Nothing downstream ever sees unverified claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use jwt_compact::{Claims, ParseError, TimeOptions, UntrustedToken};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::TokenConfig;
use crate::error::TokenError;
use crate::json;
use crate::keys::{Algorithm, KeySet};
use crate::request::Request;
use crate::verifier::Verifier;

/// Header parameters jwt-compact does not model but we must look at.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct HeaderExtras {
    /// RFC 7515 §4.1.11: extensions the recipient must understand. We understand none.
    /// `Some(Value::Null)` when present as `null`: present is enough to refuse.
    #[serde(default, deserialize_with = "present")]
    crit: Option<Value>,
    /// RFC 7797: `b64: false` changes what is signed; we refuse it (and anything but `true`).
    #[serde(default, deserialize_with = "present")]
    b64: Option<Value>,
}

/// Tells a member given as `null` from an absent one, which serde's `Option` would merge.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A token whose signature, time window, issuer and audience have been checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VerifiedToken {
    /// The algorithm of the key that verified it.
    pub(crate) alg: Algorithm,
    /// The header's `kid`.
    pub(crate) kid: Option<String>,
    /// The header's `typ`.
    pub(crate) typ: Option<String>,
    /// All claims, with `exp`, `nbf` and `iat` as integer seconds.
    pub(crate) claims: Map<String, Value>,
}

/// Checks that apply to every token, from the config.
#[derive(Debug, Clone)]
pub(crate) struct VerifyOptions {
    pub max_bytes: usize,
    pub max_json_depth: usize,
    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub leeway_seconds: i64,
    pub require_exp: bool,
    /// Hybrid mode: the gateway verified the signature (the gate checked that it says so).
    pub signature_by_host: bool,
}

/// Finds the raw token: the configured header (case-insensitive, exactly once), minus the prefix.
pub(crate) fn extract<'r>(
    request: &'r Request,
    config: &TokenConfig,
) -> Result<&'r str, TokenError> {
    let mut values = request.header_values(&config.header);
    let value = values
        .next()
        .ok_or_else(|| TokenError::Missing(config.header.clone()))?;
    if values.next().is_some() {
        return Err(TokenError::Duplicated(config.header.clone()));
    }
    let value = value.trim_start();
    let token = match &config.prefix {
        Some(prefix) => {
            // Match the prefix word, then insist on the separating space it was written with.
            let word = prefix.trim_end();
            let rest = strip_prefix_ignore_case(value, word)
                .ok_or_else(|| TokenError::MissingPrefix(prefix.clone()))?;
            let needs_space = word.len() != prefix.len();
            if needs_space && !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                return Err(TokenError::MissingPrefix(prefix.clone()));
            }
            rest
        }
        None => value,
    }
    .trim();
    if token.is_empty() {
        return Err(TokenError::Missing(config.header.clone()));
    }
    Ok(token)
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        value.get(prefix.len()..)
    } else {
        None
    }
}

/// Verifies a compact JWS against the key set at time `now` (unix seconds).
pub(crate) fn verify(
    raw: &str,
    keys: &[&KeySet],
    verifier: &Verifier,
    options: &VerifyOptions,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    verify_signed_by(raw, Some((keys, verifier)), options, now)
}

/// [`verify`] for a token whose signature this gate already verified (the decision cache keeps
/// only that verdict, not the claims): every other check runs again.
pub(crate) fn verify_known_signature(
    raw: &str,
    options: &VerifyOptions,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    verify_signed_by(raw, None, options, now)
}

/// `keys: None` skips the signature, which was verified before (or by the gateway).
fn verify_signed_by(
    raw: &str,
    keys: Option<(&[&KeySet], &Verifier)>,
    options: &VerifyOptions,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    if raw.len() > options.max_bytes {
        return Err(TokenError::TooLong(raw.len(), options.max_bytes));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(TokenError::Structure(
            "characters outside the base64url alphabet",
        ));
    }
    let mut segments = raw.split('.');
    let (Some(header), Some(claims_segment), Some(signature_segment), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Structure("expected exactly three segments"));
    };
    strict_json(header, "header", options)?;
    // The claims segment is decoded once, here (where jwt-compact would have refused bad
    // base64 in it), and read as JSON only once the signature is good.
    let claims_bytes =
        segment_bytes(claims_segment).ok_or(TokenError::Structure("invalid base64url"))?;

    // jwt-compact reads the header and the signature. It is handed the token without its
    // claims, which it would otherwise decode a second time (a fifth of an HS256 check); the
    // signature is verified over the whole signing input below, not over what it was handed.
    let without_claims = format!("{header}..{signature_segment}");
    let untrusted = UntrustedToken::<HeaderExtras>::try_from(without_claims.as_str()).map_err(
        |err| match err {
            ParseError::InvalidTokenStructure => {
                TokenError::Structure("expected exactly three segments")
            }
            ParseError::InvalidBase64Encoding => TokenError::Structure("invalid base64url"),
            ParseError::MalformedHeader(err) => TokenError::Header(err.to_string()),
            ParseError::UnsupportedContentType(_) => TokenError::Unsupported("cty"),
            _ => TokenError::Header(err.to_string()),
        },
    )?;
    let extras = &untrusted.header().other_fields;
    if extras.crit.is_some() {
        return Err(TokenError::Unsupported("crit"));
    }
    if extras
        .b64
        .as_ref()
        .is_some_and(|b64| b64 != &Value::Bool(true))
    {
        return Err(TokenError::Unsupported("b64"));
    }

    let alg = Algorithm::from_name(untrusted.algorithm())
        .ok_or_else(|| TokenError::AlgNotAllowed(untrusted.algorithm().to_owned()))?;
    let kid = untrusted.header().key_id.as_deref();
    let signing_input = raw.rsplit_once('.').map_or("", |(input, _)| input);
    if let (Some((keys, verifier)), false) = (keys, options.signature_by_host) {
        let signature = untrusted.signature_bytes();
        verify_with_pinned_key(signing_input, signature, alg, kid, keys, verifier)?;
    }

    // Only now, with the signature good, is the claims JSON worth reading: once, strictly, and
    // used as read (the segment the signature covers).
    let claims =
        json::parse(&claims_bytes, options.max_json_depth).map_err(|error| TokenError::Json {
            part: "claims",
            error,
        })?;
    let claims = into_claims(claims)?;
    let claims = check_time(claims, options, now)?;
    check_issuer_and_audience(&claims, options)?;
    Ok(VerifiedToken {
        alg,
        kid: kid.map(str::to_owned),
        typ: untrusted.header().token_type.clone(),
        claims,
    })
}

fn strict_json(
    segment: &str,
    part: &'static str,
    options: &VerifyOptions,
) -> Result<Value, TokenError> {
    let bytes = segment_bytes(segment).ok_or(TokenError::Structure("invalid base64url"))?;
    json::parse(&bytes, options.max_json_depth).map_err(|error| TokenError::Json { part, error })
}

/// A compact token segment's bytes: unpadded base64url, exactly what jwt-compact's base64ct
/// accepts (`segments_decode_as_base64ct_decodes_them`), decoded by the faster `base64`.
pub(crate) fn segment_bytes(segment: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(segment).ok()
}

/// The claims object with `exp`, `nbf` and `iat` read as jwt-compact's `Claims` reads them.
fn into_claims(document: Value) -> Result<Claims<Map<String, Value>>, TokenError> {
    let Value::Object(mut custom) = document else {
        return Err(TokenError::Claims("claims are not a json object".into()));
    };
    let expiration = timestamp(custom.remove("exp"), "exp")?;
    let not_before = timestamp(custom.remove("nbf"), "nbf")?;
    let issued_at = timestamp(custom.remove("iat"), "iat")?;
    let mut claims = Claims::new(custom);
    claims.expiration = expiration;
    claims.not_before = not_before;
    claims.issued_at = issued_at;
    Ok(claims)
}

/// A NumericDate claim as jwt-compact's timestamp visitor reads one: whole seconds, a
/// fraction cut off (saturating at the i64 range), refused when not a number or outside the
/// dates `chrono` represents.
fn timestamp(value: Option<Value>, name: &str) -> Result<Option<DateTime<Utc>>, TokenError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(TokenError::Claims(format!("`{name}` is not a number")));
    };
    let seconds = match (number.as_u64(), number.as_i64(), number.as_f64()) {
        (Some(positive), _, _) => i64::try_from(positive).ok(),
        (None, Some(negative), _) => Some(negative),
        #[allow(clippy::cast_possible_truncation)] // saturating, as jwt-compact casts it
        (None, None, Some(float)) => Some(float as i64),
        (None, None, None) => None,
    };
    seconds
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .map(Some)
        .ok_or_else(|| TokenError::Claims(format!("`{name}` is out of range")))
}

/// With a `kid`, only that key may verify and its pinned algorithm must be the token's. Without
/// one, every key pinned to the token's algorithm is tried.
fn verify_with_pinned_key(
    signing_input: &str,
    signature: &[u8],
    alg: Algorithm,
    kid: Option<&str>,
    keys: &[&KeySet],
    verifier: &Verifier,
) -> Result<(), TokenError> {
    // Local keys first, then fetched ones: a kid in both is the local key.
    let mut candidates = keys
        .iter()
        .flat_map(|set| set.keys())
        .filter(|key| match kid {
            Some(kid) => key.kid() == Some(kid),
            None => key.algorithm() == alg,
        });
    let Some(first) = candidates.next() else {
        return Err(match kid {
            Some(kid) => TokenError::KeyNotFound(kid.to_owned()),
            None => TokenError::AlgNotAllowed(alg.name().to_owned()),
        });
    };
    for key in std::iter::once(first).chain(candidates) {
        if key.algorithm() != alg {
            // kid chose this key; its pinned algorithm is the only one it verifies.
            return Err(TokenError::AlgNotAllowed(alg.name().to_owned()));
        }
        if key.verify_signature(verifier, signing_input.as_bytes(), signature) {
            return Ok(());
        }
    }
    Err(TokenError::SignatureInvalid)
}

fn check_time(
    claims: Claims<Map<String, Value>>,
    options: &VerifyOptions,
    now: i64,
) -> Result<Map<String, Value>, TokenError> {
    // An unrepresentable clock must not make tokens look fresh: fail closed.
    let now_time: DateTime<Utc> = DateTime::from_timestamp(now, 0).ok_or(TokenError::Expired)?;
    let time = TimeOptions::new(Duration::seconds(options.leeway_seconds), move || now_time);
    match claims.expiration {
        Some(_) => {
            claims
                .validate_expiration(&time)
                .map_err(|_| TokenError::Expired)?;
        }
        None if options.require_exp => return Err(TokenError::NoExpiry),
        None => {}
    }
    if claims.not_before.is_some() {
        claims
            .validate_maturity(&time)
            .map_err(|_| TokenError::NotYetValid)?;
    }
    let mut all = claims.custom;
    for (name, at) in [
        ("exp", claims.expiration),
        ("nbf", claims.not_before),
        ("iat", claims.issued_at),
    ] {
        if let Some(at) = at {
            all.insert(name.to_owned(), Value::from(at.timestamp()));
        }
    }
    Ok(all)
}

fn check_issuer_and_audience(
    claims: &Map<String, Value>,
    options: &VerifyOptions,
) -> Result<(), TokenError> {
    if let Some(issuer) = &options.issuer {
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
            return Err(TokenError::IssuerMismatch);
        }
    }
    if let Some(audiences) = &options.audiences {
        let accepted = |aud: &Value| {
            aud.as_str()
                .is_some_and(|aud| audiences.iter().any(|a| a == aud))
        };
        let ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(accepted),
            Some(aud) => accepted(aud),
            None => false,
        };
        if !ok {
            return Err(TokenError::AudienceMismatch);
        }
    }
    Ok(())
}

/// The token's JOSE header decoded for display, verifying nothing.
pub(crate) fn untrusted_header(raw: &str) -> Option<serde_json::Value> {
    let segment = raw.split('.').next()?;
    serde_json::from_slice(&segment_bytes(segment)?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The claims are read in one strict pass (`json::parse`, then `into_claims`) where they
    /// were read by jwt-compact's `Claims`: for every document the strict pass accepts, both
    /// must agree on the outcome and on every claim.
    #[test]
    fn claims_are_read_as_jwt_compact_reads_them() {
        let dates = [
            "1700000000",
            "1700000000.999",
            "0",
            "-0",
            "-5",
            "-1.5",
            "1e3",
            "1.7e9",
            "0.5",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1e300",
            "-1e300",
            "8210266876799",
            "8210266876800",
            "8210298412799",
            "8210298412800",
            "-8334601228800",
            "-8334632851201",
            "-8334632851200",
            "\"1700000000\"",
            "null",
            "true",
            "[]",
            "{}",
            "[1700000000]",
        ];
        let mut documents = vec![
            "{}".to_owned(),
            "[]".to_owned(),
            "1".to_owned(),
            "\"exp\"".to_owned(),
            "null".to_owned(),
            r#"{"did":"d","att":{"app":{"id":"x"}},"n":[1,2.5,-3],"e":{}}"#.to_owned(),
        ];
        for date in dates {
            for name in ["exp", "nbf", "iat"] {
                documents.push(format!(r#"{{"{name}":{date},"did":"d"}}"#));
            }
            documents.push(format!(r#"{{"exp":{date},"nbf":{date},"iat":{date}}}"#));
        }
        for text in &documents {
            let ours = json::parse(text.as_bytes(), 8)
                .map_err(|err| panic!("{text}: {err}"))
                .and_then(into_claims);
            let theirs = serde_json::from_str::<Claims<Map<String, Value>>>(text);
            match (&ours, &theirs) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{text}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{text}: ours {ours:?}, jwt-compact's {theirs:?}"),
            }
        }
    }

    /// A segment is decoded by `segment_bytes` here and by jwt-compact's base64ct: both must accept
    /// exactly the same strings (no padding, no stray bits in the last symbol) as the same bytes.
    #[test]
    fn segments_decode_as_base64ct_decodes_them() {
        use base64ct::{Base64UrlUnpadded, Encoding as _};
        let alphabet = b"AQgw_-9zBCDEfghij=+/. ";
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut compared = 0;
        for length in 0..=9 {
            for _ in 0..4_000 {
                let text: String = (0..length)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        char::from(alphabet[(seed % alphabet.len() as u64) as usize])
                    })
                    .collect();
                assert_eq!(
                    segment_bytes(&text),
                    Base64UrlUnpadded::decode_vec(&text).ok(),
                    "{text:?}"
                );
                compared += 1;
            }
        }
        assert_eq!(compared, 40_000);
    }

    fn cfg(prefix: Option<&str>) -> TokenConfig {
        TokenConfig {
            prefix: prefix.map(str::to_owned),
            ..TokenConfig::default()
        }
    }

    #[test]
    fn header_is_found_case_insensitively() {
        let r = Request::new("GET", "/").with_header("Approov-Token", " abc ");
        assert_eq!(extract(&r, &cfg(None)), Ok("abc"));
    }

    #[test]
    fn missing_duplicated_and_empty_headers_are_refused() {
        let r = Request::new("GET", "/");
        assert!(matches!(
            extract(&r, &cfg(None)),
            Err(TokenError::Missing(_))
        ));
        let r = Request::new("GET", "/")
            .with_header("approov-token", "a")
            .with_header("APPROOV-TOKEN", "b");
        assert!(matches!(
            extract(&r, &cfg(None)),
            Err(TokenError::Duplicated(_))
        ));
        let r = Request::new("GET", "/").with_header("approov-token", "  ");
        assert!(matches!(
            extract(&r, &cfg(None)),
            Err(TokenError::Missing(_))
        ));
    }

    #[test]
    fn prefix_is_stripped_case_insensitively() {
        let r = Request::new("GET", "/").with_header("approov-token", "bearer  xyz");
        assert_eq!(extract(&r, &cfg(Some("Bearer "))), Ok("xyz"));
        let r = Request::new("GET", "/").with_header("approov-token", "Basic xyz");
        assert!(matches!(
            extract(&r, &cfg(Some("Bearer "))),
            Err(TokenError::MissingPrefix(_))
        ));
        let r = Request::new("GET", "/").with_header("approov-token", "Bearer ");
        assert!(matches!(
            extract(&r, &cfg(Some("Bearer "))),
            Err(TokenError::Missing(_))
        ));
    }
}
