//! attestgate's test kit: the issuing side of attestation, kept out of the verification core.
//!
//! Minting (signing) attestation tokens, signing requests as an app does (RFC 9421, install
//! and account keys) and generating keys ([`keygen`]), used by `attestgate mint` / `sign` /
//! `keygen`, by tests, by the JavaScript build and by demos (and, for the end-to-end tests, an
//! upstream that records what a gateway forwarded: [`upstream`]); a gateway never links it:
//! a [`SigningKey`] is parsed from a private JWK (or, Approov-style, from a base64 HMAC
//! secret) and signs a JSON object of claims into a compact JWS (`header.payload.signature`).
//!
//! The header and the claims are serialized here with `serde_json` and base64url-encoded
//! (unpadded); only the signature bytes come from `jwt-compact`'s [`Algorithm::sign`]. The
//! payload is therefore exactly the given JSON object: no claim is added, dropped, reordered
//! or converted on the way (in particular `exp`, `nbf` and `iat` keep their JSON values).
//!
//! Key strength is enforced when a key is loaded, as RFC 7518 requires: an `HS*` secret must
//! be at least as long as the hash output (32, 48 or 64 bytes) and an RSA modulus must have
//! at least 2048 bits.

use core::fmt;

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::{
    Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key, Rsa, RsaPrivateKey,
};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmSignature};
use rsa::traits::PublicKeyParts;
use rsa::BigUint;
use serde::{Deserialize as _, Serialize};
use serde_json::{Map, Value};

use attestgate_policy::{Algorithm as Alg, MIN_RSA_BITS};

pub mod keygen;
// A loopback server and threads: native tests only (the JS build links this crate too).
#[cfg(not(target_family = "wasm"))]
pub mod upstream;
pub mod wycheproof;

/// Errors from loading a signing key or signing a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// The JWK is not a JSON object, or one of its members is missing, of the wrong JSON
    /// type or wrongly encoded.
    #[error("invalid jwk: {0}")]
    InvalidJwk(String),
    /// The JWK's `kty` is not one this module can sign with (`oct`, `EC`, `RSA`, `OKP`).
    #[error("unsupported key type `{0}`")]
    UnsupportedKeyType(String),
    /// The JWK's `crv` is not one this module can sign with (`P-256` for `EC`,
    /// `Ed25519` for `OKP`).
    #[error("unsupported curve `{crv}` for key type `{kty}`")]
    UnsupportedCurve {
        /// The JWK's `kty`.
        kty: String,
        /// The JWK's `crv`.
        crv: String,
    },
    /// The algorithm is not one this module can sign with.
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The JWK's `alg` cannot be used with its `kty` (for example `ES256` on an `oct` key).
    #[error("algorithm `{alg}` does not fit key type `{kty}`")]
    AlgorithmMismatch {
        /// The JWK's `alg`.
        alg: String,
        /// The JWK's `kty`.
        kty: String,
    },
    /// The JWK holds only a public key, which cannot sign.
    #[error("the `{kty}` jwk is a public key (it has no `d`); signing needs the private key")]
    PublicKeyOnly {
        /// The JWK's `kty`.
        kty: String,
    },
    /// The JWK's `use` or `key_ops` say that it must not be used for signing.
    #[error("the jwk is not meant for signing: {0}")]
    NotForSigning(String),
    /// An RFC 9421 request signature could not be made.
    #[error("cannot sign the request: {0}")]
    RequestSignature(#[from] attestgate_policy::signature::SignatureError),
    /// The key is shorter than the algorithm's minimum (RFC 7518).
    #[error("key too weak for {alg}: {reason}")]
    WeakKey {
        /// The algorithm the key was meant for.
        alg: &'static str,
        /// What is too short, and what the minimum is.
        reason: String,
    },
    /// The key material is malformed or inconsistent (for example, the private part does
    /// not match the public part).
    #[error("invalid `{kty}` key: {reason}")]
    InvalidKey {
        /// The JWK's `kty`.
        kty: &'static str,
        /// What is wrong with the key.
        reason: String,
    },
    /// A base64 HMAC secret could not be decoded.
    #[error("invalid base64 secret: {0}")]
    InvalidSecret(String),
    /// The header or the claims could not be serialized.
    #[error("cannot serialize token: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Parsed key material, one variant per `jwt-compact` signing key type.
#[derive(Clone)]
enum Key {
    Hs256(Hs256Key),
    Hs384(Hs384Key),
    Hs512(Hs512Key),
    Es256(p256::ecdsa::SigningKey),
    Rsa(Rsa, RsaPrivateKey),
    EdDsa(ed25519_dalek::SigningKey),
}

/// A private key that can sign attestation tokens, parsed from a private JWK.
///
/// The algorithm is fixed when the key is loaded; the key ID (`kid`) comes from the JWK
/// when it has one and can be changed with [`SigningKey::with_kid`]. `Debug` shows the
/// algorithm and key ID only, never key material.
#[derive(Clone)]
pub struct SigningKey {
    alg: Alg,
    key: Key,
    kid: Option<String>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.alg.name())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The protected header of minted tokens.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
}

