//! The one seam every public-key signature check passes through: JWS `ES256`, `RS*`, `PS*`,
//! `EdDSA` and RFC 9421 `ecdsa-p256-sha256`.
//!
//! Keys are parsed and pinned to their algorithm at load, by us, whoever verifies. Only the
//! last step, checking one signature over one message, may move to the host's own crypto
//! (Envoy's BoringSSL through its `verify_signature` foreign function, say), and only for a
//! scheme that answered a known-answer test right when the host was offered
//! ([`Gate::use_host_verifier`](crate::Gate::use_host_verifier)). Everything a host does not
//! take, or declines at run time, is checked by the pure-Rust path, which stays the reference:
//! the host is only ever faster, never different (docs/performance.md, the Wycheproof tests).

use std::fmt;

use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::EncodePublicKey;

use known_answers::{KnownAnswer, KNOWN_ANSWERS};

mod known_answers;
#[cfg(feature = "native-crypto")]
mod native;

#[cfg(feature = "native-crypto")]
pub use native::NativeVerifier;

/// A signature scheme a host's crypto may check for the gate.
///
/// ```
/// use attestgate_policy::verifier::Scheme;
/// assert_eq!(Scheme::EcdsaP256Sha256.hash(), "sha256");
/// assert_eq!(Scheme::RsaPkcs1Sha512.to_string(), "RS512");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Scheme {
    /// ECDSA on P-256 with SHA-256: JWS `ES256` and RFC 9421 `ecdsa-p256-sha256`.
    EcdsaP256Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (`RS256`).
    RsaPkcs1Sha256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (`RS384`).
    RsaPkcs1Sha384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (`RS512`).
    RsaPkcs1Sha512,
}

impl Scheme {
    /// Every scheme a host may take, in the order a probe tries them.
    pub const ALL: [Scheme; 4] = [
        Scheme::EcdsaP256Sha256,
        Scheme::RsaPkcs1Sha256,
        Scheme::RsaPkcs1Sha384,
        Scheme::RsaPkcs1Sha512,
    ];

    /// The hash, as OpenSSL and Envoy's `verify_signature` name it.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::verifier::Scheme::RsaPkcs1Sha384.hash(), "sha384");
    /// ```
    pub fn hash(self) -> &'static str {
        match self {
            Scheme::EcdsaP256Sha256 | Scheme::RsaPkcs1Sha256 => "sha256",
            Scheme::RsaPkcs1Sha384 => "sha384",
            Scheme::RsaPkcs1Sha512 => "sha512",
        }
    }

    /// The JOSE name of the scheme.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::verifier::Scheme::EcdsaP256Sha256.name(), "ES256");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Scheme::EcdsaP256Sha256 => "ES256",
            Scheme::RsaPkcs1Sha256 => "RS256",
            Scheme::RsaPkcs1Sha384 => "RS384",
            Scheme::RsaPkcs1Sha512 => "RS512",
        }
    }

    /// The scheme of a JOSE name, for the four a host may take.
    ///
    /// ```
    /// use attestgate_policy::verifier::Scheme;
    /// assert_eq!(Scheme::from_name("RS384"), Some(Scheme::RsaPkcs1Sha384));
    /// assert_eq!(Scheme::from_name("PS256"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|scheme| scheme.name() == name)
    }

    fn index(self) -> usize {
        match self {
            Scheme::EcdsaP256Sha256 => 0,
            Scheme::RsaPkcs1Sha256 => 1,
            Scheme::RsaPkcs1Sha384 => 2,
            Scheme::RsaPkcs1Sha512 => 3,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One signature check offered to the host. Everything that needs no key was checked before:
/// an ECDSA signature is 64 bytes with `r` and `s` in `[1, n)`, an RSA one exactly as long
/// as the modulus.
///
/// ```
/// use attestgate_policy::verifier::{HostCheck, Scheme};
/// let check = HostCheck { scheme: Scheme::EcdsaP256Sha256, public_key: &[], signature: &[1; 64], message: b"m" };
/// let der = check.der_signature().unwrap();
/// assert_eq!(der[..4], [0x30, 68, 0x02, 32]); // SEQUENCE { INTEGER r, INTEGER s }, minimal
/// let zero = HostCheck { signature: &[0; 64], ..check };
/// assert_eq!(zero.der_signature(), None); // r = 0 is no signature
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HostCheck<'a> {
    /// What to check with.
    pub scheme: Scheme,
    /// The public key as DER `SubjectPublicKeyInfo`.
    pub public_key: &'a [u8],
    /// ECDSA: `r || s`, as JWS and RFC 9421 carry it; RSA: the signature as it came.
    pub signature: &'a [u8],
    /// The signed bytes (the hash is the host's to take).
    pub message: &'a [u8],
}

impl HostCheck<'_> {
    /// An ECDSA signature as DER `ECDSA-Sig-Value` (what OpenSSL and BoringSSL take), minimal
    /// encoding; `None` for RSA or a signature that is not a valid `r || s`.
    pub fn der_signature(&self) -> Option<Vec<u8>> {
        if self.scheme != Scheme::EcdsaP256Sha256 {
            return None;
        }
        let signature = Signature::from_slice(self.signature).ok()?;
        Some(signature.to_der().as_bytes().to_vec())
    }
}

