//! Minting a case's token: key, header, claims, segments, signature, then tampering.

use std::path::Path;

use attestgate_testkit::SigningKey;
use base64ct::{Base64Url, Base64UrlUnpadded, Encoding};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::spec::{CaseSpec, KeySpec, PublicForm, Tamper};

/// The P-256 group order n, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// A loaded signing key, plus the HMAC secret when it is one (for `encoded_segments`).
struct Signer {
    key: SigningKey,
    hmac_secret: Option<Vec<u8>>,
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
    serde_json::from_str(&text).map_err(|err| format!("{}: {err}", path.display()))
}

fn b64(text: &str) -> Result<Vec<u8>, String> {
    Base64UrlUnpadded::decode_vec(text).map_err(|err| format!("bad base64url `{text}`: {err}"))
}

/// The first JWK of `<name>.pub.json`.
pub(crate) fn public_jwk(keys_dir: &Path, name: &str) -> Result<Value, String> {
    let jwks = read_json(&keys_dir.join(format!("{name}.pub.json")))?;
    jwks.get("keys")
        .and_then(Value::as_array)
        .and_then(|keys| keys.first())
        .cloned()
        .ok_or_else(|| format!("{name}.pub.json has no keys"))
}

/// All JWKs of `<name>.pub.json`.
pub(crate) fn public_jwks(keys_dir: &Path, name: &str) -> Result<Vec<Value>, String> {
    let jwks = read_json(&keys_dir.join(format!("{name}.pub.json")))?;
    jwks.get("keys")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| format!("{name}.pub.json has no `keys` array"))
}

fn member(jwk: &Value, name: &str) -> Result<Vec<u8>, String> {
    let text = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("jwk has no `{name}`"))?;
    b64(text)
}

fn signer(keys_dir: &Path, spec: &KeySpec) -> Result<Signer, String> {
    let (jwk, secret) = match spec {
        KeySpec::Named(name) => {
            let jwk = read_json(&keys_dir.join(format!("{name}.json")))?;
            let secret = match jwk.get("kty").and_then(Value::as_str) {
                Some("oct") => Some(member(&jwk, "k")?),
                _ => None,
            };
            (jwk, secret)
        }
        KeySpec::HmacWithPublic(spec) => {
            let name = &spec.hmac_with_public;
            let public = public_jwk(keys_dir, name)?;
            let secret = match spec.form {
                PublicForm::Jwk => serde_json::to_vec(&public).map_err(|err| err.to_string())?,
                PublicForm::File => std::fs::read(keys_dir.join(format!("{name}.pub.json")))
                    .map_err(|err| format!("{name}.pub.json: {err}"))?,
                PublicForm::Raw => match public.get("kty").and_then(Value::as_str) {
                    Some("RSA") => member(&public, "n")?,
                    Some("EC") => {
                        let mut point = vec![4_u8];
                        point.extend(member(&public, "x")?);
                        point.extend(member(&public, "y")?);
                        point
                    }
                    Some("OKP") => member(&public, "x")?,
                    Some("oct") => member(&public, "k")?,
                    other => return Err(format!("{name}: unsupported kty {other:?}")),
                },
            };
            let jwk = json!({
                "kty": "oct",
                "alg": "HS256",
                "k": Base64UrlUnpadded::encode_string(&secret),
            });
            (jwk, Some(secret))
        }
    };
    let key = SigningKey::from_jwk(&jwk).map_err(|err| format!("signing key: {err}"))?;
    let hmac_secret = if key.algorithm() == "HS256" {
        secret
    } else {
        None
    };
    Ok(Signer { key, hmac_secret })
}