impl SigningKey {
    /// Parses a private JWK.
    ///
    /// Supported keys: `oct` (member `k`), `EC` on curve `P-256` (`d`), `RSA` private keys
    /// (`d`, with or without `p`/`q`/`dp`/`dq`/`qi`) and `OKP` on curve `Ed25519` (`d`).
    /// The algorithm is the JWK's `alg` when present (`HS256`, `HS384`, `HS512`, `ES256`,
    /// `RS256`, `RS384`, `RS512`, `PS256`, `PS384`, `PS512` or `EdDSA`), which must fit the
    /// key type; otherwise it is `HS256` for `oct`, `ES256` for `EC`, `RS256` for `RSA` and
    /// `EdDSA` for `OKP`. The key ID is the JWK's `kid`, if any.
    ///
    /// # Errors
    ///
    /// A [`MintError`] if the JWK is malformed, of an unsupported type, curve or algorithm,
    /// has an `alg` that does not fit its `kty`, is a public key only, is marked for
    /// another use than signing (`use` other than `sig`, or `key_ops` without `sign`),
    /// is too weak for its algorithm, or has private and public parts that do not match.
    ///
    /// # Examples
    ///
    /// ```
    /// use attestgate_testkit::SigningKey;
    ///
    /// let jwk = serde_json::json!({
    ///     "kty": "oct",
    ///     "kid": "demo",
    ///     "k": "hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg",
    /// });
    /// let key = SigningKey::from_jwk(&jwk)?;
    /// assert_eq!(key.algorithm(), "HS256");
    /// assert_eq!(key.kid(), Some("demo"));
    ///
    /// let mut claims = serde_json::Map::new();
    /// claims.insert("sub".into(), "device-1".into());
    /// claims.insert("exp".into(), 1_700_000_000.into());
    /// let token = key.sign(&claims)?;
    /// // {"alg":"HS256","typ":"JWT","kid":"demo"}
    /// assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImRlbW8ifQ."));
    /// assert_eq!(token.split('.').count(), 3);
    /// # Ok::<(), attestgate_testkit::MintError>(())
    /// ```
    pub fn from_jwk(jwk: &Value) -> Result<SigningKey, MintError> {
        let obj = jwk
            .as_object()
            .ok_or_else(|| MintError::InvalidJwk("a jwk must be a json object".to_owned()))?;
        let kty = str_member(obj, "kty")?
            .ok_or_else(|| MintError::InvalidJwk("missing member `kty`".to_owned()))?;
        let default_alg = match kty {
            "oct" => Alg::Hs256,
            "EC" => Alg::Es256,
            "RSA" => Alg::Rs256,
            "OKP" => Alg::EdDsa,
            other => return Err(MintError::UnsupportedKeyType(other.to_owned())),
        };
        let alg = match str_member(obj, "alg")? {
            None => default_alg,
            Some(name) => {
                let alg = Alg::from_name(name)
                    .ok_or_else(|| MintError::UnsupportedAlgorithm(name.to_owned()))?;
                if alg.kty() != kty {
                    return Err(MintError::AlgorithmMismatch {
                        alg: name.to_owned(),
                        kty: kty.to_owned(),
                    });
                }
                alg
            }
        };
        check_usage(obj)?;
        let kid = str_member(obj, "kid")?.map(str::to_owned);

        // Curve and public-only checks come before parsing so that their errors are clear.
        let expected_crv = match alg.kty() {
            "EC" => Some("P-256"),
            "OKP" => Some("Ed25519"),
            _ => None,
        };
        if let Some(expected) = expected_crv {
            let crv = str_member(obj, "crv")?
                .ok_or_else(|| MintError::InvalidJwk("missing member `crv`".to_owned()))?;
            if crv != expected {
                return Err(MintError::UnsupportedCurve {
                    kty: kty.to_owned(),
                    crv: crv.to_owned(),
                });
            }
        }
        if alg.kty() != "oct" && obj.get("d").is_none_or(Value::is_null) {
            return Err(MintError::PublicKeyOnly {
                kty: kty.to_owned(),
            });
        }

        let key = match alg.rsa() {
            Some(rsa) => Key::Rsa(rsa, rsa_private_key(obj, jwk)?),
            None => {
                let parsed = parse_jwk(jwk)?;
                let invalid = |err: jwt_compact::jwk::JwkError| MintError::InvalidKey {
                    kty: alg.kty(),
                    reason: err.to_string(),
                };
                match alg {
                    Alg::Hs256 => Key::Hs256(Hs256Key::try_from(&parsed).map_err(invalid)?),
                    Alg::Hs384 => Key::Hs384(Hs384Key::try_from(&parsed).map_err(invalid)?),
                    Alg::Hs512 => Key::Hs512(Hs512Key::try_from(&parsed).map_err(invalid)?),
                    Alg::Es256 => {
                        Key::Es256(p256::ecdsa::SigningKey::try_from(&parsed).map_err(invalid)?)
                    }
                    _ => Key::EdDsa(ed25519_dalek::SigningKey::try_from(&parsed).map_err(invalid)?),
                }
            }
        };
        let key = SigningKey { alg, key, kid };
        key.check_strength()?;
        Ok(key)
    }

    /// Makes an `HS256` key from an HMAC secret given in base64, as Approov prints it.
    ///
    /// Both the standard and the URL-safe alphabet are accepted, padded or not; surrounding
    /// whitespace (such as a trailing newline) is ignored. The gate's `approov_secret` is
    /// decoded the same way. The key has no `kid`.
    ///
    /// # Errors
    ///
    /// [`MintError::InvalidSecret`] if the text is empty or not base64 in one alphabet, and
    /// [`MintError::WeakKey`] if the secret is shorter than 32 bytes.
    pub fn hs256_from_base64_secret(secret: &str) -> Result<SigningKey, MintError> {
        let bytes = attestgate_policy::decode_approov_secret(secret)
            .map_err(|message| MintError::InvalidSecret(message.to_owned()))?;
        let key = SigningKey {
            alg: Alg::Hs256,
            key: Key::Hs256(Hs256Key::new(bytes)),
            kid: None,
        };
        key.check_strength()?;
        Ok(key)
    }

    /// The JWS algorithm name this key signs with, e.g. `"ES256"`.
    #[must_use]
    pub fn algorithm(&self) -> &'static str {
        self.alg.name()
    }

    /// The key ID put in the token header as `kid`, if any.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Replaces the key ID (`None` removes it, so tokens get no `kid`).
    #[must_use]
    pub fn with_kid(self, kid: Option<String>) -> Self {
        SigningKey { kid, ..self }
    }

    /// Signs `claims` (a JSON object) into a compact JWS.
    ///
    /// The header is `{"alg":…,"typ":"JWT"}`, plus `"kid"` when the key has one. The payload
    /// is `claims` serialized as is.
    ///
    /// # Errors
    ///
    /// [`MintError::Serialize`] if the header or claims cannot be serialized (which does
    /// not happen for a `serde_json` map in practice).
    pub fn sign(&self, claims: &Map<String, Value>) -> Result<String, MintError> {
        let header = serde_json::to_vec(&Header {
            alg: self.alg.name(),
            typ: "JWT",
            kid: self.kid.as_deref(),
        })?;
        let payload = serde_json::to_vec(claims)?;
        Ok(self.sign_parts(&header, &payload))
    }

    /// Signs a header and payload given as exact bytes, for tests that need tokens no
    /// well-behaved issuer would make (duplicate keys, odd headers). No checks are applied.
    ///
    /// ```
    /// use attestgate_testkit::SigningKey;
    /// let key = SigningKey::hs256_from_base64_secret("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap();
    /// let token = key.sign_parts(br#"{"alg":"HS256","alg":"none"}"#, br#"{"exp":1}"#);
    /// assert_eq!(token.split('.').count(), 3);
    /// ```
    #[must_use]
    pub fn sign_parts(&self, header: &[u8], payload: &[u8]) -> String {
        let mut token = Base64UrlUnpadded::encode_string(header);
        token.push('.');
        token.push_str(&Base64UrlUnpadded::encode_string(payload));
        let signature = self.sign_raw(token.as_bytes());
        token.push('.');
        token.push_str(&Base64UrlUnpadded::encode_string(&signature));
        token
    }

    /// Signs an arbitrary JWS signing input (`base64url(header) "." base64url(payload)`)
    /// and returns the raw signature bytes.
    pub(crate) fn sign_raw(&self, signing_input: &[u8]) -> Vec<u8> {
        fn bytes<S: AlgorithmSignature>(signature: &S) -> Vec<u8> {
            signature.as_bytes().into_owned()
        }
        match &self.key {
            Key::Hs256(key) => bytes(&Hs256.sign(key, signing_input)),
            Key::Hs384(key) => bytes(&Hs384.sign(key, signing_input)),
            Key::Hs512(key) => bytes(&Hs512.sign(key, signing_input)),
            Key::Es256(key) => bytes(&Es256.sign(key, signing_input)),
            Key::Rsa(rsa, key) => bytes(&rsa.sign(key, signing_input)),
            Key::EdDsa(key) => bytes(&Ed25519.sign(key, signing_input)),
        }
    }

    /// Enforces RFC 7518's minimum key sizes for HMAC and RSA.
    ///
    /// Besides security, this keeps `jwt-compact`'s RSA signing away from keys too small
    /// for the padding, on which it would panic.
    fn check_strength(&self) -> Result<(), MintError> {
        let (len, min, unit) = match &self.key {
            Key::Hs256(key) => (key.as_ref().len(), self.alg.min_hmac_key_len(), "bytes"),
            Key::Hs384(key) => (key.as_ref().len(), self.alg.min_hmac_key_len(), "bytes"),
            Key::Hs512(key) => (key.as_ref().len(), self.alg.min_hmac_key_len(), "bytes"),
            Key::Rsa(_, key) => (key.n().bits(), MIN_RSA_BITS, "bits"),
            Key::Es256(_) | Key::EdDsa(_) => return Ok(()),
        };
        if len < min {
            return Err(MintError::WeakKey {
                alg: self.alg.name(),
                reason: format!("the key has {len} {unit}, at least {min} are required"),
            });
        }
        Ok(())
    }
}

