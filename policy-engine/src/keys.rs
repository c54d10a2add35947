//! Verification keys, each pinned to exactly one algorithm at load time.
//!
//! The token's `alg` header never chooses how a signature is checked; it only has to agree with
//! the algorithm of the key that checks it (RFC 8725 §3.1). That closes algorithm confusion
//! (an RSA public key used as an HMAC secret) and `alg: none` by construction.

use std::fmt;

use base64ct::{Base64, Base64Unpadded, Base64Url, Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use jwt_compact::alg::{Ed25519, Rsa};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as JwtAlgorithm, AlgorithmSignature};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value};
use sha2::{Sha256, Sha384, Sha512};

use crate::error::ConfigError;
use crate::verifier::{Scheme, Verifier};

/// The signature algorithms attestgate verifies.
///
/// ```
/// use attestgate_policy::{Algorithm, Gate};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// // The Approov secret is pinned to HS256: a token saying `alg: HS512` is refused.
/// assert_eq!(gate.keys().keys()[0].algorithm(), Algorithm::Hs256);
/// assert_eq!(Algorithm::EdDsa.to_string(), "EdDSA");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC SHA-256: the Approov default.
    Hs256,
    /// HMAC SHA-384.
    Hs384,
    /// HMAC SHA-512.
    Hs512,
    /// ECDSA P-256 SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    Rs512,
    /// RSASSA-PSS SHA-256.
    Ps256,
    /// RSASSA-PSS SHA-384.
    Ps384,
    /// RSASSA-PSS SHA-512.
    Ps512,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Parses a JOSE `alg` name; `none` and anything unknown give `None`.
    ///
    /// ```
    /// use attestgate_policy::Algorithm;
    /// assert_eq!(Algorithm::from_name("ES256"), Some(Algorithm::Es256));
    /// assert_eq!(Algorithm::from_name("none"), None);
    /// assert_eq!(Algorithm::from_name("hs256"), None); // names are case-sensitive
    /// ```
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Some(match name {
            "HS256" => Algorithm::Hs256,
            "HS384" => Algorithm::Hs384,
            "HS512" => Algorithm::Hs512,
            "ES256" => Algorithm::Es256,
            "RS256" => Algorithm::Rs256,
            "RS384" => Algorithm::Rs384,
            "RS512" => Algorithm::Rs512,
            "PS256" => Algorithm::Ps256,
            "PS384" => Algorithm::Ps384,
            "PS512" => Algorithm::Ps512,
            "EdDSA" => Algorithm::EdDsa,
            _ => return None,
        })
    }

    /// The JOSE name.
    ///
    /// ```
    /// use attestgate_policy::Algorithm;
    /// assert_eq!(Algorithm::Ps384.name(), "PS384");
    /// assert_eq!(Algorithm::from_name(Algorithm::Es256.name()), Some(Algorithm::Es256));
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::Hs384 => "HS384",
            Algorithm::Hs512 => "HS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// The JWK `kty` this algorithm's keys have.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::Algorithm::Ps256.kty(), "RSA");
    /// ```
    pub fn kty(self) -> &'static str {
        match self {
            Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => "oct",
            Algorithm::Es256 => "EC",
            Algorithm::EdDsa => "OKP",
            _ => "RSA",
        }
    }

    /// The shortest HMAC secret this algorithm accepts: its hash's output size (RFC 7518
    /// §3.2); 32 for anything but HS384 and HS512.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::Algorithm::Hs512.min_hmac_key_len(), 64);
    /// ```
    pub fn min_hmac_key_len(self) -> usize {
        match self {
            Algorithm::Hs384 => 48,
            Algorithm::Hs512 => 64,
            _ => 32,
        }
    }

    /// The jwt-compact RSA algorithm, for `RS*` and `PS*`.
    ///
    /// ```
    /// use attestgate_policy::Algorithm;
    /// use jwt_compact::Algorithm as _;
    /// assert_eq!(Algorithm::Ps256.rsa().map(|rsa| rsa.name().into_owned()).as_deref(), Some("PS256"));
    /// assert!(Algorithm::Es256.rsa().is_none());
    /// ```
    pub fn rsa(self) -> Option<Rsa> {
        Some(match self {
            Algorithm::Rs256 => Rsa::rs256(),
            Algorithm::Rs384 => Rsa::rs384(),
            Algorithm::Rs512 => Rsa::rs512(),
            Algorithm::Ps256 => Rsa::ps256(),
            Algorithm::Ps384 => Rsa::ps384(),
            Algorithm::Ps512 => Rsa::ps512(),
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

enum Material {
    // HMAC state with the key already absorbed (its inner and outer pads hashed once, at load):
    // each verification clones it and hashes only the signing input.
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
    // Public keys keep their DER SubjectPublicKeyInfo, made once at load, for a host verifier.
    Es256(p256::ecdsa::VerifyingKey, Box<[u8]>),
    Rsa(Rsa, rsa::RsaPublicKey, Box<[u8]>),
    EdDsa(ed25519_dalek::VerifyingKey),
}

/// One verification key with its pinned algorithm. `Debug` never shows key material.
///
/// ```
/// use attestgate_policy::Gate;
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let key = &gate.keys().keys()[0];
/// assert_eq!(format!("{key:?}"), "Key { kid: None, alg: Hs256, .. }");
/// ```
pub struct Key {
    kid: Option<String>,
    alg: Algorithm,
    material: Material,
}

impl fmt::Debug for Key {
    // Never print key material, even for public keys: oct keys are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The key id, if the JWK had one.
    ///
    /// ```
    /// use attestgate_policy::remote::parse_jwks;
    /// let jwks = br#"{"keys":[{"kty":"oct","alg":"HS256","kid":"k1","k":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"}]}"#;
    /// let (keys, _) = parse_jwks(jwks).unwrap();
    /// assert_eq!(keys.keys()[0].kid(), Some("k1"));
    /// ```
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    ///
    /// ```
    /// use attestgate_policy::{remote::parse_jwks, Algorithm};
    /// let jwks = br#"{"keys":[{"kty":"oct","alg":"HS384","k":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3"}]}"#;
    /// let (keys, _) = parse_jwks(jwks).unwrap();
    /// assert_eq!(keys.keys()[0].algorithm(), Algorithm::Hs384);
    /// ```
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Checks `signature` over `signing_input` (the token up to its last `.`) with this key,
    /// through `verifier`: the host's crypto for a scheme it took, the built-in path otherwise.
    pub(crate) fn verify_signature(
        &self,
        verifier: &Verifier,
        signing_input: &[u8],
        signature: &[u8],
    ) -> bool {
        match &self.material {
            Material::Hs256(key) => check_hmac(key, signing_input, signature),
            Material::Hs384(key) => check_hmac(key, signing_input, signature),
            Material::Hs512(key) => check_hmac(key, signing_input, signature),
            Material::Es256(key, spki) => {
                verifier.ecdsa_p256(key, Some(spki), signing_input, signature)
            }
            Material::Rsa(alg, key, spki) => self
                .pkcs1_scheme()
                .and_then(|scheme| {
                    verifier.rsa_pkcs1_on_host(scheme, spki, key.size(), signing_input, signature)
                })
                .unwrap_or_else(|| check_signature(alg, key, signing_input, signature)),
            Material::EdDsa(key) => check_signature(&Ed25519, key, signing_input, signature),
        }
    }

    /// The host-checkable scheme of an `RS*` key (PSS stays built in: Envoy's
    /// `verify_signature` pads PKCS#1 v1.5 only).
    fn pkcs1_scheme(&self) -> Option<Scheme> {
        match self.alg {
            Algorithm::Rs256 => Some(Scheme::RsaPkcs1Sha256),
            Algorithm::Rs384 => Some(Scheme::RsaPkcs1Sha384),
            Algorithm::Rs512 => Some(Scheme::RsaPkcs1Sha512),
            _ => None,
        }
    }

    /// Parses one JWK from the config. `index` is its position, used in error messages.
    pub(crate) fn from_jwk(index: usize, jwk: &Map<String, Value>) -> Result<Key, ConfigError> {
        let kid = optional_str(index, jwk, "kid")?;
        let at = |message: String| ConfigError::Key {
            key: describe(index, kid.as_deref()),
            message,
        };
        if let Some(name) = jwk
            .keys()
            .find(|name| !KNOWN_JWK_MEMBERS.contains(&name.as_str()))
        {
            return Err(at(format!("unknown jwk member `{name}`")));
        }
        if let Some(usage) = optional_str(index, jwk, "use")? {
            if usage != "sig" {
                return Err(at(format!("`use` is `{usage}`, expected `sig`")));
            }
        }
        if let Some(ops) = jwk.get("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !verifies {
                return Err(at("`key_ops` does not include `verify`".into()));
            }
        }
        let kty = optional_str(index, jwk, "kty")?.ok_or_else(|| at("missing `kty`".into()))?;
        let declared = optional_str(index, jwk, "alg")?;
        let alg = match declared.as_deref() {
            Some(name) => Algorithm::from_name(name)
                .ok_or_else(|| at(format!("unsupported algorithm `{name}`")))?,
            None => default_alg(&kty, jwk).ok_or_else(|| {
                at(format!(
                    "cannot infer an algorithm for kty `{kty}`; set `alg`"
                ))
            })?,
        };
        let parsed: JsonWebKey<'_> = serde_json::from_value(Value::Object(jwk.clone()))
            .map_err(|err| at(format!("invalid jwk: {err}")))?;
        let private = |parsed: &JsonWebKey<'_>| match parsed {
            JsonWebKey::Rsa { private_parts, .. } => private_parts.is_some(),
            JsonWebKey::EllipticCurve { secret, .. } | JsonWebKey::KeyPair { secret, .. } => {
                secret.is_some()
            }
            _ => false,
        };
        if private(&parsed) {
            return Err(at(
                "holds private key material; configure the public key only".into(),
            ));
        }
        let wrong_type = || at(format!("algorithm {alg} does not fit kty `{kty}`"));
        let material = match alg {
            Algorithm::Hs256 | Algorithm::Hs384 | Algorithm::Hs512 => {
                let JsonWebKey::Symmetric { secret } = &parsed else {
                    return Err(wrong_type());
                };
                hmac_material(alg, secret.as_ref()).map_err(at)?
            }
            Algorithm::Es256 => {
                let key = p256::ecdsa::VerifyingKey::try_from(&parsed)
                    .map_err(|err| at(format!("invalid P-256 key: {err}")))?;
                let spki =
                    p256::pkcs8::EncodePublicKey::to_public_key_der(&p256::PublicKey::from(&key))
                        .map_err(|err| at(format!("cannot encode P-256 key: {err}")))?;
                Material::Es256(key, spki.into_vec().into_boxed_slice())
            }
            Algorithm::EdDsa => Material::EdDsa(
                ed25519_dalek::VerifyingKey::try_from(&parsed)
                    .map_err(|err| at(format!("invalid Ed25519 key: {err}")))?,
            ),
            rsa_alg => {
                let rsa = rsa_alg.rsa().ok_or_else(wrong_type)?;
                let public = rsa::RsaPublicKey::try_from(&parsed)
                    .map_err(|err| at(format!("invalid RSA key: {err}")))?;
                // RFC 7518 §3.3. (jwt-compact's StrongKey would also refuse e.g. 2560 bits.)
                let bits = public.n().bits();
                if bits < MIN_RSA_BITS {
                    return Err(at(format!(
                        "weak key: RSA modulus is {bits} bits, at least {MIN_RSA_BITS} required"
                    )));
                }
                let spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&public)
                    .map_err(|err| at(format!("cannot encode RSA key: {err}")))?;
                Material::Rsa(rsa, public, spki.into_vec().into_boxed_slice())
            }
        };
        Ok(Key { kid, alg, material })
    }

    /// The Approov-style shared secret: base64 of the HS256 key.
    pub(crate) fn from_approov_secret(secret: &str) -> Result<Key, ConfigError> {
        let at = |message: String| ConfigError::Key {
            key: "approov_secret".into(),
            message,
        };
        let bytes = decode_approov_secret(secret).map_err(|message| at(message.into()))?;
        Ok(Key {
            kid: None,
            alg: Algorithm::Hs256,
            material: hmac_material(Algorithm::Hs256, &bytes).map_err(at)?,
        })
    }
}