/// A [`HostCheck`] that owns its bytes: what a host with an asynchronous verifier (the
/// Worker's WebCrypto) is handed to check, and answers later.
///
/// ```
/// use attestgate_policy::verifier::{known_answer_checks, Scheme};
/// let checks = known_answer_checks();
/// assert_eq!(checks.len(), 2 * Scheme::ALL.len()); // a valid one and a forgery per scheme
/// assert_eq!(checks[0].check().scheme, Scheme::EcdsaP256Sha256);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignatureCheck {
    /// What to check with.
    pub scheme: Scheme,
    /// DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// As [`HostCheck::signature`].
    pub signature: Vec<u8>,
    /// The signed bytes.
    pub message: Vec<u8>,
}

impl SignatureCheck {
    /// The same check, borrowed.
    pub fn check(&self) -> HostCheck<'_> {
        HostCheck {
            scheme: self.scheme,
            public_key: &self.public_key,
            signature: &self.signature,
            message: &self.message,
        }
    }

    /// An owned copy of `check`.
    pub fn of(check: &HostCheck<'_>) -> SignatureCheck {
        SignatureCheck {
            scheme: check.scheme,
            public_key: check.public_key.to_vec(),
            signature: check.signature.to_vec(),
            message: check.message.to_vec(),
        }
    }
}

/// Every check [`Gate::use_host_verifier`](crate::Gate::use_host_verifier)'s probe asks a
/// host, in order: for each scheme its known valid signature, then the same over another
/// message. A host whose verifier is asynchronous checks these first and answers the probe
/// from its results.
pub fn known_answer_checks() -> Vec<SignatureCheck> {
    KNOWN_ANSWERS
        .iter()
        .filter_map(KnownAnswer::checks)
        .flat_map(|(valid, forgery)| [valid, forgery])
        .collect()
}

