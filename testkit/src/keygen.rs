//! `attestgate keygen`: generates a signing key as a private JWK plus the matching JWKS.
//!
//! The private JWK is what `attestgate mint` signs with; the JWKS (`{"keys":[…]}`) is what
//! the gate is configured to verify with. Randomness comes from the operating system
//! (`rand::rngs::OsRng`).

use core::fmt;

use jwt_compact::alg::{RsaPrivateKey, SecretBytes};
use jwt_compact::jwk::JsonWebKey;
use rand::rngs::OsRng;
use rand::RngCore;
use rsa::traits::PrivateKeyParts;
use serde_json::Value;

use crate::jwk_thumbprint;

/// RSA modulus size for generated `RS*` / `PS*` keys, in bits.
const RSA_BITS: usize = 2048;

/// The algorithms `keygen` accepts, in their canonical spelling.
const ALGORITHMS: [&str; 11] = [
    "HS256", "HS384", "HS512", "ES256", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "EdDSA",
];

/// A freshly generated signing key.
///
/// Both JWKs carry `"alg"`, `"kid"` and `"use":"sig"`. For the symmetric `HS*` algorithms
/// there is no public key: the "public" JWKS holds the same `oct` key, secret included, so
/// it must be kept as secret as the private JWK. `Debug` does not show key material.
pub struct GeneratedKey {
    /// The private JWK, for signing (`attestgate mint`).
    pub private_jwk: Value,
    /// A JWKS `{"keys":[public JWK]}`, for verifying (the gate's configuration).
    pub public_jwks: Value,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("alg", &self.private_jwk.get("alg"))
            .field("kid", &self.private_jwk.get("kid"))
            .finish_non_exhaustive()
    }
}

/// Errors from [`keygen`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeygenError {
    /// The algorithm is not one `keygen` can generate a key for.
    #[error(
        "unsupported algorithm `{0}` (expected one of HS256, HS384, HS512, ES256, \
         RS256, RS384, RS512, PS256, PS384, PS512, EdDSA)"
    )]
    UnsupportedAlgorithm(String),
    /// RSA key generation failed.
    #[error("rsa key generation failed: {0}")]
    Rsa(String),
    /// The key could not be turned into a JWK.
    #[error("cannot encode the key as a jwk: {0}")]
    Encode(String),
}

/// Generates a signing key for `alg`: `HS256`, `ES256`, `RS256`, `PS256` or `EdDSA`
/// (also `HS384`, `HS512`, `RS384`, `RS512`, `PS384`, `PS512`; names are matched
/// case-insensitively and written in their canonical spelling).
///
/// `HS*` keys are random secrets as long as the hash (32 bytes for `HS256`), `ES256` keys
/// are on P-256, `RS*`/`PS*` keys have a 2048-bit modulus (and the private JWK has all of
/// `p`, `q`, `dp`, `dq`, `qi`), `EdDSA` keys are Ed25519. The key ID is `kid` when given,
/// else the key's RFC 7638 thumbprint (SHA-256, base64url).
///
/// # Errors
///
/// [`KeygenError::UnsupportedAlgorithm`] for an unknown algorithm; the other variants only
/// if key generation or encoding fails, which is not expected.
pub fn keygen(alg: &str, kid: Option<&str>) -> Result<GeneratedKey, KeygenError> {
    let alg = ALGORITHMS
        .iter()
        .copied()
        .find(|known| known.eq_ignore_ascii_case(alg))
        .ok_or_else(|| KeygenError::UnsupportedAlgorithm(alg.to_owned()))?;
    let mut rng = OsRng;
    let private = match alg {
        "HS256" | "HS384" | "HS512" => {
            let len = match alg {
                "HS384" => 48,
                "HS512" => 64,
                _ => 32,
            };
            let mut secret = vec![0_u8; len];
            rng.fill_bytes(&mut secret);
            let jwk = JsonWebKey::Symmetric {
                secret: SecretBytes::owned(secret),
            };
            to_json(&jwk)?
        }
        "ES256" => to_json(&JsonWebKey::from(&p256::ecdsa::SigningKey::random(
            &mut rng,
        )))?,
        "EdDSA" => to_json(&JsonWebKey::from(&ed25519_dalek::SigningKey::generate(
            &mut rng,
        )))?,
        _ => {
            let key = RsaPrivateKey::new(&mut rng, RSA_BITS)
                .map_err(|err| KeygenError::Rsa(err.to_string().to_lowercase()))?;
            let jwk = to_json(&rsa_private_jwk(&key))?;
            jwk
        }
    };
    let public = {
        let parsed: JsonWebKey<'_> = serde_json::from_value(private.clone())
            .map_err(|err| KeygenError::Encode(err.to_string()))?;
        to_json(&parsed.to_verifying_key())?
    };
    let kid = match kid {
        Some(kid) => kid.to_owned(),
        None => jwk_thumbprint(&public).map_err(|err| KeygenError::Encode(err.to_string()))?,
    };
    Ok(GeneratedKey {
        private_jwk: with_metadata(private, alg, &kid)?,
        public_jwks: serde_json::json!({ "keys": [with_metadata(public, alg, &kid)?] }),
    })
}

