//! The keys signatures are checked with: the install's P-256 public key and the account's HMAC
//! key, each pinned to its algorithm.

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use hmac::{Hmac, Mac};
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey;
use sha2::Sha256;

use super::{SignatureError, ACCOUNT_ALGORITHM, ALGORITHM, MIN_ACCOUNT_KEY_BYTES};

/// An app install's public key (claim `ipk`).
///
/// ```
/// use attestgate_policy::signature::{InstallKey, SignatureError};
/// use attestgate_testkit::InstallSigner; // the app's side
/// let app = InstallSigner::from_slice(&[7; 32]).unwrap();
/// assert_eq!(InstallKey::from_base64_spki(&app.ipk()), Ok(app.public()));
/// assert!(matches!(InstallKey::from_base64_spki("bm90IGEga2V5"), Err(SignatureError::InvalidKey(_))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallKey(pub(super) VerifyingKey);

impl InstallKey {
    /// From base64 (standard, or URL-safe without padding) DER SubjectPublicKeyInfo.
    ///
    /// ```
    /// use attestgate_policy::signature::InstallKey;
    /// // The P-256 public key of RFC 9421 appendix B.1.3.
    /// let ipk = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf\
    ///            w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==";
    /// assert!(InstallKey::from_base64_spki(&ipk.replace(' ', "")).is_ok());
    /// assert!(InstallKey::from_base64_spki("MFkwEwYH").is_err());
    /// ```
    pub fn from_base64_spki(text: &str) -> Result<InstallKey, SignatureError> {
        let text = text.trim();
        let der = Base64::decode_vec(text)
            .or_else(|_| Base64UrlUnpadded::decode_vec(text))
            .map_err(|_| SignatureError::InvalidKey("not base64".to_owned()))?;
        InstallKey::from_spki_der(&der)
    }

    /// From DER SubjectPublicKeyInfo; the key must be on P-256.
    fn from_spki_der(der: &[u8]) -> Result<InstallKey, SignatureError> {
        VerifyingKey::from_public_key_der(der)
            .map(InstallKey)
            .map_err(|e| SignatureError::InvalidKey(format!("not a p-256 public key: {e}")))
    }

    /// From a key already parsed.
    ///
    /// ```
    /// use attestgate_policy::signature::InstallKey;
    /// let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
    /// let install = InstallKey::from_verifying_key(*key.verifying_key());
    /// assert_eq!(install, InstallKey::from_verifying_key(*key.verifying_key()));
    /// ```
    pub fn from_verifying_key(key: VerifyingKey) -> InstallKey {
        InstallKey(key)
    }
}

/// An account's message-signing key for `hmac-sha256` signatures.
///
/// ```
/// use attestgate_policy::signature::AccountKey;
/// assert!(AccountKey::from_base64("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").is_ok());
/// assert!(AccountKey::from_base64("c2hvcnQ=").is_err()); // 5 bytes: too weak
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AccountKey(Vec<u8>);

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKey(..)")
    }
}

impl AccountKey {
    /// From base64 (any alphabet, padded or not), as `approov_secret`; at least 32 bytes,
    /// the HMAC's output size.
    ///
    /// ```
    /// use attestgate_policy::signature::AccountKey;
    /// let padded = AccountKey::from_base64("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap();
    /// assert_eq!(AccountKey::from_base64("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE").unwrap(), padded);
    /// assert!(AccountKey::from_base64("not base64!").is_err());
    /// ```
    pub fn from_base64(text: &str) -> Result<AccountKey, SignatureError> {
        let bytes = crate::keys::decode_approov_secret(text)
            .map_err(|message| SignatureError::InvalidKey(message.to_owned()))?;
        AccountKey::from_bytes(bytes)
    }

    /// From the raw key bytes; at least 32.
    ///
    /// ```
    /// use attestgate_policy::signature::AccountKey;
    /// assert!(AccountKey::from_bytes(vec![7; 32]).is_ok());
    /// assert!(AccountKey::from_bytes(vec![7; 31]).is_err());
    /// assert_eq!(format!("{:?}", AccountKey::from_bytes(vec![7; 32]).unwrap()), "AccountKey(..)");
    /// ```
    pub fn from_bytes(bytes: Vec<u8>) -> Result<AccountKey, SignatureError> {
        if bytes.len() < MIN_ACCOUNT_KEY_BYTES {
            return Err(SignatureError::InvalidKey(format!(
                "an account key of {} bytes is too weak for hmac-sha256 (at least {MIN_ACCOUNT_KEY_BYTES})",
                bytes.len()
            )));
        }
        Ok(AccountKey(bytes))
    }

    pub(super) fn mac(&self) -> Result<Hmac<Sha256>, SignatureError> {
        Hmac::<Sha256>::new_from_slice(&self.0)
            .map_err(|_| SignatureError::InvalidKey("unusable hmac key".to_owned()))
    }
}

/// The key a signature is checked with, each pinned to its algorithm.
///
/// ```
/// use attestgate_policy::signature::{self, AccountKey, SignatureError, SignatureKey, VerifyOptions};
/// # use attestgate_policy::signature as s;
/// # let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// # let install = s::InstallKey::from_verifying_key(*key.verifying_key());
/// # let unsigned = s::Message::request("GET", "https", "api.example.com", "/v1/x", &[]);
/// # let (input, sig) = s::sign(&key, &unsigned, &s::SignOptions::new(["@method", "@authority"], 1_700_000_000)).unwrap();
/// # let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// # let message = s::Message::request("GET", "https", "api.example.com", "/v1/x", &headers);
/// let account = AccountKey::from_bytes(vec![7; 32]).unwrap();
/// let options = VerifyOptions { required_components: vec![], ..VerifyOptions::default() };
/// let check = |key| signature::verify_with(&message, None, key, &options, 1_700_000_000);
/// assert!(check(SignatureKey::Install(&install)).is_ok());
/// assert_eq!(check(SignatureKey::Account(&account)), Err(SignatureError::BadSignature));
/// ```
#[derive(Debug, Clone, Copy)]
pub enum SignatureKey<'k> {
    /// `ecdsa-p256-sha256` with the install key.
    Install(&'k InstallKey),
    /// `hmac-sha256` with the account key.
    Account(&'k AccountKey),
}

impl SignatureKey<'_> {
    /// The RFC 9421 algorithm name the key is pinned to.
    ///
    /// ```
    /// use attestgate_policy::signature::{AccountKey, SignatureKey};
    /// let account = AccountKey::from_bytes(vec![7; 32]).unwrap();
    /// assert_eq!(SignatureKey::Account(&account).algorithm(), "hmac-sha256");
    /// ```
    pub fn algorithm(&self) -> &'static str {
        match self {
            SignatureKey::Install(_) => ALGORITHM,
            SignatureKey::Account(_) => ACCOUNT_ALGORITHM,
        }
    }
}
