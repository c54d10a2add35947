//! Project Wycheproof's ECDSA P-256/SHA-256 (P1363 and DER) and RSA PKCS#1 v1.5 2048/SHA-256
//! vectors as the signature checks a gate hands a host verifier
//! (`attestgate_policy::verifier::HostCheck`), each with the verdict every host must give.
//! The vectors are the copies in policy-engine/tests/data/vectors (Apache-2.0, with their
//! licence and source there).
//!
//! A vector a gate would refuse before asking any host (an ECDSA signature that is not a
//! valid `r || s`, which is all JWS and RFC 9421 can carry; an RSA signature of another length
//! than the modulus) is left out, once checked to be one Wycheproof calls invalid.
//! `acceptable` vectors expect what the built-in verifier says.
//!
//! ```
//! let vectors = attestgate_testkit::wycheproof::vectors().unwrap();
//! assert_eq!(vectors.len(), 645);
//! assert!(vectors.iter().any(|v| v.valid) && vectors.iter().any(|v| !v.valid));
//! ```

use attestgate_policy::verifier::{
    BuiltInVerifier, HostCheck, HostVerifier, Scheme, SignatureCheck,
};
use serde_json::Value;

/// A vector file that is missing or not as Wycheproof writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("wycheproof vectors: {0}")]
pub struct VectorError(String);

/// One check with its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vector {
    /// `file:tcId`, for messages.
    pub id: String,
    /// What a gate hands the host: ECDSA signatures as `r || s`.
    pub signed: SignatureCheck,
    /// The verdict every host must give.
    pub valid: bool,
}

impl Vector {
    /// The check, as a gate hands it to a host.
    pub fn check(&self) -> HostCheck<'_> {
        self.signed.check()
    }
}

const FILES: [(&str, Scheme); 3] = [
    (
        "ecdsa_secp256r1_sha256_p1363_test.json",
        Scheme::EcdsaP256Sha256,
    ),
    ("ecdsa_secp256r1_sha256_test.json", Scheme::EcdsaP256Sha256),
    (
        "rsa_signature_2048_sha256_test.json",
        Scheme::RsaPkcs1Sha256,
    ),
];

/// Every vector of the three files that reaches a host.
pub fn vectors() -> Result<Vec<Vector>, VectorError> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy-engine/tests/data/vectors");
    let bad = VectorError;
    let mut out = Vec::new();
    for (file, scheme) in FILES {
        let text =
            std::fs::read_to_string(dir.join(file)).map_err(|e| bad(format!("{file}: {e}")))?;
        let suite: Value = serde_json::from_str(&text).map_err(|e| bad(format!("{file}: {e}")))?;
        let der_file = file == "ecdsa_secp256r1_sha256_test.json";
        for group in field(&suite, "testGroups").as_array().into_iter().flatten() {
            let public_key = hex(field(group, "publicKeyDer").as_str().unwrap_or_default())
                .ok_or_else(|| bad(format!("{file}: a group without publicKeyDer")))?;
            let modulus_len = (scheme != Scheme::EcdsaP256Sha256)
                .then(|| {
                    field(group, "keySize")
                        .as_u64()
                        .map(|bits| bits as usize / 8)
                })
                .flatten();
            for case in field(group, "tests").as_array().into_iter().flatten() {
                let id = format!("{file}:{}", field(case, "tcId"));
                let result = field(case, "result").as_str().unwrap_or_default();
                let (Some(raw), Some(message)) = (
                    hex(field(case, "sig").as_str().unwrap_or_default()),
                    hex(field(case, "msg").as_str().unwrap_or_default()),
                ) else {
                    return Err(bad(format!("{id}: not hex")));
                };
                let carried = if scheme == Scheme::EcdsaP256Sha256 {
                    let rs = if der_file {
                        p256::ecdsa::Signature::from_der(&raw)
                            .ok()
                            .map(|s| s.to_bytes().to_vec())
                    } else {
                        Some(raw)
                    };
                    rs.filter(|rs| p256::ecdsa::Signature::from_slice(rs).is_ok())
                } else {
                    Some(raw).filter(|sig| Some(sig.len()) == modulus_len)
                };
                let Some(signature) = carried else {
                    if result != "invalid" {
                        return Err(bad(format!("{id} is {result} but no gate would send it")));
                    }
                    continue;
                };
                let signed = SignatureCheck {
                    scheme,
                    public_key: public_key.clone(),
                    signature,
                    message,
                };
                let mut vector = Vector {
                    id,
                    signed,
                    valid: false,
                };
                vector.valid = match result {
                    "valid" => true,
                    "invalid" => false,
                    _ => BuiltInVerifier.verify(&vector.check()).unwrap_or(false),
                };
                out.push(vector);
            }
        }
    }
    Ok(out)
}

/// A member of a JSON object, or null.
fn field<'v>(value: &'v Value, name: &str) -> &'v Value {
    value.get(name).unwrap_or(&Value::Null)
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// The proxy-wasm module that hands a host a list of `verify_signature` calls and logs the
/// answers (its own comments say how): what holds Envoy's verifier, and the harness's stand-in
/// for it, to these vectors.
pub const VERIFY_SIGNATURE_PROBE_WAT: &str = include_str!("verify_signature_probe.wat");

/// The probe module's plugin configuration for `vectors`, each encoded by `encode` (the
/// filter's own encoder), and the answer line every host must log.
pub fn probe_config(
    vectors: &[Vector],
    encode: impl Fn(&HostCheck<'_>) -> Option<Vec<u8>>,
) -> Result<(String, String), VectorError> {
    let mut records = Vec::new();
    for vector in vectors {
        let arguments = encode(&vector.check())
            .ok_or_else(|| VectorError(format!("{}: the encoder refused it", vector.id)))?;
        let len = u32::try_from(arguments.len()).map_err(|_| VectorError("too long".into()))?;
        records.extend_from_slice(&len.to_le_bytes());
        records.extend_from_slice(&arguments);
    }
    let hex: String = records.iter().map(|b| format!("{b:02x}")).collect();
    let answers: String = vectors
        .iter()
        .map(|v| if v.valid { '1' } else { '0' })
        .collect();
    Ok((hex, format!("verify_signature: {answers}")))
}

/// The vectors whose verdict in the probe's answer `line` is not the one `want` (from
/// [`probe_config`]) gives, by id; a line of another length names every vector.
pub fn differences<'v>(vectors: &'v [Vector], line: &str, want: &str) -> Vec<&'v str> {
    if line.len() != want.len() {
        return vectors.iter().map(|v| v.id.as_str()).collect();
    }
    let skip = "verify_signature: ".len();
    line.bytes()
        .zip(want.bytes())
        .skip(skip)
        .zip(vectors)
        .filter(|((got, want), _)| got != want)
        .map(|(_, vector)| vector.id.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_built_in_verifier_gives_every_vector_its_verdict() {
        let vectors = vectors().unwrap();
        // Of the 1,005 vectors (262 P1363, 484 DER, 259 RSA), those no gate would send a host
        // are left out: malformed r || s, non-strict DER, RSA signatures of another length.
        assert_eq!(vectors.len(), 645);
        for vector in &vectors {
            assert_eq!(
                BuiltInVerifier.verify(&vector.check()),
                Some(vector.valid),
                "{}",
                vector.id
            );
        }
    }
}