/// Builds the claims for a token: a copy of `claims` where, if `exp_in` is `Some(secs)`,
/// `"exp"` is set to `now + secs` (replacing any `exp`) and `"iat"` to `now` unless it is
/// already there. With `exp_in == None` the claims are returned unchanged.
#[must_use]
pub fn claims_with_expiry(
    mut claims: Map<String, Value>,
    now: i64,
    exp_in: Option<i64>,
) -> Map<String, Value> {
    if let Some(secs) = exp_in {
        claims.insert("exp".to_owned(), Value::from(now.saturating_add(secs)));
        claims.entry("iat").or_insert_with(|| Value::from(now));
    }
    claims
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url without padding) of a public or
/// private JWK, usable as a `kid`. Only the key type and public key members are hashed,
/// so a private JWK and its public JWK have the same thumbprint.
///
/// # Errors
///
/// [`MintError::InvalidJwk`] if the JWK cannot be parsed as an `oct`, `EC`, `RSA` or `OKP`
/// key.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, MintError> {
    let parsed = parse_jwk(jwk)?;
    Ok(Base64UrlUnpadded::encode_string(
        &parsed.thumbprint::<sha2::Sha256>(),
    ))
}

/// A string member of a JWK: `Ok(None)` when absent, an error when not a string.
fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, MintError> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(MintError::InvalidJwk(format!(
            "member `{name}` must be a string"
        ))),
    }
}

/// Rejects JWKs whose `use` or `key_ops` exclude signing.
fn check_usage(obj: &Map<String, Value>) -> Result<(), MintError> {
    if let Some(key_use) = str_member(obj, "use")? {
        if key_use != "sig" {
            return Err(MintError::NotForSigning(format!(
                "its `use` is `{key_use}`, not `sig`"
            )));
        }
    }
    match obj.get("key_ops") {
        None => Ok(()),
        Some(Value::Array(ops)) => {
            if ops.iter().any(|op| op.as_str() == Some("sign")) {
                Ok(())
            } else {
                Err(MintError::NotForSigning(
                    "its `key_ops` do not include `sign`".to_owned(),
                ))
            }
        }
        Some(_) => Err(MintError::InvalidJwk(
            "member `key_ops` must be an array".to_owned(),
        )),
    }
}

/// Parses a JWK with `jwt-compact` (which ignores members it does not know).
fn parse_jwk(jwk: &Value) -> Result<JsonWebKey<'static>, MintError> {
    JsonWebKey::deserialize(jwk).map_err(|err| MintError::InvalidJwk(err.to_string()))
}

/// Loads an RSA private key.
///
/// `jwt-compact` needs `p` and `q`; RFC 7518 §6.3.2 also allows a private key with `d`
/// only, for which the primes are recovered from `n`, `e` and `d` here.
fn rsa_private_key(obj: &Map<String, Value>, jwk: &Value) -> Result<RsaPrivateKey, MintError> {
    let invalid = |reason: String| MintError::InvalidKey { kty: "RSA", reason };
    if obj.contains_key("p") && obj.contains_key("q") {
        let parsed = parse_jwk(jwk)?;
        return RsaPrivateKey::try_from(&parsed).map_err(|err| invalid(err.to_string()));
    }
    let n = biguint_member(obj, "n")?;
    let e = biguint_member(obj, "e")?;
    let d = biguint_member(obj, "d")?;
    RsaPrivateKey::from_components(n, e, d, Vec::new())
        .map_err(|err| invalid(err.to_string().to_lowercase()))
}

/// A required base64url-encoded big-endian integer member of a JWK.
fn biguint_member(obj: &Map<String, Value>, name: &str) -> Result<BigUint, MintError> {
    let text = str_member(obj, name)?
        .ok_or_else(|| MintError::InvalidJwk(format!("missing member `{name}`")))?;
    let bytes = Base64UrlUnpadded::decode_vec(text).map_err(|_| {
        MintError::InvalidJwk(format!("member `{name}` is not base64url without padding"))
    })?;
    Ok(BigUint::from_bytes_be(&bytes))
}

/// An app install's P-256 key for RFC 9421 request signatures ([`attestgate_policy::signature`]): it
/// signs requests, and its public half goes into the token as the `ipk` claim.
///
/// ```
/// use attestgate_testkit::InstallSigner;
/// use attestgate_policy::signature::SignOptions;
/// use attestgate_policy::Request;
///
/// let install = InstallSigner::from_slice(&[7; 32]).unwrap();
/// let request = Request::new("POST", "/v1/pay").with_host("api.example.com").with_body("{}");
/// let options = SignOptions::new(["@method", "@target-uri", "content-digest"], 1_700_000_000);
/// let signed = install.sign_request(request, &options).unwrap();
/// assert!(signed.header_values("signature-input").next().unwrap().starts_with("install=("));
/// assert!(signed.header_values("content-digest").next().unwrap().starts_with("sha-256=:"));
/// assert!(install.ipk().starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"));
/// ```
#[derive(Debug, Clone)]
pub struct InstallSigner {
    key: p256::ecdsa::SigningKey,
}