/// The private JWK of an RSA key, with the CRT members `dp`, `dq` and `qi` that
/// `jwt-compact` leaves out (RFC 7518 §6.3.2 wants all of them once `p` and `q` are given).
fn rsa_private_jwk(key: &RsaPrivateKey) -> JsonWebKey<'_> {
    let mut jwk = JsonWebKey::from(key);
    if let JsonWebKey::Rsa {
        private_parts: Some(parts),
        ..
    } = &mut jwk
    {
        if let (Some(dp), Some(dq), Some(qi)) = (key.dp(), key.dq(), key.crt_coefficient()) {
            if parts.other_prime_factors.is_empty() {
                parts.p_crt_exponent = Some(SecretBytes::owned(dp.to_bytes_be()));
                parts.q_crt_exponent = Some(SecretBytes::owned(dq.to_bytes_be()));
                parts.q_crt_coefficient = Some(SecretBytes::owned(qi.to_bytes_be()));
            }
        }
    }
    jwk
}

fn to_json(jwk: &JsonWebKey<'_>) -> Result<Value, KeygenError> {
    serde_json::to_value(jwk).map_err(|err| KeygenError::Encode(err.to_string()))
}

/// Adds `alg`, `kid` and `use` to a JWK.
fn with_metadata(jwk: Value, alg: &str, kid: &str) -> Result<Value, KeygenError> {
    let Value::Object(mut obj) = jwk else {
        return Err(KeygenError::Encode(
            "a jwk must be a json object".to_owned(),
        ));
    };
    obj.insert("alg".to_owned(), Value::from(alg));
    obj.insert("kid".to_owned(), Value::from(kid));
    obj.insert("use".to_owned(), Value::from("sig"));
    Ok(Value::Object(obj))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::SigningKey;
    use base64ct::{Base64UrlUnpadded, Encoding};
    use jwt_compact::alg::{Ed25519, Es256, Hs256, Hs256Key, Hs384, Hs384Key, Hs512, Hs512Key};
    use jwt_compact::alg::{Rsa, RsaPublicKey};
    use jwt_compact::{AlgorithmExt, UntrustedToken, ValidationError};
    use rsa::BigUint;
    use serde_json::{json, Map};

    /// Base64url-decodes a JWK member.
    fn member_bytes(jwk: &Map<String, Value>, name: &str) -> Option<Vec<u8>> {
        Base64UrlUnpadded::decode_vec(jwk.get(name)?.as_str()?).ok()
    }

    fn claims() -> Map<String, Value> {
        json!({"sub": "device-7", "exp": 4_102_444_800_i64, "did": "abc"})
            .as_object()
            .unwrap()
            .clone()
    }

    /// Verifies `token` against the public JWK with jwt-compact, for algorithm `alg`.
    fn verify(alg: &str, public: &Value, token: &str) -> Result<(), ValidationError> {
        let jwk: JsonWebKey<'_> = serde_json::from_value(public.clone()).unwrap();
        let untrusted = UntrustedToken::new(token).unwrap();
        match alg {
            "HS256" => Hs256
                .validator::<Value>(&Hs256Key::try_from(&jwk).unwrap())
                .validate(&untrusted)
                .map(drop),
            "HS384" => Hs384
                .validator::<Value>(&Hs384Key::try_from(&jwk).unwrap())
                .validate(&untrusted)
                .map(drop),
            "HS512" => Hs512
                .validator::<Value>(&Hs512Key::try_from(&jwk).unwrap())
                .validate(&untrusted)
                .map(drop),
            "ES256" => Es256
                .validator::<Value>(&p256::ecdsa::VerifyingKey::try_from(&jwk).unwrap())
                .validate(&untrusted)
                .map(drop),
            "EdDSA" => Ed25519
                .validator::<Value>(&ed25519_dalek::VerifyingKey::try_from(&jwk).unwrap())
                .validate(&untrusted)
                .map(drop),
            rsa => rsa
                .parse::<Rsa>()
                .unwrap()
                .validator::<Value>(&RsaPublicKey::try_from(&jwk).unwrap())
                .validate(&untrusted)
                .map(drop),
        }
    }

    fn check_generated(alg: &str, generated: &GeneratedKey, kid: Option<&str>) {
        let private = generated.private_jwk.as_object().unwrap();
        let keys = generated.public_jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let public = &keys[0];

        // Metadata.
        let expected_kid = match kid {
            Some(kid) => kid.to_owned(),
            None => jwk_thumbprint(public).unwrap(),
        };
        for jwk in [&generated.private_jwk, public] {
            assert_eq!(jwk["alg"], json!(alg));
            assert_eq!(jwk["use"], json!("sig"));
            assert_eq!(jwk["kid"], json!(expected_kid));
        }
        assert_eq!(
            jwk_thumbprint(&generated.private_jwk).unwrap(),
            jwk_thumbprint(public).unwrap()
        );

        // Public part carries no private members (except for symmetric keys).
        if alg.starts_with("HS") {
            assert_eq!(&generated.private_jwk, public);
        } else {
            for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(public.get(member).is_none(), "{alg}: public has `{member}`");
            }
            assert!(private.contains_key("d"));
        }

        // The private key signs (through attestgate's minting code) and the token verifies
        // against the public JWK.
        let key = SigningKey::from_jwk(&generated.private_jwk).unwrap();
        assert_eq!(key.algorithm(), alg);
        assert_eq!(key.kid(), Some(expected_kid.as_str()));
        let token = key.sign(&claims()).unwrap();
        verify(alg, public, &token).unwrap();
        let header: Value = serde_json::from_slice(
            &Base64UrlUnpadded::decode_vec(token.split('.').next().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(header["kid"], json!(expected_kid));

        // ...and does not verify against another key of the same kind. (RSA keys are slow
        // to generate in debug builds, so the other RSA key is this one with `n` altered.)
        let other = if alg.starts_with("HS") || alg.starts_with("ES") || alg == "EdDSA" {
            keygen(alg, None).unwrap().public_jwks["keys"][0].clone()
        } else {
            let mut n = member_bytes(public.as_object().unwrap(), "n").unwrap();
            *n.last_mut().unwrap() ^= 0x02;
            let mut other = public.clone();
            other["n"] = json!(Base64UrlUnpadded::encode_string(&n));
            other
        };
        assert!(verify(alg, &other, &token).is_err());
    }

    #[test]
    fn hs256() {
        let generated = keygen("HS256", Some("hmac-1")).unwrap();
        check_generated("HS256", &generated, Some("hmac-1"));
        let secret = member_bytes(generated.private_jwk.as_object().unwrap(), "k").unwrap();
        assert_eq!(secret.len(), 32);
    }

    #[test]
    fn hs384_and_hs512() {
        for (alg, len) in [("HS384", 48), ("HS512", 64)] {
            let generated = keygen(alg, None).unwrap();
            check_generated(alg, &generated, None);
            let secret = member_bytes(generated.private_jwk.as_object().unwrap(), "k").unwrap();
            assert_eq!(secret.len(), len);
        }
    }

    #[test]
    fn es256() {
        let generated = keygen("ES256", None).unwrap();
        check_generated("ES256", &generated, None);
        assert_eq!(generated.private_jwk["crv"], json!("P-256"));
    }

    #[test]
    fn eddsa() {
        let generated = keygen("EdDSA", Some("ed-key")).unwrap();
        check_generated("EdDSA", &generated, Some("ed-key"));
        assert_eq!(generated.private_jwk["crv"], json!("Ed25519"));
        assert_eq!(generated.private_jwk["kty"], json!("OKP"));
    }

    /// Checks the RSA private JWK: 2048 bits and consistent CRT members.
    fn check_rsa_private(private: &Value) {
        let obj = private.as_object().unwrap();
        let int = |name: &str| BigUint::from_bytes_be(&member_bytes(obj, name).unwrap());
        assert_eq!(int("n").bits(), 2048);
        let one = BigUint::from(1_u32);
        let (p, q, d) = (int("p"), int("q"), int("d"));
        assert_eq!(&p * &q, int("n"));
        assert_eq!(int("dp"), &d % (&p - &one));
        assert_eq!(int("dq"), &d % (&q - &one));
        assert_eq!((int("qi") * &q) % &p, one);
    }

    #[test]
    fn rs256() {
        let generated = keygen("RS256", None).unwrap();
        check_generated("RS256", &generated, None);
        check_rsa_private(&generated.private_jwk);
    }

    #[test]
    fn ps256() {
        let generated = keygen("PS256", Some("rsa-pss")).unwrap();
        check_generated("PS256", &generated, Some("rsa-pss"));
        check_rsa_private(&generated.private_jwk);
    }

    #[test]
    fn algorithm_names() {
        let generated = keygen("eddsa", None).unwrap();
        assert_eq!(generated.private_jwk["alg"], json!("EdDSA"));
        let generated = keygen("hs256", None).unwrap();
        assert_eq!(generated.private_jwk["alg"], json!("HS256"));
        for bad in ["", "none", "ES384", "Ed25519", "RSA"] {
            let err = keygen(bad, None).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("unsupported algorithm `{bad}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn keys_are_fresh_and_debug_is_redacted() {
        let a = keygen("HS256", None).unwrap();
        let b = keygen("HS256", None).unwrap();
        assert_ne!(a.private_jwk["k"], b.private_jwk["k"]);
        assert_ne!(a.private_jwk["kid"], b.private_jwk["kid"]);
        let shown = format!("{a:?}");
        assert!(shown.contains("HS256"), "{shown}");
        assert!(
            !shown.contains(a.private_jwk["k"].as_str().unwrap()),
            "{shown}"
        );
    }
}