/// jwt-compact's typed signature parsing (fixed lengths, ECDSA scalars in range) and check.
/// HMAC verification from a prepared key state; `verify_slice` compares in constant time and
/// refuses a tag of any other length (no truncated MACs).
fn check_hmac<M: Mac + Clone>(prepared: &M, signing_input: &[u8], signature: &[u8]) -> bool {
    let mut mac = prepared.clone();
    mac.update(signing_input);
    mac.verify_slice(signature).is_ok()
}

fn check_signature<A: JwtAlgorithm>(
    alg: &A,
    key: &A::VerifyingKey,
    signing_input: &[u8],
    signature: &[u8],
) -> bool {
    if A::Signature::LENGTH.is_some_and(|len| len.get() != signature.len()) {
        return false;
    }
    A::Signature::try_from_slice(signature)
        .is_ok_and(|signature| alg.verify_signature(&signature, key, signing_input))
}

/// Members RFC 7517/7518 define for signature keys; anything else is probably a typo.
const KNOWN_JWK_MEMBERS: &[&str] = &[
    "kty", "use", "key_ops", "alg", "kid", "x5u", "x5c", "x5t", "x5t#S256", "crv", "x", "y", "d",
    "n", "e", "p", "q", "dp", "dq", "qi", "oth", "k", "ext",
];