/// A host's own signature verifier.
///
/// `verify` answers `Some(valid)` or `None` when it cannot check this one (then the pure-Rust
/// path decides). It must be a plain check: no caching across keys, no logging of keys.
///
/// ```
/// use attestgate_policy::verifier::{HostCheck, HostVerifier};
/// #[derive(Debug)]
/// struct Declines;
/// impl HostVerifier for Declines {
///     fn verify(&self, _: &HostCheck<'_>) -> Option<bool> { None }
/// }
/// assert_eq!(Declines.verify(&HostCheck { scheme: attestgate_policy::verifier::Scheme::RsaPkcs1Sha256,
///     public_key: &[], signature: &[], message: &[] }), None);
/// ```
pub trait HostVerifier: fmt::Debug + Send + Sync {
    /// Checks one signature.
    fn verify(&self, check: &HostCheck<'_>) -> Option<bool>;
}

/// The built-in, pure-Rust verifier as a [`HostVerifier`]: the reference every host is held
/// to (tests hand the same checks to a host and to this). Keys are parsed on every call, so it
/// is no faster than the gate's own path; a gate never needs it.
///
/// ```
/// use attestgate_policy::verifier::{BuiltInVerifier, HostCheck, HostVerifier, Scheme};
/// let check = HostCheck { scheme: Scheme::RsaPkcs1Sha256, public_key: b"not a key", signature: &[], message: &[] };
/// assert_eq!(BuiltInVerifier.verify(&check), None);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltInVerifier;

impl HostVerifier for BuiltInVerifier {
    fn verify(&self, check: &HostCheck<'_>) -> Option<bool> {
        match check.scheme {
            Scheme::EcdsaP256Sha256 => {
                use p256::pkcs8::DecodePublicKey;
                let key = VerifyingKey::from_public_key_der(check.public_key).ok()?;
                Some(Verifier::default().ecdsa_p256(
                    &key,
                    Some(check.public_key),
                    check.message,
                    check.signature,
                ))
            }
            rsa => {
                use jwt_compact::alg::{Rsa, RsaSignature};
                use jwt_compact::{Algorithm as _, AlgorithmSignature as _};
                use rsa::pkcs8::DecodePublicKey;
                let key = rsa::RsaPublicKey::from_public_key_der(check.public_key).ok()?;
                let alg = match rsa {
                    Scheme::RsaPkcs1Sha384 => Rsa::rs384(),
                    Scheme::RsaPkcs1Sha512 => Rsa::rs512(),
                    _ => Rsa::rs256(),
                };
                // As a gate's RS* key checks it (keys.rs, through jwt-compact).
                let signature = RsaSignature::try_from_slice(check.signature).ok()?;
                Some(alg.verify_signature(&signature, &key, check.message))
            }
        }
    }
}

/// Why the probe kept a scheme off the host.
///
/// ```
/// use attestgate_policy::verifier::Refusal;
/// assert_eq!(Refusal::AcceptedForgery.to_string(), "accepted a signature over another message");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The host could not check the known answer at all.
    Unavailable,
    /// The host refused a valid signature.
    RefusedValid,
    /// The host accepted a signature over another message.
    AcceptedForgery,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Unavailable => "could not check",
            Refusal::RefusedValid => "refused a valid signature",
            Refusal::AcceptedForgery => "accepted a signature over another message",
        })
    }
}

/// What offering a host verifier found: the schemes it checks from now on, and the ones it
/// failed the known-answer test of. `Display` gives the one log line a host writes.
///
/// ```
/// use attestgate_policy::{Gate, verifier::{HostCheck, HostVerifier, Scheme}};
/// #[derive(Debug)]
/// struct Unavailable;
/// impl HostVerifier for Unavailable {
///     fn verify(&self, _: &HostCheck<'_>) -> Option<bool> { None }
/// }
/// let mut gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let report = gate.use_host_verifier(Box::new(Unavailable));
/// assert!(report.on_host().is_empty());
/// assert!(report.to_string().starts_with("every signature by the built-in verifier"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    on_host: Vec<Scheme>,
    refused: Vec<(Scheme, Refusal)>,
}

impl ProbeReport {
    /// The schemes the host checks.
    pub fn on_host(&self) -> &[Scheme] {
        &self.on_host
    }

    /// The schemes that stay built in, with why.
    pub fn refused(&self) -> &[(Scheme, Refusal)] {
        &self.refused
    }
}

impl fmt::Display for ProbeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |schemes: &mut dyn Iterator<Item = Scheme>| {
            schemes.map(Scheme::name).collect::<Vec<_>>().join(", ")
        };
        if self.on_host.is_empty() {
            f.write_str("every signature by the built-in verifier")?;
        } else {
            write!(
                f,
                "{} by the host's verifier; the rest built in",
                list(&mut self.on_host.iter().copied())
            )?;
        }
        let mut refusals = self
            .refused
            .iter()
            .filter(|(_, why)| *why != Refusal::Unavailable);
        if let Some((scheme, why)) = refusals.next() {
            write!(f, " (the host {why} for {scheme}")?;
            for (scheme, why) in refusals {
                write!(f, "; {why} for {scheme}")?;
            }
            f.write_str(")")?;
        } else if self.on_host.is_empty() {
            f.write_str(" (the host's verifier answered no known-answer test)")?;
        }
        Ok(())
    }
}

