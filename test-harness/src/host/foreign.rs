//! Envoy's foreign functions, as far as the filter calls them: `verify_signature`, which real
//! Envoy answers with BoringSSL's `EVP_DigestVerify` (`source/extensions/common/wasm/foreign.cc`).
//! Here RustCrypto stands in for BoringSSL, and `prost` decodes the arguments: a protobuf
//! implementation that is not the filter's own encoder.

use p256::pkcs8::DecodePublicKey;
use prost::Message;
use rsa::signature::Verifier as _;

/// How the `envoy` profile answers `verify_signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum VerifySignature {
    /// As Envoy does: the signature is checked.
    #[default]
    Checks,
    /// Not registered (an Envoy built without it): `NotFound`.
    Absent,
    /// A broken host that says every signature is valid; the filter's probe must catch it.
    AcceptsAll,
}

/// `VerifySignatureArguments` of Envoy's `verify_signature.proto`.
#[derive(Clone, PartialEq, prost::Message)]
struct Arguments {
    #[prost(string, tag = "1")]
    hash_function: String,
    #[prost(bytes = "vec", tag = "2")]
    public_key: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    signature: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    text: Vec<u8>,
    #[prost(string, tag = "5")]
    public_key_pem: String,
}

/// `VerifySignatureResult`.
#[derive(Clone, PartialEq, prost::Message)]
struct Outcome {
    #[prost(bool, tag = "1")]
    result: bool,
    #[prost(string, tag = "2")]
    error: String,
}

/// Why a call did not give an answer: Envoy's `WasmResult` for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    NotFound,
    BadArgument,
}

/// Answers one `verify_signature` call: the serialized `VerifySignatureResult`.
pub(crate) fn verify_signature(
    mode: VerifySignature,
    arguments: &[u8],
) -> Result<Vec<u8>, Refused> {
    if mode == VerifySignature::Absent {
        return Err(Refused::NotFound);
    }
    let args = Arguments::decode(arguments).map_err(|_| Refused::BadArgument)?;
    // Envoy takes exactly one of the two key forms; the filter sends DER.
    if args.public_key.is_empty() == args.public_key_pem.is_empty()
        || !args.public_key_pem.is_empty()
    {
        return Err(Refused::BadArgument);
    }
    let verdict = if mode == VerifySignature::AcceptsAll {
        Ok(())
    } else {
        check(&args)
    };
    let outcome = match verdict {
        Ok(()) => Outcome {
            result: true,
            error: String::new(),
        },
        Err(error) => Outcome {
            result: false,
            error,
        },
    };
    Ok(outcome.encode_to_vec())
}

/// `EVP_DigestVerify` with the key's type: ECDSA with a DER signature, or RSA PKCS#1 v1.5.
fn check(args: &Arguments) -> Result<(), String> {
    let hash = args.hash_function.to_ascii_lowercase();
    if let Ok(key) = p256::ecdsa::VerifyingKey::from_public_key_der(&args.public_key) {
        if hash != "sha256" {
            return Err(format!("{hash} with P-256 is not checked here"));
        }
        let signature = p256::ecdsa::Signature::from_der(&args.signature)
            .map_err(|_| "Failed to verify digest. Error code: 0".to_owned())?;
        return key
            .verify(&args.text, &signature)
            .map_err(|_| "Failed to verify digest. Error code: 0".to_owned());
    }
    let key = rsa::RsaPublicKey::from_public_key_der(&args.public_key)
        .map_err(|_| "Failed to initialize digest verify.".to_owned())?;
    let signature = rsa::pkcs1v15::Signature::try_from(args.signature.as_slice())
        .map_err(|_| "Failed to verify digest. Error code: 0".to_owned())?;
    let checked = match hash.as_str() {
        "sha256" => {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key).verify(&args.text, &signature)
        }
        "sha384" => {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha384>::new(key).verify(&args.text, &signature)
        }
        "sha512" => {
            rsa::pkcs1v15::VerifyingKey::<sha2::Sha512>::new(key).verify(&args.text, &signature)
        }
        other => return Err(format!("{other} is not supported.")),
    };
    checked.map_err(|_| "Failed to verify digest. Error code: 0".to_owned())
}