fn describe(index: usize, kid: Option<&str>) -> String {
    match kid {
        Some(kid) => format!("keys[{index}] (kid `{kid}`)"),
        None => format!("keys[{index}]"),
    }
}

fn optional_str(
    index: usize,
    jwk: &Map<String, Value>,
    member: &str,
) -> Result<Option<String>, ConfigError> {
    match jwk.get(member) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConfigError::Key {
            key: describe(index, None),
            message: format!("`{member}` must be a string"),
        }),
    }
}

/// The algorithm a key type allows when the JWK names none. RSA keys default to RS256;
/// PS256 needs `"alg": "PS256"` on the JWK.
fn default_alg(kty: &str, jwk: &Map<String, Value>) -> Option<Algorithm> {
    let crv = jwk.get("crv").and_then(Value::as_str);
    match (kty, crv) {
        ("oct", _) => Some(Algorithm::Hs256),
        ("EC", Some("P-256")) => Some(Algorithm::Es256),
        ("RSA", _) => Some(Algorithm::Rs256),
        ("OKP", Some("Ed25519")) => Some(Algorithm::EdDsa),
        _ => None,
    }
}

fn hmac_material(alg: Algorithm, secret: &[u8]) -> Result<Material, String> {
    let min = alg.min_hmac_key_len();
    if secret.len() < min {
        return Err(format!(
            "weak key: {alg} secret is {} bytes, at least {min} required",
            secret.len()
        ));
    }
    // HMAC takes a key of any length; the error cannot happen, but is not unwrapped.
    let invalid = |_| "the HMAC key was refused".to_owned();
    Ok(match alg {
        Algorithm::Hs384 => Material::Hs384(Hmac::new_from_slice(secret).map_err(invalid)?),
        Algorithm::Hs512 => Material::Hs512(Hmac::new_from_slice(secret).map_err(invalid)?),
        _ => Material::Hs256(Hmac::new_from_slice(secret).map_err(invalid)?),
    })
}

