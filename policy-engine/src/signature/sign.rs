//! Signing a message as an app does, with the install key or the account key.

use base64ct::{Base64, Encoding};
use hmac::Mac;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use sfv::{BareItem, FieldType, InnerList, Item, List, ListEntry, Parameters, Parser};

use super::message::{base_of, Component};
use super::parse::components;
use super::{AccountKey, Message, SignatureError, ACCOUNT_ALGORITHM, ALGORITHM, DEFAULT_LABEL};

/// What [`sign`] puts in the `Signature-Input` parameters.
///
/// ```
/// use attestgate_policy::signature::{self, Message, SignOptions};
/// let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// let options = SignOptions {
///     expires: Some(1_700_000_015),
///     keyid: Some("install-1".to_owned()),
///     alg: true,
///     ..SignOptions::new(["@method"], 1_700_000_000)
/// };
/// let (input, _) = signature::sign(&key, &Message::request("GET", "https", "h", "/", &[]), &options).unwrap();
/// assert_eq!(input, r#"install=("@method");created=1700000000;expires=1700000015;keyid="install-1";alg="ecdsa-p256-sha256""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    /// The label; `install` by default.
    pub label: String,
    /// Components to cover, in order.
    pub components: Vec<String>,
    /// `created`.
    pub created: Option<i64>,
    /// `expires`.
    pub expires: Option<i64>,
    /// `keyid`.
    pub keyid: Option<String>,
    /// Emit `alg="ecdsa-p256-sha256"`.
    pub alg: bool,
}

impl SignOptions {
    /// Label `install`, these components, `created` set, nothing else.
    ///
    /// ```
    /// use attestgate_policy::signature::SignOptions;
    /// let options = SignOptions::new(["@method", "@target-uri"], 1_700_000_000);
    /// assert_eq!((options.label.as_str(), options.created, options.expires), ("install", Some(1_700_000_000), None));
    /// assert_eq!(options.components, ["@method", "@target-uri"]);
    /// ```
    pub fn new<I, S>(components: I, created: i64) -> SignOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SignOptions {
            label: DEFAULT_LABEL.to_owned(),
            components: components.into_iter().map(Into::into).collect(),
            created: Some(created),
            expires: None,
            keyid: None,
            alg: false,
        }
    }
}