/// HMAC-SHA256 (RFC 2104), for signing input that `SigningKey::sign_parts` would re-encode.
fn hmac_sha256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 64;
    let mut key = [0_u8; BLOCK];
    if secret.len() > BLOCK {
        let digest = Sha256::digest(secret);
        for (slot, byte) in key.iter_mut().zip(digest.iter()) {
            *slot = *byte;
        }
    } else {
        for (slot, byte) in key.iter_mut().zip(secret) {
            *slot = *byte;
        }
    }
    let pad = |value: u8| key.iter().map(|k| k ^ value).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(slot) = slot {
                    merge(slot, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn claims(case: &CaseSpec, now: i64) -> Result<Map<String, Value>, String> {
    let mut claims = case.claims.clone();
    for (name, offset) in &case.claims_at {
        let value = match offset.as_i64() {
            Some(offset) => Value::from(
                now.checked_add(offset)
                    .ok_or_else(|| format!("claims_at.{name} overflows"))?,
            ),
            None => {
                let offset = offset
                    .as_f64()
                    .ok_or_else(|| format!("claims_at.{name} is not a number"))?;
                // Unix seconds fit f64 exactly for the next few million years.
                #[allow(clippy::cast_precision_loss)]
                let at = now as f64 + offset;
                json!(at)
            }
        };
        claims.insert(name.clone(), value);
    }
    if let Some(exp_in) = case.exp_in {
        let exp = now
            .checked_add(exp_in)
            .ok_or_else(|| "exp_in overflows".to_owned())?;
        claims.entry("exp").or_insert(Value::from(exp));
    }
    if let Some(pad) = case.pad_claims {
        claims.insert("pad".into(), Value::String("x".repeat(pad)));
    }
    Ok(claims)
}

fn header(case: &CaseSpec, key: &SigningKey) -> Map<String, Value> {
    let mut header = case.header.clone().unwrap_or_else(|| {
        let mut header = Map::new();
        header.insert("alg".into(), json!(key.algorithm()));
        header.insert("typ".into(), json!("JWT"));
        if let Some(kid) = key.kid() {
            header.insert("kid".into(), json!(kid));
        }
        header
    });
    if let Some(patch) = &case.header_merge {
        merge(&mut header, patch);
    }
    header
}

/// The token a case sends: `None` for no token header at all.
pub(crate) fn token_for(
    case: &CaseSpec,
    keys_dir: &Path,
    now: i64,
) -> Result<Option<String>, String> {
    if let Some(token) = &case.token {
        return Ok(token.clone());
    }
    let spec = case
        .key
        .as_ref()
        .ok_or_else(|| "a case needs `key` or `token`".to_owned())?;
    let signer = signer(keys_dir, spec)?;
    let token = match (&case.encoded_segments, &case.raw_segments) {
        (Some([header, claims]), _) => {
            let secret = signer
                .hmac_secret
                .as_ref()
                .ok_or_else(|| "`encoded_segments` needs an HS256 key".to_owned())?;
            let input = format!("{header}.{claims}");
            let mac = hmac_sha256(secret, input.as_bytes());
            format!("{input}.{}", Base64UrlUnpadded::encode_string(&mac))
        }
        (None, Some([header, claims])) => {
            signer.key.sign_parts(header.as_bytes(), claims.as_bytes())
        }
        (None, None) => {
            let header =
                serde_json::to_vec(&header(case, &signer.key)).map_err(|err| err.to_string())?;
            let mut claims =
                serde_json::to_vec(&claims(case, now)?).map_err(|err| err.to_string())?;
            if let Some(depth) = case.nest_claims {
                // Spliced in as text: a `Value` this deep would overflow the stack when
                // serialized or dropped, which is what the gate must not do with it.
                claims.pop();
                if claims.len() > 1 {
                    claims.push(b',');
                }
                claims.extend_from_slice(b"\"nest\":");
                claims.extend(std::iter::repeat_n(b'[', depth));
                claims.push(b'1');
                claims.extend(std::iter::repeat_n(b']', depth));
                claims.push(b'}');
            }
            signer.key.sign_parts(&header, &claims)
        }
    };
    let token = match &case.signature_hex {
        Some(hex) => {
            let (input, _) = split_signature(&token)?;
            format!(
                "{input}.{}",
                Base64UrlUnpadded::encode_string(&from_hex(hex)?)
            )
        }
        None => token,
    };
    let mut token = match case.tamper {
        Some(tamper) => apply(tamper, &token)?,
        None => token,
    };
    if let Some(suffix) = &case.append {
        token.push_str(suffix);
    }
    Ok(Some(token))
}

fn split_signature(token: &str) -> Result<(&str, &str), String> {
    token
        .rsplit_once('.')
        .ok_or_else(|| "token has no `.`".to_owned())
}

fn from_hex(hex: &str) -> Result<Vec<u8>, String> {
    let hex: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if hex.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    hex.chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("bad hex `{}`", String::from_utf8_lossy(pair)))
        })
        .collect()
}

/// Replaces the character at `at` with another base64url character.
fn flip_char(text: &str, at: usize) -> Result<String, String> {
    let mut bytes = text.as_bytes().to_vec();
    let slot = bytes
        .get_mut(at)
        .ok_or_else(|| format!("nothing to flip at {at}"))?;
    *slot = if *slot == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).map_err(|err| err.to_string())
}

/// DER `INTEGER` for a big-endian unsigned value.
fn der_integer(value: &[u8]) -> Vec<u8> {
    let start = value
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(value.len().saturating_sub(1));
    let digits = value.get(start..).unwrap_or_default();
    let mut out = vec![0x02];
    let pad = digits.first().is_some_and(|&b| b & 0x80 != 0);
    let len = digits.len() + usize::from(pad);
    out.push(u8::try_from(len).unwrap_or(u8::MAX));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
}