/// RFC 7518 §3.3: the shortest RSA modulus accepted, in bits, for verifying and for signing.
///
/// ```
/// assert_eq!(attestgate_policy::MIN_RSA_BITS, 2048);
/// ```
pub const MIN_RSA_BITS: usize = 2048;

/// Decodes an Approov-style secret. Approov hands secrets out as standard base64; people paste
/// them url-safe or unpadded too, with stray surrounding whitespace. The gate's loader and
/// `mint` share this so a secret one accepts the other accepts too.
///
/// ```
/// use attestgate_policy::decode_approov_secret;
/// let bytes = decode_approov_secret(" MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n").unwrap();
/// assert_eq!(bytes, b"01234567890123456789012345678901");
/// // URL-safe and unpadded spellings decode too.
/// assert_eq!(decode_approov_secret("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE").unwrap(), bytes);
/// assert!(decode_approov_secret("").is_err());
/// ```
pub fn decode_approov_secret(text: &str) -> Result<Vec<u8>, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the secret is empty");
    }
    Base64::decode_vec(text)
        .or_else(|_| Base64Unpadded::decode_vec(text))
        .or_else(|_| Base64Url::decode_vec(text))
        .or_else(|_| Base64UrlUnpadded::decode_vec(text))
        .map_err(|_| "not valid base64 (standard or url-safe)")
}