/// DER SubjectPublicKeyInfo up to the key bits: `id-ecPublicKey`, `prime256v1`, then a
/// 66-byte BIT STRING (no unused bits) holding the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl InstallSigner {
    /// From a 32-byte private scalar.
    pub fn from_slice(secret: &[u8]) -> Result<InstallSigner, MintError> {
        p256::ecdsa::SigningKey::from_slice(secret)
            .map(|key| InstallSigner { key })
            .map_err(|_| MintError::InvalidJwk("not a p-256 private scalar".to_owned()))
    }

    /// From a private EC P-256 JWK (its `d`).
    pub fn from_jwk(jwk: &Value) -> Result<InstallSigner, MintError> {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        if member("kty") != Some("EC") || member("crv") != Some("P-256") {
            return Err(MintError::InvalidJwk(
                "an install key is an EC P-256 jwk".to_owned(),
            ));
        }
        let d = member("d").ok_or_else(|| MintError::PublicKeyOnly {
            kty: "EC".to_owned(),
        })?;
        let secret = Base64UrlUnpadded::decode_vec(d)
            .map_err(|_| MintError::InvalidJwk("`d` is not base64url".to_owned()))?;
        InstallSigner::from_slice(&secret)
    }

    /// The `ipk` claim: base64 DER SubjectPublicKeyInfo of the public key.
    pub fn ipk(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.verifying_key().to_encoded_point(false).as_bytes());
        base64ct::Base64::encode_string(&der)
    }

    /// The public key, as a verifier loads it.
    pub fn public(&self) -> attestgate_policy::signature::InstallKey {
        attestgate_policy::signature::InstallKey::from_verifying_key(*self.key.verifying_key())
    }

    /// Signs a request as the app would: when `content-digest` is covered and the request
    /// has no `Content-Digest`, one (sha-256) is added for its body (empty without one); then
    /// `Signature-Input` and `Signature` are added. `@scheme` / `@target-uri` use `https`.
    pub fn sign_request(
        &self,
        mut request: attestgate_policy::Request,
        options: &attestgate_policy::signature::SignOptions,
    ) -> Result<attestgate_policy::Request, MintError> {
        use attestgate_policy::signature::{self, Message};
        request = with_content_digest(request, options);
        let (input, sig) = signature::sign(
            &self.key,
            &Message::from_request(&request, "https"),
            options,
        )?;
        Ok(request
            .with_header("Signature-Input", input)
            .with_header("Signature", sig))
    }
}

/// The request with a `Content-Digest` (sha-256) of its body (empty without one) when the
/// options cover `content-digest` and it has none yet, as an app adds it before signing.
fn with_content_digest(
    request: attestgate_policy::Request,
    options: &attestgate_policy::signature::SignOptions,
) -> attestgate_policy::Request {
    use attestgate_policy::signature::{content_digest, DigestAlgorithm};
    let covers_digest = options.components.iter().any(|c| c == "content-digest");
    if !covers_digest || request.header_values("content-digest").next().is_some() {
        return request;
    }
    let digest = content_digest(
        request.body.as_deref().unwrap_or_default(),
        DigestAlgorithm::Sha256,
    );
    request.with_header("Content-Digest", digest)
}

/// Signs requests the way Approov's SDK does by default: an `install` member
/// (`ecdsa-p256-sha256`, when the install key is given) and an `account` member
/// (`hmac-sha256`, when the account key is given) in one `Signature-Input` / `Signature`
/// pair, each covering [`approov_components`], with `created` and `expires = created + 15`.
///
/// ```
/// use attestgate_testkit::{ApproovSigner, InstallSigner};
/// use attestgate_policy::signature::AccountKey;
/// use attestgate_policy::Request;
///
/// let signer = ApproovSigner {
///     install: Some(InstallSigner::from_slice(&[7; 32]).unwrap()),
///     account: Some(AccountKey::from_base64("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap()),
/// };
/// let request = Request::new("POST", "/v1/pay").with_host("api.example.com")
///     .with_header("Approov-Token", "t").with_header("Content-Type", "application/json")
///     .with_body("{}");
/// let signed = signer.sign_request(request, 1_700_000_000).unwrap();
/// let input = signed.header_values("signature-input").next().unwrap();
/// assert!(input.starts_with(r#"install=("@method" "@target-uri" "approov-token" "content-type" "content-digest");created=1700000000;expires=1700000015"#));
/// assert!(input.contains(", account=("));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ApproovSigner {
    /// The install key, when the device has one.
    pub install: Option<InstallSigner>,
    /// The account message-signing key.
    pub account: Option<attestgate_policy::signature::AccountKey>,
}

/// The components Approov's SDK covers by default: `@method`, `@target-uri`, the token
/// header, `Approov-TraceID` and `Approov-Status` when present, `Authorization`,
/// `Content-Length` and `Content-Type` when present, and `Content-Digest` whenever the
/// request has a body.
pub fn approov_components(request: &attestgate_policy::Request) -> Vec<String> {
    let mut components = vec!["@method".to_owned(), "@target-uri".to_owned()];
    for (name, always) in [
        ("approov-token", true),
        ("approov-traceid", false),
        ("approov-status", false),
        ("authorization", false),
        ("content-length", false),
        ("content-type", false),
    ] {
        if always || request.header_values(name).next().is_some() {
            components.push(name.to_owned());
        }
    }
    if request.body.as_ref().is_some_and(|body| !body.is_empty()) {
        components.push("content-digest".to_owned());
    }
    components
}

/// What Approov's SDK signs a request with by default: [`approov_components`], `created`,
/// and `expires` 15 s later.
pub fn approov_options(
    request: &attestgate_policy::Request,
    created: i64,
) -> attestgate_policy::signature::SignOptions {
    let mut options =
        attestgate_policy::signature::SignOptions::new(approov_components(request), created);
    options.expires = Some(created + 15);
    options
}

impl ApproovSigner {
    /// Signs with the SDK's default components and lifetime ([`approov_options`]).
    pub fn sign_request(
        &self,
        request: attestgate_policy::Request,
        created: i64,
    ) -> Result<attestgate_policy::Request, MintError> {
        let options = approov_options(&request, created);
        self.sign_request_with(request, &options)
    }

