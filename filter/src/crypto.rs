//! Envoy's own signature verifier for the gate: the `verify_signature` foreign function
//! (`source/extensions/common/wasm/foreign.cc`), which runs BoringSSL's `EVP_DigestVerify`.
//!
//! Its arguments and answer are protobuf messages (`verify_signature.proto`):
//! `VerifySignatureArguments { string hash_function = 1; bytes public_key = 2;
//! bytes signature = 3; bytes text = 4; }` (`public_key` DER SubjectPublicKeyInfo, ECDSA
//! signatures DER) and `VerifySignatureResult { bool result = 1; string error = 2; }`. Four
//! length-delimited fields out and one varint back do not need a protobuf library in the
//! filter; the harness decodes what this writes with `prost`, and real Envoy parses it in the
//! Envoy tests. ngx_wasm_module traps on any foreign function it does not know, so this is
//! only ever offered in Envoy.

use attestgate_policy::verifier::{HostCheck, HostVerifier, Scheme};
use proxy_wasm::hostcalls;

/// The foreign function's name in Envoy.
pub const FUNCTION: &str = "verify_signature";

/// Envoy's BoringSSL, through [`FUNCTION`].
#[derive(Debug)]
pub struct EnvoyVerifier;

impl HostVerifier for EnvoyVerifier {
    fn verify(&self, check: &HostCheck<'_>) -> Option<bool> {
        let arguments = encode(check)?;
        match hostcalls::call_foreign_function(FUNCTION, Some(&arguments)) {
            Ok(answer) => verified(answer.as_deref().unwrap_or_default()),
            // NotFound (no such function), BadArgument (a key BoringSSL would not import):
            // the built-in path decides.
            Err(_) => None,
        }
    }
}

/// What the filter sends Envoy for `check`: a serialized `VerifySignatureArguments`, the
/// ECDSA signature as DER; `None` for an ECDSA signature that is not a valid `r || s`.
///
/// ```
/// use attestgate_policy::verifier::{HostCheck, Scheme};
/// let check = HostCheck { scheme: Scheme::RsaPkcs1Sha256, public_key: b"K", signature: b"S", message: b"M" };
/// let bytes = attestgate_filter::crypto::encode(&check).unwrap();
/// assert_eq!(bytes, b"\x0a\x06sha256\x12\x01K\x1a\x01S\x22\x01M");
/// ```
pub fn encode(check: &HostCheck<'_>) -> Option<Vec<u8>> {
    let der;
    let signature = match check.scheme {
        Scheme::EcdsaP256Sha256 => {
            der = check.der_signature()?;
            der.as_slice()
        }
        _ => check.signature,
    };
    Some(arguments(
        check.scheme.hash(),
        check.public_key,
        signature,
        check.message,
    ))
}

/// A serialized `VerifySignatureArguments`.
pub(crate) fn arguments(hash: &str, public_key: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(hash.len() + public_key.len() + signature.len() + text.len() + 20);
    for (field, bytes) in [
        (1, hash.as_bytes()),
        (2, public_key),
        (3, signature),
        (4, text),
    ] {
        // Wire type 2 (length-delimited): tag, varint length, bytes.
        out.push((field << 3) | 2);
        put_varint(&mut out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
    out
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `result` of a serialized `VerifySignatureResult`; `None` if it does not parse. proto3
/// leaves out a false `result`, so an empty message is a refusal.
pub(crate) fn verified(message: &[u8]) -> Option<bool> {
    let mut result = false;
    let mut rest = message;
    while let Some((&key, tail)) = rest.split_first() {
        rest = tail;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let value = take_varint(&mut rest)?;
                if field == 1 {
                    result = value != 0;
                }
            }
            2 => {
                let len = usize::try_from(take_varint(&mut rest)?).ok()?;
                rest = rest.get(len..)?;
            }
            1 => rest = rest.get(8..)?,
            5 => rest = rest.get(4..)?,
            _ => return None,
        }
    }
    Some(result)
}

fn take_varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_four_length_delimited_fields() {
        let long = vec![7u8; 300];
        let out = arguments("sha256", b"key", &long, b"");
        let mut want = vec![0x0a, 6];
        want.extend_from_slice(b"sha256");
        want.extend_from_slice(&[0x12, 3]);
        want.extend_from_slice(b"key");
        want.extend_from_slice(&[0x1a, 0xac, 0x02]); // 300 = 0b10_0101100
        want.extend_from_slice(&long);
        want.extend_from_slice(&[0x22, 0]);
        assert_eq!(out, want);
    }

    #[test]
    fn results_parse_as_proto3_writes_them() {
        assert_eq!(verified(&[0x08, 0x01]), Some(true));
        assert_eq!(verified(&[]), Some(false));
        let mut refused = vec![0x12, 5];
        refused.extend_from_slice(b"wrong");
        assert_eq!(verified(&refused), Some(false));
        // An unknown fixed64 field is skipped; a truncated one is not a result.
        assert_eq!(
            verified(&[0x19, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x01]),
            Some(true)
        );
        assert_eq!(verified(&[0x12, 9, b'x']), None);
        assert_eq!(verified(&[0x08]), None);
        assert_eq!(verified(&[0x0b]), None); // wire type 3 (groups) is not in this message
    }
}