/// All configured keys.
///
/// ```
/// use attestgate_policy::Gate;
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// assert_eq!(gate.keys().keys().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    pub(crate) fn load(config: &crate::config::KeysConfig) -> Result<KeySet, ConfigError> {
        let mut keys = config
            .keys
            .iter()
            .enumerate()
            .map(|(index, jwk)| Key::from_jwk(index, jwk))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(secret) = &config.approov_secret {
            keys.push(Key::from_approov_secret(secret)?);
        }
        if keys.is_empty() && config.remote.is_none() {
            return Err(ConfigError::NoKeys);
        }
        if let Some(kid) = shared_kid(&keys) {
            return Err(ConfigError::Key {
                key: format!("kid `{kid}`"),
                message: "two keys share this kid".into(),
            });
        }
        Ok(KeySet { keys })
    }

    /// The keys, in config order (the Approov secret last).
    ///
    /// ```
    /// use attestgate_policy::{Algorithm, Gate};
    /// let gate = Gate::from_json(r#"{ "keys": {
    ///     "keys": [ { "kty": "oct", "alg": "HS512", "kid": "a", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEyMw" } ],
    ///     "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="
    /// } }"#).unwrap();
    /// let algs: Vec<_> = gate.keys().keys().iter().map(|k| (k.kid(), k.algorithm())).collect();
    /// assert_eq!(algs, [(Some("a"), Algorithm::Hs512), (None, Algorithm::Hs256)]);
    /// ```
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Parses a fetched JWKS (`{"keys": [...]}`) with the same rules as configured keys.
    /// Keys that fail those rules are skipped and described in the second value; no usable
    /// key at all, or two keys sharing a kid, is an error.
    pub(crate) fn from_jwks(body: &[u8]) -> Result<(KeySet, Vec<String>), String> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|err| format!("JWKS is not JSON: {err}"))?;
        let jwks = value
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("JWKS has no `keys` array")?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, jwk) in jwks.iter().enumerate() {
            let loaded = jwk
                .as_object()
                .ok_or_else(|| format!("keys[{index}] is not an object"))
                .and_then(|jwk| Key::from_jwk(index, jwk).map_err(|err| err.to_string()));
            match loaded {
                Ok(key) => keys.push(key),
                Err(message) => skipped.push(message),
            }
        }
        if keys.is_empty() {
            return Err(format!(
                "JWKS has no usable key ({})",
                if skipped.is_empty() {
                    "it is empty".to_owned()
                } else {
                    skipped.join("; ")
                }
            ));
        }
        if let Some(kid) = shared_kid(&keys) {
            return Err(format!("JWKS has two keys with kid `{kid}`"));
        }
        Ok((KeySet { keys }, skipped))
    }
}

/// A `kid` two keys share: a token naming it would have two candidate keys.
fn shared_kid(keys: &[Key]) -> Option<&str> {
    keys.iter().enumerate().find_map(|(i, key)| {
        let kid = key.kid()?;
        keys.iter()
            .skip(i + 1)
            .any(|other| other.kid() == Some(kid))
            .then_some(kid)
    })
}

#[cfg(test)]
mod tests {
    use super::Algorithm;
    use crate::config::{JWK_ALGORITHMS, JWK_KEY_TYPES};

    /// The config schema lists the JWK `alg` and `kty` values; they are the parser's.
    #[test]
    fn the_schemas_jwk_enums_are_the_parsers() {
        let parsed: Vec<Algorithm> = JWK_ALGORITHMS
            .iter()
            .filter_map(|name| Algorithm::from_name(name))
            .collect();
        assert_eq!(parsed.len(), JWK_ALGORITHMS.len(), "{JWK_ALGORITHMS:?}");
        for alg in &parsed {
            assert!(JWK_KEY_TYPES.contains(&alg.kty()), "{alg:?}");
        }
        for kty in JWK_KEY_TYPES {
            assert!(parsed.iter().any(|alg| alg.kty() == kty), "{kty}");
        }
        // Every algorithm the parser knows is listed: each variant, by its name.
        let every = [
            Algorithm::Hs256,
            Algorithm::Hs384,
            Algorithm::Hs512,
            Algorithm::Es256,
            Algorithm::Rs256,
            Algorithm::Rs384,
            Algorithm::Rs512,
            Algorithm::Ps256,
            Algorithm::Ps384,
            Algorithm::Ps512,
            Algorithm::EdDsa,
        ];
        for alg in every {
            // A new variant fails to compile here until it is listed above.
            match alg {
                Algorithm::Hs256
                | Algorithm::Hs384
                | Algorithm::Hs512
                | Algorithm::Es256
                | Algorithm::Rs256
                | Algorithm::Rs384
                | Algorithm::Rs512
                | Algorithm::Ps256
                | Algorithm::Ps384
                | Algorithm::Ps512
                | Algorithm::EdDsa => assert!(JWK_ALGORITHMS.contains(&alg.name()), "{alg:?}"),
            }
        }
    }
}