/// The gate's verifier: the host's for the schemes that passed their known answers, the
/// built-in one for everything else.
#[derive(Debug, Default)]
pub(crate) struct Verifier {
    host: Option<Box<dyn HostVerifier>>,
    on_host: [bool; Scheme::ALL.len()],
}

impl Verifier {
    /// Offers `host` every scheme: each is taken only if the host accepts the known valid
    /// signature and refuses the same signature over another message.
    pub(crate) fn probed(host: Box<dyn HostVerifier>) -> (Verifier, ProbeReport) {
        let mut on_host = [false; Scheme::ALL.len()];
        let mut report = ProbeReport {
            on_host: Vec::new(),
            refused: Vec::new(),
        };
        for answer in KNOWN_ANSWERS {
            match probe(host.as_ref(), answer) {
                Ok(()) => {
                    if let Some(slot) = on_host.get_mut(answer.scheme.index()) {
                        *slot = true;
                    }
                    report.on_host.push(answer.scheme);
                }
                Err(why) => report.refused.push((answer.scheme, why)),
            }
        }
        let host = on_host.iter().any(|&on| on).then_some(host);
        (Verifier { host, on_host }, report)
    }

    fn host_for(&self, scheme: Scheme) -> Option<&dyn HostVerifier> {
        let on = self.on_host.get(scheme.index()).copied().unwrap_or(false);
        self.host.as_deref().filter(|_| on)
    }

    /// `ecdsa-p256-sha256` / `ES256` over `message`; `signature` is `r || s`. `spki` is the
    /// key's DER, when the caller already has it (made from `key` otherwise, only for a host).
    pub(crate) fn ecdsa_p256(
        &self,
        key: &VerifyingKey,
        spki: Option<&[u8]>,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        // Fixed length, r and s in [1, n): refused here, before any host sees them.
        if signature.len() != 64 {
            return false;
        }
        let Ok(parsed) = Signature::from_slice(signature) else {
            return false;
        };
        if let Some(host) = self.host_for(Scheme::EcdsaP256Sha256) {
            let made;
            let public_key = match spki {
                Some(spki) => Some(spki),
                None => {
                    made = p256::PublicKey::from(key).to_public_key_der().ok();
                    made.as_ref().map(|der| der.as_bytes())
                }
            };
            if let Some(public_key) = public_key {
                let check = HostCheck {
                    scheme: Scheme::EcdsaP256Sha256,
                    public_key,
                    signature,
                    message,
                };
                if let Some(valid) = host.verify(&check) {
                    return valid;
                }
            }
        }
        use p256::ecdsa::signature::Verifier as _;
        key.verify(message, &parsed).is_ok()
    }

    /// An RSA PKCS#1 v1.5 signature on the host, if the host takes `scheme`: `Some(valid)`;
    /// `None` leaves it to the built-in path. `modulus_len` is the key's size in bytes.
    pub(crate) fn rsa_pkcs1_on_host(
        &self,
        scheme: Scheme,
        spki: &[u8],
        modulus_len: usize,
        message: &[u8],
        signature: &[u8],
    ) -> Option<bool> {
        let host = self.host_for(scheme)?;
        // RSA signatures are exactly as long as the modulus (RFC 8017 §8.2.2 step 1).
        if signature.len() != modulus_len {
            return Some(false);
        }
        host.verify(&HostCheck {
            scheme,
            public_key: spki,
            signature,
            message,
        })
    }
}

fn probe(host: &dyn HostVerifier, answer: &KnownAnswer) -> Result<(), Refusal> {
    let (valid, forgery) = answer.checks().ok_or(Refusal::Unavailable)?;
    match host.verify(&valid.check()) {
        None => return Err(Refusal::Unavailable),
        Some(false) => return Err(Refusal::RefusedValid),
        Some(true) => {}
    }
    match host.verify(&forgery.check()) {
        None => Err(Refusal::Unavailable),
        Some(true) => Err(Refusal::AcceptedForgery),
        Some(false) => Ok(()),
    }
}

#[cfg(test)]
mod tests;