    /// Signs with these options (their label is replaced by `install` / `account`); a
    /// `Content-Digest` (sha-256) is added first when `content-digest` is covered.
    pub fn sign_request_with(
        &self,
        mut request: attestgate_policy::Request,
        options: &attestgate_policy::signature::SignOptions,
    ) -> Result<attestgate_policy::Request, MintError> {
        use attestgate_policy::signature::{self, Message, Signer};
        request = with_content_digest(request, options);
        let mut inputs = Vec::new();
        let mut signatures = Vec::new();
        let members = [
            (
                signature::DEFAULT_LABEL,
                self.install.as_ref().map(|k| Signer::Install(&k.key)),
            ),
            (
                signature::DEFAULT_ACCOUNT_LABEL,
                self.account.as_ref().map(Signer::Account),
            ),
        ];
        for (label, key) in members {
            let Some(key) = key else { continue };
            let options = signature::SignOptions {
                label: label.to_owned(),
                ..options.clone()
            };
            let (input, sig) =
                signature::sign_with(key, &Message::from_request(&request, "https"), &options)?;
            inputs.push(input);
            signatures.push(sig);
        }
        if inputs.is_empty() {
            return Err(MintError::InvalidJwk(
                "give an install key, an account key or both".to_owned(),
            ));
        }
        Ok(request
            .with_header("Signature-Input", inputs.join(", "))
            .with_header("Signature", signatures.join(", ")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use jwt_compact::alg::RsaPublicKey;
    use jwt_compact::{AlgorithmExt, UntrustedToken};
    use serde_json::json;

    /// RFC 7520 §3.4 (JOSE cookbook `jwk/3_4.rsa_private_key.json`), a 2048-bit RSA key.
    const RFC7520_RSA: &str = r#"{
      "kty": "RSA",
      "kid": "bilbo.baggins@hobbiton.example",
      "use": "sig",
      "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw",
      "e": "AQAB",
      "d": "bWUC9B-EFRIo8kpGfh0ZuyGPvMNKvYWNtB_ikiH9k20eT-O1q_I78eiZkpXxXQ0UTEs2LsNRS-8uJbvQ-A1irkwMSMkK1J3XTGgdrhCku9gRldY7sNA_AKZGh-Q661_42rINLRCe8W-nZ34ui_qOfkLnK9QWDDqpaIsA-bMwWWSDFu2MUBYwkHTMEzLYGqOe04noqeq1hExBTHBOBdkMXiuFhUq1BU6l-DqEiWxqg82sXt2h-LMnT3046AOYJoRioz75tSUQfGCshWTBnP5uDjd18kKhyv07lhfSJdrPdM5Plyl21hsFf4L_mHCuoFau7gdsPfHPxxjVOcOpBrQzwQ",
      "p": "3Slxg_DwTXJcb6095RoXygQCAZ5RnAvZlno1yhHtnUex_fp7AZ_9nRaO7HX_-SFfGQeutao2TDjDAWU4Vupk8rw9JR0AzZ0N2fvuIAmr_WCsmGpeNqQnev1T7IyEsnh8UMt-n5CafhkikzhEsrmndH6LxOrvRJlsPp6Zv8bUq0k",
      "q": "uKE2dh-cTf6ERF4k4e_jy78GfPYUIaUyoSSJuBzp3Cubk3OCqs6grT8bR_cu0Dm1MZwWmtdqDyI95HrUeq3MP15vMMON8lHTeZu2lmKvwqW7anV5UzhM1iZ7z4yMkuUwFWoBvyY898EXvRD-hdqRxHlSqAZ192zB3pVFJ0s7pFc",
      "dp": "B8PVvXkvJrj2L-GYQ7v3y9r6Kw5g9SahXBwsWUzp19TVlgI-YV85q1NIb1rxQtD-IsXXR3-TanevuRPRt5OBOdiMGQp8pbt26gljYfKU_E9xn-RULHz0-ed9E9gXLKD4VGngpz-PfQ_q29pk5xWHoJp009Qf1HvChixRX59ehik",
      "dq": "CLDmDGduhylc9o7r84rEUVn7pzQ6PF83Y-iBZx5NT-TpnOZKF1pErAMVeKzFEl41DlHHqqBLSM0W1sOFbwTxYWZDm6sI6og5iTbwQGIC3gnJKbi_7k_vJgGHwHxgPaX2PnvP-zyEkDERuf-ry4c_Z11Cq9AqC2yeL6kdKT1cYF8",
      "qi": "3PiqvXQN0zwMeE-sBvZgi289XP9XCQF3VWqPzMKnIgQp7_Tugo6-NZBKCQsMf3HaEGBjTVJs_jcK8-TRXvaKe-7ZMaQj8VfBdYkssbu0NKDDhjJ-GtiseaDVWt7dcH0cfwxgFUHpQh7FoCrjFJ6h6ZEpMF6xmujs4qMpPz8aaI4"
    }"#;

    /// RFC 7520 §4 payload, base64url-encoded (shared by §4.1 and §4.4).
    const RFC7520_PAYLOAD_B64: &str = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";

    /// RFC 8037 §A.1 / §A.4 Ed25519 key and signature (`curve25519/jws.json`).
    const RFC8037_JWK: &str = r#"{"kty":"OKP","use":"sig","crv":"Ed25519",
        "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        "d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#;
    const RFC8037_COMPACT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

    fn sample_claims() -> Map<String, Value> {
        let value = json!({
            "sub": "device-42",
            "iss": "attestgate-test",
            "exp": 4_102_444_800_i64,
            "iat": 1_700_000_000,
            "did": "AAECAwQFBgcICQ",
            "nested": {"z": [1, 2.5, null, true], "a": "ü"},
        });
        value.as_object().unwrap().clone()
    }

    fn b64(text: &str) -> Vec<u8> {
        Base64UrlUnpadded::decode_vec(text).unwrap()
    }

    fn rfc7520_rsa(alg: Option<&str>) -> Value {
        let mut jwk: Value = serde_json::from_str(RFC7520_RSA).unwrap();
        if let Some(alg) = alg {
            jwk["alg"] = json!(alg);
        }
        jwk
    }

    fn rfc7520_rsa_public() -> RsaPublicKey {
        let jwk: JsonWebKey<'_> = serde_json::from_str(RFC7520_RSA).unwrap();
        RsaPublicKey::try_from(&jwk).unwrap()
    }

    /// Verifies `token` with `alg` and `verifying_key`, then checks the header and that the
    /// payload is byte-for-byte the serialized claims.
    fn verify<A: Algorithm>(
        alg: &A,
        verifying_key: &A::VerifyingKey,
        token: &str,
        claims: &Map<String, Value>,
        kid: Option<&str>,
    ) {
        let untrusted = UntrustedToken::new(token).unwrap();
        let checked = alg
            .validator::<Map<String, Value>>(verifying_key)
            .validate(&untrusted)
            .unwrap();
        assert_eq!(checked.header().token_type.as_deref(), Some("JWT"));
        assert_eq!(checked.header().key_id.as_deref(), kid);
        assert_eq!(checked.claims().custom.get("sub"), claims.get("sub"));

        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(b64(parts[1]), serde_json::to_vec(claims).unwrap());
        let header: Value = serde_json::from_slice(&b64(parts[0])).unwrap();
        let mut expected = json!({"alg": alg.name(), "typ": "JWT"});
        if let Some(kid) = kid {
            expected["kid"] = json!(kid);
        }
        assert_eq!(header, expected);

        // A tampered payload must not verify.
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            Base64UrlUnpadded::encode_string(br#"{"sub":"someone-else"}"#),
            parts[2]
        );
        let untrusted = UntrustedToken::new(&tampered).unwrap();
        assert!(alg
            .validator::<Map<String, Value>>(verifying_key)
            .validate(&untrusted)
            .is_err());
    }

    #[test]
    fn hs256_signs_and_verifies() {
        let jwk: Value = serde_json::from_str(rfc7520_oct_jwk()).unwrap();
        let key = SigningKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithm(), "HS256");
        assert_eq!(key.kid(), Some("018c0ae5-4d9b-471b-bfd6-eef314bc7037"));
        let claims = sample_claims();
        let token = key.sign(&claims).unwrap();
        let secret = Hs256Key::new(b64("hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"));
        verify(&Hs256, &secret, &token, &claims, key.kid());
    }

    fn rfc7520_oct_jwk() -> &'static str {
        // RFC 7520 §3.5 (`jwk/3_5.symmetric_key_mac_computation.json`).
        r#"{"kty":"oct","kid":"018c0ae5-4d9b-471b-bfd6-eef314bc7037","use":"sig",
            "alg":"HS256","k":"hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg"}"#
    }

    #[test]
    fn hs384_and_hs512_sign_and_verify() {
        let secret: Vec<u8> = (0..64_u8).collect();
        let k = Base64UrlUnpadded::encode_string(&secret);
        let claims = sample_claims();

        let key = SigningKey::from_jwk(&json!({"kty":"oct","alg":"HS512","k":k})).unwrap();
        assert_eq!(key.algorithm(), "HS512");
        let token = key.sign(&claims).unwrap();
        verify(&Hs512, &Hs512Key::new(&secret), &token, &claims, None);

        let key = SigningKey::from_jwk(&json!({"kty":"oct","alg":"HS384","k":k})).unwrap();
        let token = key.sign(&claims).unwrap();
        verify(&Hs384, &Hs384Key::new(&secret), &token, &claims, None);
    }

    #[test]
    fn es256_signs_and_verifies() {
        let sk = p256::ecdsa::SigningKey::from_slice(&[7_u8; 32]).unwrap();
        let mut jwk = serde_json::to_value(JsonWebKey::from(&sk)).unwrap();
        jwk["kid"] = json!("ec-1");
        assert!(jwk.get("d").is_some());
        let key = SigningKey::from_jwk(&jwk).unwrap();
        assert_eq!(key.algorithm(), "ES256");
        let claims = sample_claims();
        let token = key.sign(&claims).unwrap();
        verify(&Es256, sk.verifying_key(), &token, &claims, Some("ec-1"));
        // ES256 signatures are the 64-byte r || s form, not DER.
        let sig = token.rsplit('.').next().unwrap();
        assert_eq!(b64(sig).len(), 64);
    }

    #[test]
    fn rs256_signs_and_verifies() {
        let key = SigningKey::from_jwk(&rfc7520_rsa(None)).unwrap();
        assert_eq!(key.algorithm(), "RS256");
        let claims = sample_claims();
        let token = key.sign(&claims).unwrap();
        verify(
            &Rsa::rs256(),
            &rfc7520_rsa_public(),
            &token,
            &claims,
            Some("bilbo.baggins@hobbiton.example"),
        );
    }

    #[test]
    fn ps256_signs_and_verifies() {
        let key = SigningKey::from_jwk(&rfc7520_rsa(Some("PS256")))
            .unwrap()
            .with_kid(None);
        assert_eq!(key.algorithm(), "PS256");
        assert_eq!(key.kid(), None);
        let claims = sample_claims();
        let token = key.sign(&claims).unwrap();
        verify(&Rsa::ps256(), &rfc7520_rsa_public(), &token, &claims, None);
        // PSS is randomized: signing twice gives different signatures.
        assert_ne!(token, key.sign(&claims).unwrap());
        // ...and a PS256 token is not an RS256 token.
        let untrusted = UntrustedToken::new(&token).unwrap();
        assert!(Rsa::rs256()
            .validator::<Value>(&rfc7520_rsa_public())
            .validate(&untrusted)
            .is_err());
    }

    #[test]
    fn other_rsa_algorithms_sign_and_verify() {
        let claims = sample_claims();
        for (name, alg) in [
            ("RS384", Rsa::rs384()),
            ("RS512", Rsa::rs512()),
            ("PS384", Rsa::ps384()),
            ("PS512", Rsa::ps512()),
        ] {
            let key = SigningKey::from_jwk(&rfc7520_rsa(Some(name))).unwrap();
            assert_eq!(key.algorithm(), name);
            let token = key.sign(&claims).unwrap();
            verify(&alg, &rfc7520_rsa_public(), &token, &claims, key.kid());
        }
    }

    #[test]
    fn eddsa_signs_and_verifies() {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[9_u8; 32]);
        let jwk = serde_json::to_value(JsonWebKey::from(&sk)).unwrap();
        let key = SigningKey::from_jwk(&jwk)
            .unwrap()
            .with_kid(Some("ed".into()));
        assert_eq!(key.algorithm(), "EdDSA");
        let claims = sample_claims();
        let token = key.sign(&claims).unwrap();
        verify(&Ed25519, &sk.verifying_key(), &token, &claims, Some("ed"));
    }

    #[test]
    fn rfc8037_ed25519_known_answer() {
        let jwk: Value = serde_json::from_str(RFC8037_JWK).unwrap();
        let key = SigningKey::from_jwk(&jwk).unwrap();
        let (input, sig) = RFC8037_COMPACT.rsplit_once('.').unwrap();
        assert_eq!(key.sign_raw(input.as_bytes()), b64(sig));
    }

    #[test]
    fn rfc7520_hs256_known_answer() {
        let jwk: Value = serde_json::from_str(rfc7520_oct_jwk()).unwrap();
        let key = SigningKey::from_jwk(&jwk).unwrap();
        // RFC 7520 §4.4.3: protected header {"alg":"HS256","kid":"018c0ae5-…"}.
        let header =
            "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9";
        let input = format!("{header}.{RFC7520_PAYLOAD_B64}");
        assert_eq!(
            key.sign_raw(input.as_bytes()),
            b64("s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0")
        );
    }

    const RFC7520_RS256_SIG: &str = "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";
    const RFC7520_RS256_HEADER: &str =
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9";

    #[test]
    fn rfc7520_rs256_known_answer() {
        // RSASSA-PKCS1-v1_5 is deterministic too (RFC 7520 §4.1).
        let key = SigningKey::from_jwk(&rfc7520_rsa(Some("RS256"))).unwrap();
        let input = format!("{RFC7520_RS256_HEADER}.{RFC7520_PAYLOAD_B64}");
        assert_eq!(key.sign_raw(input.as_bytes()), b64(RFC7520_RS256_SIG));
    }

    #[test]
    fn rsa_private_key_with_d_only() {
        // RFC 7518 §6.3.2 allows a private RSA JWK with `d` but no CRT members.
        let mut jwk = rfc7520_rsa(None);
        let obj = jwk.as_object_mut().unwrap();
        for member in ["p", "q", "dp", "dq", "qi"] {
            obj.remove(member);
        }
        let key = SigningKey::from_jwk(&jwk).unwrap();
        let input = format!("{RFC7520_RS256_HEADER}.{RFC7520_PAYLOAD_B64}");
        assert_eq!(key.sign_raw(input.as_bytes()), b64(RFC7520_RS256_SIG));
    }

    #[test]
    fn hs256_from_base64_secret_accepts_both_alphabets() {
        let secret: Vec<u8> = (0..48_u8).map(|b| b.wrapping_mul(37) ^ 0xfb).collect();
        let standard = base64ct::Base64::encode_string(&secret);
        let url = base64ct::Base64Url::encode_string(&secret);
        assert!(standard.contains('+') || standard.contains('/'));
        assert!(url.contains('-') || url.contains('_'));
        let expected = SigningKey::from_jwk(&json!({
            "kty": "oct",
            "k": Base64UrlUnpadded::encode_string(&secret),
        }))
        .unwrap()
        .sign_raw(b"x");
        for text in [
            standard.clone(),
            standard.trim_end_matches('=').to_owned(),
            url.clone(),
            url.trim_end_matches('=').to_owned(),
            format!("  {standard}\n"),
        ] {
            let key = SigningKey::hs256_from_base64_secret(&text).unwrap();
            assert_eq!(key.algorithm(), "HS256");
            assert_eq!(key.kid(), None);
            assert_eq!(key.sign_raw(b"x"), expected, "{text}");
        }
        // 33 bytes: padding of one `=`.
        let odd = base64ct::Base64::encode_string(&[0xab_u8; 34]);
        assert!(odd.ends_with('='));
        SigningKey::hs256_from_base64_secret(&odd).unwrap();
    }

    #[test]
    fn hs256_from_base64_secret_errors() {
        let err = SigningKey::hs256_from_base64_secret("c2VjcmV0").unwrap_err();
        assert!(
            matches!(err, MintError::WeakKey { alg: "HS256", .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "key too weak for HS256: the key has 6 bytes, at least 32 are required"
        );
        for bad in ["", "  ", "not base64!", "ab+c-d", "a"] {
            let err = SigningKey::hs256_from_base64_secret(bad).unwrap_err();
            assert!(matches!(err, MintError::InvalidSecret(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn algorithm_from_jwk_alg_and_defaults() {
        let k = Base64UrlUnpadded::encode_string(&[1_u8; 64]);
        let cases = [
            (json!({"kty":"oct","k":k}), "HS256"),
            (json!({"kty":"oct","k":k,"alg":"HS384"}), "HS384"),
            (json!({"kty":"oct","k":k,"alg":"HS512"}), "HS512"),
        ];
        for (jwk, alg) in cases {
            assert_eq!(SigningKey::from_jwk(&jwk).unwrap().algorithm(), alg);
        }
        for alg in ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"] {
            let key = SigningKey::from_jwk(&rfc7520_rsa(Some(alg))).unwrap();
            assert_eq!(key.algorithm(), alg);
        }
        let ec = p256::ecdsa::SigningKey::from_slice(&[3_u8; 32]).unwrap();
        let mut jwk = serde_json::to_value(JsonWebKey::from(&ec)).unwrap();
        jwk["alg"] = json!("ES256");
        assert_eq!(SigningKey::from_jwk(&jwk).unwrap().algorithm(), "ES256");
        let mut jwk: Value = serde_json::from_str(RFC8037_JWK).unwrap();
        jwk["alg"] = json!("EdDSA");
        assert_eq!(SigningKey::from_jwk(&jwk).unwrap().algorithm(), "EdDSA");
    }

    #[test]
    fn rejects_alg_that_does_not_fit_kty() {
        let k = Base64UrlUnpadded::encode_string(&[1_u8; 32]);
        let err = SigningKey::from_jwk(&json!({"kty":"oct","k":k,"alg":"ES256"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "algorithm `ES256` does not fit key type `oct`"
        );
        let err = SigningKey::from_jwk(&rfc7520_rsa(Some("HS256"))).unwrap_err();
        assert!(matches!(err, MintError::AlgorithmMismatch { .. }), "{err}");
        let mut jwk: Value = serde_json::from_str(RFC8037_JWK).unwrap();
        jwk["alg"] = json!("ES256");
        assert!(matches!(
            SigningKey::from_jwk(&jwk).unwrap_err(),
            MintError::AlgorithmMismatch { .. }
        ));
        for alg in ["none", "ES384", "hs256", "Ed25519"] {
            let err = SigningKey::from_jwk(&json!({"kty":"oct","k":k,"alg":alg})).unwrap_err();
            assert_eq!(err.to_string(), format!("unsupported algorithm `{alg}`"));
        }
    }

    #[test]
    fn rejects_public_only_keys() {
        let mut rsa = rfc7520_rsa(None);
        let obj = rsa.as_object_mut().unwrap();
        for member in ["d", "p", "q", "dp", "dq", "qi"] {
            obj.remove(member);
        }
        let err = SigningKey::from_jwk(&rsa).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the `RSA` jwk is a public key (it has no `d`); signing needs the private key"
        );

        let ec = p256::ecdsa::SigningKey::from_slice(&[3_u8; 32]).unwrap();
        let jwk = serde_json::to_value(JsonWebKey::from(ec.verifying_key())).unwrap();
        assert!(matches!(
            SigningKey::from_jwk(&jwk).unwrap_err(),
            MintError::PublicKeyOnly { .. }
        ));
        let mut jwk: Value = serde_json::from_str(RFC8037_JWK).unwrap();
        jwk.as_object_mut().unwrap().remove("d");
        assert!(matches!(
            SigningKey::from_jwk(&jwk).unwrap_err(),
            MintError::PublicKeyOnly { .. }
        ));
    }

    #[test]
    fn rejects_unsupported_types_and_curves() {
        let err = SigningKey::from_jwk(&json!({"kty":"foo"})).unwrap_err();
        assert_eq!(err.to_string(), "unsupported key type `foo`");
        let err = SigningKey::from_jwk(&json!({"k":"AAAA"})).unwrap_err();
        assert_eq!(err.to_string(), "invalid jwk: missing member `kty`");
        let err = SigningKey::from_jwk(&json!("oct")).unwrap_err();
        assert!(matches!(err, MintError::InvalidJwk(_)), "{err}");
        let err = SigningKey::from_jwk(&json!({"kty": 7})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid jwk: member `kty` must be a string"
        );

        // RFC 7520 §3.2: a P-521 key.
        let p521 = json!({"kty":"EC","crv":"P-521",
            "x":"AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
            "y":"AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
            "d":"AAhRON2r9cqXX1hg-RoI6R1tX5p2rUAYdmpHZoC1XNM56KtscrX6zbKipQrCW9CGZH3T4ubpnoTKLDYJ_fF3_rJt"});
        let err = SigningKey::from_jwk(&p521).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported curve `P-521` for key type `EC`"
        );
        let x25519 = json!({"kty":"OKP","crv":"X25519","x":"AAAA","d":"AAAA"});
        assert!(matches!(
            SigningKey::from_jwk(&x25519).unwrap_err(),
            MintError::UnsupportedCurve { .. }
        ));
    }

    #[test]
    fn rejects_keys_not_for_signing() {
        let k = Base64UrlUnpadded::encode_string(&[1_u8; 32]);
        let err = SigningKey::from_jwk(&json!({"kty":"oct","k":k,"use":"enc"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the jwk is not meant for signing: its `use` is `enc`, not `sig`"
        );
        let err =
            SigningKey::from_jwk(&json!({"kty":"oct","k":k,"key_ops":["verify"]})).unwrap_err();
        assert!(matches!(err, MintError::NotForSigning(_)), "{err}");
        SigningKey::from_jwk(&json!({"kty":"oct","k":k,"key_ops":["sign","verify"]})).unwrap();
    }

    #[test]
    fn rejects_weak_and_inconsistent_keys() {
        let short = Base64UrlUnpadded::encode_string(&[1_u8; 31]);
        let err = SigningKey::from_jwk(&json!({"kty":"oct","k":short})).unwrap_err();
        assert!(
            matches!(err, MintError::WeakKey { alg: "HS256", .. }),
            "{err}"
        );
        let k48 = Base64UrlUnpadded::encode_string(&[1_u8; 48]);
        let err = SigningKey::from_jwk(&json!({"kty":"oct","k":k48,"alg":"HS512"})).unwrap_err();
        assert!(
            matches!(err, MintError::WeakKey { alg: "HS512", .. }),
            "{err}"
        );
        SigningKey::from_jwk(&json!({"kty":"oct","k":k48,"alg":"HS384"})).unwrap();

        // EC private key whose `d` belongs to another public key.
        let a = p256::ecdsa::SigningKey::from_slice(&[3_u8; 32]).unwrap();
        let b = p256::ecdsa::SigningKey::from_slice(&[4_u8; 32]).unwrap();
        let mut jwk = serde_json::to_value(JsonWebKey::from(&a)).unwrap();
        jwk["d"] = serde_json::to_value(JsonWebKey::from(&b)).unwrap()["d"].clone();
        let err = SigningKey::from_jwk(&jwk).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid `EC` key: private and public keys encoded in JWK do not match"
        );

        // RSA key with a corrupted private exponent.
        let mut rsa = rfc7520_rsa(None);
        rsa["d"] = json!("AQAB");
        let err = SigningKey::from_jwk(&rsa).unwrap_err();
        assert!(
            matches!(err, MintError::InvalidKey { kty: "RSA", .. }),
            "{err}"
        );

        // Bad base64 in key material.
        let err = SigningKey::from_jwk(&json!({"kty":"oct","k":"not base64!"})).unwrap_err();
        assert!(matches!(err, MintError::InvalidJwk(_)), "{err}");
    }

    #[test]
    fn rejects_rsa_keys_under_2048_bits() {
        // A 92-bit key built from two Mersenne primes.
        let p = BigUint::from(2_147_483_647_u64); // 2^31 - 1
        let q = BigUint::from(2_305_843_009_213_693_951_u64); // 2^61 - 1
        let small = RsaPrivateKey::from_p_q(p, q, BigUint::from(65_537_u32)).unwrap();
        let jwk = serde_json::to_value(JsonWebKey::from(&small)).unwrap();
        let err = SigningKey::from_jwk(&jwk).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key too weak for RS256: the key has 92 bits, at least 2048 are required"
        );
    }

    #[test]
    fn claims_with_expiry_sets_exp_and_iat() {
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("d"));
        let out = claims_with_expiry(claims.clone(), 1_000, Some(300));
        assert_eq!(out.get("exp"), Some(&json!(1_300)));
        assert_eq!(out.get("iat"), Some(&json!(1_000)));
        assert_eq!(out.get("sub"), Some(&json!("d")));

        // An existing iat is kept, an existing exp replaced.
        claims.insert("iat".into(), json!(900));
        claims.insert("exp".into(), json!(5));
        let out = claims_with_expiry(claims.clone(), 1_000, Some(-10));
        assert_eq!(out.get("exp"), Some(&json!(990)));
        assert_eq!(out.get("iat"), Some(&json!(900)));

        // No expiry: unchanged.
        assert_eq!(claims_with_expiry(claims.clone(), 1_000, None), claims);
        // No overflow.
        let out = claims_with_expiry(Map::new(), i64::MAX, Some(10));
        assert_eq!(out.get("exp"), Some(&json!(i64::MAX)));
    }

    #[test]
    fn sign_keeps_claims_exactly() {
        let key = SigningKey::from_jwk(&serde_json::from_str(rfc7520_oct_jwk()).unwrap()).unwrap();
        // Values jwt-compact's `Claims` would reinterpret or reject.
        let claims = json!({"exp": 1.5, "nbf": "soon", "iat": null, "big": u64::MAX});
        let claims = claims.as_object().unwrap();
        let token = key.sign(claims).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let decoded: Value = serde_json::from_slice(&b64(payload)).unwrap();
        assert_eq!(&decoded, &Value::Object(claims.clone()));
        // Empty claims are fine too.
        let token = key.sign(&Map::new()).unwrap();
        assert_eq!(token.split('.').nth(1), Some("e30"));
    }

    #[test]
    fn thumbprints() {
        // RFC 7638 §3.1.
        let jwk = json!({"kty":"RSA",
            "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e":"AQAB","alg":"RS256","kid":"2011-04-29"});
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // RFC 8037 §A.3: the private and public JWK have the same thumbprint.
        let private: Value = serde_json::from_str(RFC8037_JWK).unwrap();
        let mut public = private.clone();
        public.as_object_mut().unwrap().remove("d");
        let expected = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
        assert_eq!(jwk_thumbprint(&private).unwrap(), expected);
        assert_eq!(jwk_thumbprint(&public).unwrap(), expected);
        assert!(jwk_thumbprint(&json!({"kty":"foo"})).is_err());
    }

    #[test]
    fn debug_does_not_show_key_material() {
        let key = SigningKey::from_jwk(&serde_json::from_str(rfc7520_oct_jwk()).unwrap()).unwrap();
        let shown = format!("{key:?}");
        assert!(shown.contains("HS256"), "{shown}");
        assert!(!shown.contains("hJtX"), "{shown}");
    }
}