/// n − s, big-endian, 32 bytes.
fn order_minus(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0_u8; 32];
    let mut borrow = 0_i16;
    for i in (0..32).rev() {
        let n = i16::from(P256_N.get(i).copied().unwrap_or(0));
        let v = i16::from(s.get(i).copied().unwrap_or(0));
        let mut d = n - v - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        if let Some(slot) = out.get_mut(i) {
            *slot = u8::try_from(d).unwrap_or(0);
        }
    }
    out
}

fn apply(tamper: Tamper, token: &str) -> Result<String, String> {
    let (input, signature_text) = split_signature(token)?;
    let (header, claims) = input
        .split_once('.')
        .ok_or_else(|| "token has fewer than three segments".to_owned())?;
    let signature = b64(signature_text)?;
    let with_signature =
        |bytes: &[u8]| format!("{input}.{}", Base64UrlUnpadded::encode_string(bytes));
    let rs = || -> Result<(&[u8], &[u8]), String> {
        if signature.len() != 64 {
            return Err(format!(
                "{tamper:?} needs a 64-byte ES256 signature, this one has {} bytes",
                signature.len()
            ));
        }
        Ok(signature.split_at(32))
    };
    let zero = [0_u8; 32];
    Ok(match tamper {
        Tamper::Signature => flip_char(token, input.len() + 3)?,
        Tamper::Claims => flip_char(token, header.len() + 1 + claims.len() / 2)?,
        Tamper::StripSignature => format!("{input}."),
        Tamper::DropSignature => input.to_owned(),
        Tamper::TruncateSignature => with_signature(
            signature
                .get(..signature.len().saturating_sub(1))
                .unwrap_or_default(),
        ),
        Tamper::ExtendSignature => {
            let mut longer = signature.clone();
            longer.push(0);
            with_signature(&longer)
        }
        Tamper::PadSignature => {
            if signature.len() % 3 == 0 {
                return Err("a signature whose length is a multiple of 3 has no padding".into());
            }
            format!("{input}.{}", Base64Url::encode_string(&signature))
        }
        Tamper::NoncanonicalSignature => {
            if signature.len() % 3 == 0 {
                return Err("a signature whose length is a multiple of 3 has no spare bits".into());
            }
            let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let last = token.chars().last().unwrap_or('A');
            let index = alphabet.find(last).ok_or("signature ends oddly")?;
            let sibling = alphabet.chars().nth(index ^ 1).unwrap_or('A');
            let mut altered = token.to_owned();
            altered.pop();
            altered.push(sibling);
            altered
        }
        Tamper::DerSignature => {
            let (r, s) = rs()?;
            let mut body = der_integer(r);
            body.extend(der_integer(s));
            let mut der = vec![0x30, u8::try_from(body.len()).unwrap_or(u8::MAX)];
            der.extend(body);
            with_signature(&der)
        }
        Tamper::EcdsaRZero => {
            let (_, s) = rs()?;
            with_signature(&[&zero[..], s].concat())
        }
        Tamper::EcdsaSZero => {
            let (r, _) = rs()?;
            with_signature(&[r, &zero[..]].concat())
        }
        Tamper::EcdsaZero => {
            rs()?;
            with_signature(&[0_u8; 64])
        }
        Tamper::EcdsaRN => {
            let (_, s) = rs()?;
            with_signature(&[&P256_N[..], s].concat())
        }
        Tamper::EcdsaSN => {
            let (r, _) = rs()?;
            with_signature(&[r, &P256_N[..]].concat())
        }
        Tamper::EcdsaHighS => {
            let (r, s) = rs()?;
            with_signature(&[r, &order_minus(s)[..]].concat())
        }
        Tamper::JwsJsonFlattened => json!({
            "protected": header,
            "payload": claims,
            "signature": signature_text,
        })
        .to_string(),
        Tamper::JwsJsonGeneral => json!({
            "payload": claims,
            "signatures": [{ "protected": header, "signature": signature_text }],
        })
        .to_string(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let expected =
            from_hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843").unwrap();
        assert_eq!(mac, expected);
        // A key longer than the block is hashed first (RFC 4231 case 6).
        let mac = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        let expected =
            from_hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54").unwrap();
        assert_eq!(mac, expected);
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_integer(&[0, 0, 0x12]), vec![2, 1, 0x12]);
        assert_eq!(der_integer(&[0, 0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der_integer(&[0, 0]), vec![2, 1, 0]);
    }

    #[test]
    fn order_minus_subtracts_with_borrow() {
        let mut one = [0_u8; 32];
        one[31] = 1;
        let mut expected = P256_N.to_vec();
        expected[31] -= 1;
        assert_eq!(order_minus(&one), expected);
        assert_eq!(order_minus(&P256_N), vec![0; 32]);
        assert_eq!(order_minus(&[0; 32]), P256_N.to_vec());
    }
}