/// A key that signs requests, as an app does: the install's P-256 key or the account key.
///
/// ```
/// use attestgate_policy::signature::{self, AccountKey, Message, SignOptions, Signer};
/// let install = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// let account = AccountKey::from_bytes(vec![7; 32]).unwrap();
/// let message = Message::request("GET", "https", "h", "/", &[]);
/// let options = SignOptions::new(["@method"], 1_700_000_000);
/// for signer in [Signer::Install(&install), Signer::Account(&account)] {
///     let (input, sig) = signature::sign_with(signer, &message, &options).unwrap();
///     assert_eq!(input, r#"install=("@method");created=1700000000"#);
///     assert!(sig.starts_with("install=:"));
/// }
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Signer<'k> {
    /// `ecdsa-p256-sha256`.
    Install(&'k SigningKey),
    /// `hmac-sha256`.
    Account(&'k AccountKey),
}

/// Signs a message with an install key: returns the `Signature-Input` and `Signature` header
/// values. Covered header fields (e.g. `content-digest`) must already be in
/// `message.headers`.
///
/// ```
/// use attestgate_policy::signature::{self, Message, SignOptions, SignatureError};
/// let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// let message = Message::request("GET", "https", "h", "/", &[]);
/// let (input, sig) = signature::sign(&key, &message, &SignOptions::new(["@method"], 1_700_000_000)).unwrap();
/// assert_eq!(input, r#"install=("@method");created=1700000000"#);
/// assert!(sig.starts_with("install=:") && sig.ends_with(':'));
/// // A covered header field must be present.
/// let options = SignOptions::new(["content-digest"], 1_700_000_000);
/// assert_eq!(signature::sign(&key, &message, &options), Err(SignatureError::ComponentAbsent("content-digest".to_owned())));
/// ```
pub fn sign(
    key: &SigningKey,
    message: &Message<'_>,
    options: &SignOptions,
) -> Result<(String, String), SignatureError> {
    sign_with(Signer::Install(key), message, options)
}

/// [`sign`] with either kind of key. Components may carry parameters
/// (`"@query-param";name="id"`).
///
/// ```
/// use attestgate_policy::signature::{self, AccountKey, Message, SignOptions, Signer, SignatureKey, VerifyOptions};
/// let key = AccountKey::from_base64("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap();
/// let mut options = SignOptions::new(["@method", "\"@query-param\";name=\"id\""], 1_700_000_000);
/// options.label = "account".to_owned();
/// let message = Message::request("GET", "https", "api.example.com", "/v1/x?id=7", &[]);
/// let (input, sig) = signature::sign_with(Signer::Account(&key), &message, &options).unwrap();
/// assert_eq!(input, r#"account=("@method" "@query-param";name="id");created=1700000000"#);
///
/// let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// let message = Message::request("GET", "https", "api.example.com", "/v1/x?id=7", &headers);
/// let verify = VerifyOptions { label: "account".to_owned(), required_components: vec![], ..VerifyOptions::default() };
/// assert!(signature::verify_with(&message, None, SignatureKey::Account(&key), &verify, 1_700_000_001).is_ok());
/// ```
pub fn sign_with(
    key: Signer<'_>,
    message: &Message<'_>,
    options: &SignOptions,
) -> Result<(String, String), SignatureError> {
    let invalid = |what: &str| SignatureError::MalformedInput(what.to_owned());
    let mut items = Vec::with_capacity(options.components.len());
    for text in &options.components {
        let item = if text.starts_with('"') {
            Parser::new(text)
                .parse::<Item>()
                .map_err(|e| SignatureError::MalformedInput(e.to_string()))?
        } else {
            let string =
                sfv::String::try_from(text.clone()).map_err(|_| invalid("component name"))?;
            Item::new(BareItem::String(string))
        };
        Component::from_item(&item)?;
        items.push(item);
    }
    let mut params = Parameters::new();
    let mut param = |name: &str, value: BareItem| -> Result<(), SignatureError> {
        let key = sfv::Key::try_from(name.to_owned()).map_err(|_| invalid("parameter name"))?;
        params.insert(key, value);
        Ok(())
    };
    if let Some(created) = options.created {
        let value = sfv::Integer::try_from(created).map_err(|_| invalid("created"))?;
        param("created", BareItem::Integer(value))?;
    }
    if let Some(expires) = options.expires {
        let value = sfv::Integer::try_from(expires).map_err(|_| invalid("expires"))?;
        param("expires", BareItem::Integer(value))?;
    }
    if let Some(keyid) = &options.keyid {
        let value = sfv::String::try_from(keyid.clone()).map_err(|_| invalid("keyid"))?;
        param("keyid", BareItem::String(value))?;
    }
    let algorithm = match key {
        Signer::Install(_) => ALGORITHM,
        Signer::Account(_) => ACCOUNT_ALGORITHM,
    };
    if options.alg {
        param(
            "alg",
            BareItem::String(
                sfv::String::try_from(algorithm.to_owned()).map_err(|_| invalid("alg"))?,
            ),
        )?;
    }
    let entry = ListEntry::InnerList(InnerList::with_params(items, params));
    let signature_params = List::from([entry.clone()])
        .serialize()
        .ok_or_else(|| invalid("empty"))?;
    let ListEntry::InnerList(inner) = &entry else {
        return Err(invalid("not an inner list"));
    };
    let base = base_of(message, &components(inner)?, &signature_params)?;
    let signature = match key {
        Signer::Install(key) => {
            let signature: Signature = key.sign(base.as_bytes());
            signature.to_bytes().to_vec()
        }
        Signer::Account(key) => {
            let mut mac = key.mac()?;
            mac.update(base.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
    };
    let label = &options.label;
    Ok((
        format!("{label}={signature_params}"),
        format!("{label}=:{}:", Base64::encode_string(&signature)),
    ))
}
