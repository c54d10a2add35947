//! Install-key request signatures: HTTP Message Signatures (RFC 9421) with `ecdsa-p256-sha256`,
//! and the body digest they cover (`Content-Digest`, RFC 9530).
//!
//! The app install holds a P-256 key; the attestation token names its public half (claim
//! `ipk`, base64 DER SubjectPublicKeyInfo). Each request carries `Signature-Input` and
//! `Signature` headers under one label (`install` by default). Verifying rebuilds the
//! signature base exactly as RFC 9421 §2.5 says from the request as received, checks the
//! `created` / `expires` parameters against the caller's clock, checks that every required
//! component is covered and verifies the 64-byte `r || s` signature (§3.3.4).
//!
//! Structured fields are parsed and serialized with the `sfv` crate (RFC 8941).
//!
//! ```
//! use attestgate_policy::signature::{self, InstallKey, Message, SignOptions, VerifyOptions};
//! use p256::ecdsa::SigningKey;
//!
//! let key = SigningKey::from_slice(&[7; 32]).unwrap();
//! let headers = vec![("Host".to_owned(), "api.example.com".to_owned())];
//! let message = Message::request("GET", "https", "api.example.com", "/v1/shapes?x=1", &headers);
//! let options = SignOptions::new(["@method", "@target-uri"], 1_700_000_000);
//! let (input, sig) = signature::sign(&key, &message, &options).unwrap();
//!
//! let mut headers = headers.clone();
//! headers.push(("Signature-Input".to_owned(), input));
//! headers.push(("Signature".to_owned(), sig));
//! let message = Message::request("GET", "https", "api.example.com", "/v1/shapes?x=1", &headers);
//! let install = InstallKey::from_verifying_key(*key.verifying_key());
//! let verified = signature::verify(&message, None, &install, &VerifyOptions::default(), 1_700_000_010).unwrap();
//! assert_eq!(verified.components, ["@method", "@target-uri"]);
//! ```

use base64ct::{Base64, Base64UrlUnpadded, Encoding};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, List, ListEntry, Parameters, Parser};
use sha2::{Digest, Sha256, Sha512};

/// The signature label verified unless configured otherwise.
pub const DEFAULT_LABEL: &str = "install";

/// The one algorithm accepted (RFC 9421 §3.3.4).
pub const ALGORITHM: &str = "ecdsa-p256-sha256";

/// Why a request signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `Signature-Input` / `Signature` member under the label.
    #[error("no request signature labelled `{0}`")]
    Missing(String),
    /// `Signature-Input` is not a dictionary of inner lists with acceptable parameters.
    #[error("malformed signature-input: {0}")]
    MalformedInput(String),
    /// `Signature` is not a dictionary with a 64-byte byte sequence under the label.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// The `alg` parameter names another algorithm.
    #[error("unsupported signature algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// A covered component this verifier does not derive (or a component parameter).
    #[error("unsupported covered component `{0}`")]
    UnsupportedComponent(String),
    /// A configured component the signature does not cover.
    #[error("required component `{0}` is not covered by the signature")]
    RequiredComponentNotCovered(String),
    /// A covered header field the request does not have.
    #[error("covered component `{0}` is absent from the request")]
    ComponentAbsent(String),
    /// No `created` parameter while one is required.
    #[error("signature has no `created` parameter")]
    MissingCreated,
    /// `created` lies further in the future than the allowed clock skew.
    #[error("signature created {0}s in the future")]
    CreatedInFuture(i64),
    /// `created` is older than the allowed age.
    #[error("signature is {age}s old, more than the {max}s allowed")]
    TooOld {
        /// Seconds since `created`.
        age: i64,
        /// The configured maximum.
        max: i64,
    },
    /// `expires` has passed.
    #[error("signature expired {0}s ago")]
    Expired(i64),
    /// The install key is not a base64 DER P-256 SubjectPublicKeyInfo.
    #[error("invalid install key: {0}")]
    InvalidKey(String),
    /// The token has no install key claim.
    #[error("token has no install key claim `{0}`")]
    NoKey(String),
    /// The ECDSA signature does not verify over the signature base.
    #[error("request signature does not verify")]
    BadSignature,
    /// `content-digest` is covered but the body is not available to check it.
    #[error("content-digest is covered but the body is unavailable")]
    BodyUnavailable,
    /// `Content-Digest` is malformed or has no sha-256 / sha-512 member.
    #[error("malformed content-digest: {0}")]
    MalformedDigest(String),
    /// The body does not hash to the `Content-Digest` value.
    #[error("content-digest {0} does not match the body")]
    DigestMismatch(&'static str),
}

/// The message a signature is checked against: the request as received.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// Method, e.g. `POST`.
    pub method: &'a str,
    /// `https` or `http`, for `@scheme` and `@target-uri`.
    pub scheme: &'a str,
    /// Host or `:authority`.
    pub authority: &'a str,
    /// Path with any query string, as received (`:path`).
    pub target: &'a str,
    /// A response status, for `@status` (RFC 9421 appendix B.2.4 signs a response).
    pub status: Option<u16>,
    /// Header fields in arrival order; names in any case.
    pub headers: &'a [(String, String)],
}

impl<'a> Message<'a> {
    /// A request message.
    pub fn request(
        method: &'a str,
        scheme: &'a str,
        authority: &'a str,
        target: &'a str,
        headers: &'a [(String, String)],
    ) -> Message<'a> {
        Message {
            method,
            scheme,
            authority,
            target,
            status: None,
            headers,
        }
    }

    /// A [`crate::Request`] as a message, with the scheme the host saw.
    pub fn from_request(request: &'a crate::Request, scheme: &'a str) -> Message<'a> {
        Message::request(
            &request.method,
            scheme,
            &request.host,
            &request.path,
            &request.headers,
        )
    }

    /// Field lines of a header, trimmed and joined with `, ` (RFC 9421 §2.1); `None` if absent.
    fn field(&self, name: &str) -> Option<String> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches([' ', '\t']))
            .peekable();
        values.peek()?;
        Some(values.collect::<Vec<_>>().join(", "))
    }

    fn path_and_query(&self) -> (&'a str, Option<&'a str>) {
        let target = self.target.split('#').next().unwrap_or(self.target);
        match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        }
    }

    /// The value of one component (RFC 9421 §2.1 fields, §2.2 derived components).
    fn component(&self, name: &str) -> Result<String, SignatureError> {
        let (path, query) = self.path_and_query();
        let path = if path.is_empty() { "/" } else { path };
        let value = match name {
            "@method" => self.method.to_owned(),
            "@scheme" => self.scheme.to_ascii_lowercase(),
            "@authority" => self.authority.to_ascii_lowercase(),
            "@path" => path.to_owned(),
            "@query" => format!("?{}", query.unwrap_or("")),
            "@request-target" => self.target.to_owned(),
            "@target-uri" => format!(
                "{}://{}{}",
                self.scheme.to_ascii_lowercase(),
                self.authority.to_ascii_lowercase(),
                self.target
            ),
            "@status" => match self.status {
                Some(status) => status.to_string(),
                None => return Err(SignatureError::UnsupportedComponent(name.to_owned())),
            },
            derived if derived.starts_with('@') => {
                return Err(SignatureError::UnsupportedComponent(name.to_owned()))
            }
            field => self
                .field(field)
                .ok_or_else(|| SignatureError::ComponentAbsent(field.to_owned()))?,
        };
        if value.contains(['\r', '\n']) {
            return Err(SignatureError::MalformedInput(format!(
                "component `{name}` has a line break"
            )));
        }
        Ok(value)
    }
}

/// One signature, as parsed from `Signature-Input` and `Signature`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// The label both headers use.
    pub label: String,
    /// Covered component identifiers, in order.
    pub components: Vec<String>,
    /// `created`, unix seconds.
    pub created: Option<i64>,
    /// `expires`, unix seconds.
    pub expires: Option<i64>,
    /// `keyid`, informational: the key is the token's.
    pub keyid: Option<String>,
    /// The serialized inner list with its parameters: the `@signature-params` value.
    pub signature_params: String,
    /// The raw signature bytes.
    pub signature: Vec<u8>,
}

fn dictionary(message: &Message<'_>, header: &str) -> Result<Option<Dictionary>, sfv::Error> {
    match message.field(header) {
        Some(value) => Parser::new(&value).parse::<Dictionary>().map(Some),
        None => Ok(None),
    }
}

/// Parses the signature labelled `label` from a message's `Signature-Input` and `Signature`.
pub fn parse(message: &Message<'_>, label: &str) -> Result<ParsedSignature, SignatureError> {
    let missing = || SignatureError::Missing(label.to_owned());
    let inputs = dictionary(message, "signature-input")
        .map_err(|e| SignatureError::MalformedInput(e.to_string()))?
        .ok_or_else(missing)?;
    let signatures = dictionary(message, "signature")
        .map_err(|e| SignatureError::MalformedSignature(e.to_string()))?
        .ok_or_else(missing)?;
    let (input, signature) = match (inputs.get(label), signatures.get(label)) {
        (None, None) => return Err(missing()),
        (None, Some(_)) => {
            return Err(SignatureError::MalformedInput(format!(
                "no member `{label}`"
            )))
        }
        (Some(_), None) => {
            return Err(SignatureError::MalformedSignature(format!(
                "no member `{label}`"
            )))
        }
        (Some(input), Some(signature)) => (input, signature),
    };
    let ListEntry::InnerList(inner) = input else {
        return Err(SignatureError::MalformedInput(
            "the member is not an inner list".to_owned(),
        ));
    };
    let components = components(inner)?;
    let mut parsed = ParsedSignature {
        label: label.to_owned(),
        components,
        created: None,
        expires: None,
        keyid: None,
        signature_params: List::from([input.clone()]).serialize().unwrap_or_default(),
        signature: signature_bytes(signature)?,
    };
    for (key, value) in &inner.params {
        let bad = |what: &str| SignatureError::MalformedInput(format!("`{key}` must be {what}"));
        match key.as_str() {
            "created" => {
                parsed.created = Some(value.as_integer().ok_or_else(|| bad("an integer"))?.into())
            }
            "expires" => {
                parsed.expires = Some(value.as_integer().ok_or_else(|| bad("an integer"))?.into())
            }
            "keyid" => {
                parsed.keyid = Some(
                    value
                        .as_string()
                        .ok_or_else(|| bad("a string"))?
                        .as_str()
                        .to_owned(),
                );
            }
            "alg" => {
                let alg = value.as_string().ok_or_else(|| bad("a string"))?.as_str();
                if alg != ALGORITHM {
                    return Err(SignatureError::UnsupportedAlgorithm(alg.to_owned()));
                }
            }
            "nonce" | "tag" => {}
            other => {
                return Err(SignatureError::MalformedInput(format!(
                    "unknown parameter `{other}`"
                )))
            }
        }
    }
    if parsed.signature_params.is_empty() {
        return Err(SignatureError::MalformedInput(
            "cannot serialize the parameters".to_owned(),
        ));
    }
    Ok(parsed)
}

fn components(inner: &InnerList) -> Result<Vec<String>, SignatureError> {
    let mut names: Vec<String> = Vec::with_capacity(inner.items.len());
    for item in &inner.items {
        let Some(name) = item.bare_item.as_string().map(|s| s.as_str()) else {
            return Err(SignatureError::MalformedInput(
                "component identifiers must be strings".to_owned(),
            ));
        };
        if !item.params.is_empty() {
            return Err(SignatureError::UnsupportedComponent(format!(
                "{name} with parameters"
            )));
        }
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(SignatureError::MalformedInput(format!(
                "component `{name}` must be a non-empty lower-case name"
            )));
        }
        if names.iter().any(|n| n == name) {
            return Err(SignatureError::MalformedInput(format!(
                "component `{name}` is listed twice"
            )));
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

fn signature_bytes(entry: &ListEntry) -> Result<Vec<u8>, SignatureError> {
    match entry {
        ListEntry::Item(Item { bare_item, .. }) => bare_item
            .as_byte_sequence()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                SignatureError::MalformedSignature("the member is not a byte sequence".to_owned())
            }),
        ListEntry::InnerList(_) => Err(SignatureError::MalformedSignature(
            "the member is not a byte sequence".to_owned(),
        )),
    }
}

/// The signature base of RFC 9421 §2.5: one `"name": value` line per covered component, then
/// the `@signature-params` line, joined with `\n` and without a trailing newline.
pub fn signature_base(
    message: &Message<'_>,
    components: &[String],
    signature_params: &str,
) -> Result<String, SignatureError> {
    let mut base = String::new();
    for name in components {
        let value = message.component(name)?;
        base.push('"');
        base.push_str(name);
        base.push_str("\": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(signature_params);
    Ok(base)
}

/// An app install's public key (claim `ipk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallKey(VerifyingKey);

impl InstallKey {
    /// From base64 (standard, or URL-safe without padding) DER SubjectPublicKeyInfo.
    pub fn from_base64_spki(text: &str) -> Result<InstallKey, SignatureError> {
        let text = text.trim();
        let der = Base64::decode_vec(text)
            .or_else(|_| Base64UrlUnpadded::decode_vec(text))
            .map_err(|_| SignatureError::InvalidKey("not base64".to_owned()))?;
        InstallKey::from_spki_der(&der)
    }

    /// From DER SubjectPublicKeyInfo; the key must be on P-256.
    pub fn from_spki_der(der: &[u8]) -> Result<InstallKey, SignatureError> {
        VerifyingKey::from_public_key_der(der)
            .map(InstallKey)
            .map_err(|e| SignatureError::InvalidKey(format!("not a p-256 public key: {e}")))
    }

    /// From a key already parsed.
    pub fn from_verifying_key(key: VerifyingKey) -> InstallKey {
        InstallKey(key)
    }
}

/// What a verifier requires of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The label to verify; others are ignored.
    pub label: String,
    /// Components the signature must cover.
    pub required_components: Vec<String>,
    /// Maximum seconds since `created`; 0 for no limit.
    pub max_age_seconds: u32,
    /// Allowed clock difference for `created` in the future and `expires` in the past.
    pub clock_skew_seconds: u32,
    /// Refuse signatures without `created`.
    pub require_created: bool,
}

impl Default for VerifyOptions {
    fn default() -> VerifyOptions {
        VerifyOptions {
            label: DEFAULT_LABEL.to_owned(),
            required_components: vec!["@method".to_owned(), "@target-uri".to_owned()],
            max_age_seconds: 300,
            clock_skew_seconds: 30,
            require_created: true,
        }
    }
}

/// A signature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The covered components, in order.
    pub components: Vec<String>,
    /// The `keyid` parameter, if any.
    pub keyid: Option<String>,
    /// The `created` parameter, if any.
    pub created: Option<i64>,
}

/// Verifies the signature under `options.label` at time `now` (unix seconds). `body` is the
/// complete request body when the host has it; it is needed only when `content-digest` is
/// covered, and then the digest is checked against it.
pub fn verify(
    message: &Message<'_>,
    body: Option<&[u8]>,
    key: &InstallKey,
    options: &VerifyOptions,
    now: i64,
) -> Result<Verified, SignatureError> {
    let parsed = parse(message, &options.label)?;
    check_parsed(&parsed, options, now)?;
    let base = signature_base(message, &parsed.components, &parsed.signature_params)?;
    verify_base(key, &base, &parsed.signature)?;
    if parsed.components.iter().any(|c| c == "content-digest") {
        let digest = message
            .field("content-digest")
            .ok_or_else(|| SignatureError::ComponentAbsent("content-digest".to_owned()))?;
        check_content_digest(&digest, body.ok_or(SignatureError::BodyUnavailable)?)?;
    }
    Ok(Verified {
        components: parsed.components,
        keyid: parsed.keyid,
        created: parsed.created,
    })
}

/// The checks that need no key: required components, `created`, `expires`.
pub fn check_parsed(
    parsed: &ParsedSignature,
    options: &VerifyOptions,
    now: i64,
) -> Result<(), SignatureError> {
    for required in &options.required_components {
        if !parsed.components.iter().any(|c| c == required) {
            return Err(SignatureError::RequiredComponentNotCovered(
                required.clone(),
            ));
        }
    }
    let skew = i64::from(options.clock_skew_seconds);
    match parsed.created {
        Some(created) => {
            let age = now.saturating_sub(created);
            if -age > skew {
                return Err(SignatureError::CreatedInFuture(-age));
            }
            let max = i64::from(options.max_age_seconds);
            if max > 0 && age > max {
                return Err(SignatureError::TooOld { age, max });
            }
        }
        None if options.require_created => return Err(SignatureError::MissingCreated),
        None => {}
    }
    if let Some(expires) = parsed.expires {
        let late = now.saturating_sub(expires);
        if late > skew {
            return Err(SignatureError::Expired(late));
        }
    }
    Ok(())
}

/// Verifies a 64-byte `r || s` `ecdsa-p256-sha256` signature over a signature base.
pub fn verify_base(key: &InstallKey, base: &str, signature: &[u8]) -> Result<(), SignatureError> {
    if signature.len() != 64 {
        return Err(SignatureError::MalformedSignature(format!(
            "{} bytes, not 64",
            signature.len()
        )));
    }
    let signature = Signature::from_slice(signature)
        .map_err(|_| SignatureError::MalformedSignature("not a p-256 r || s".to_owned()))?;
    key.0
        .verify(base.as_bytes(), &signature)
        .map_err(|_| SignatureError::BadSignature)
}

/// Checks a `Content-Digest` value (RFC 9530) against the body: every `sha-256` / `sha-512`
/// member must match, and there must be at least one; other algorithms are ignored.
pub fn check_content_digest(value: &str, body: &[u8]) -> Result<(), SignatureError> {
    let dict = Parser::new(value)
        .parse::<Dictionary>()
        .map_err(|e| SignatureError::MalformedDigest(e.to_string()))?;
    let mut checked = false;
    for (alg, entry) in &dict {
        let (name, expected): (&'static str, Vec<u8>) = match alg.as_str() {
            "sha-256" => ("sha-256", Sha256::digest(body).to_vec()),
            "sha-512" => ("sha-512", Sha512::digest(body).to_vec()),
            _ => continue,
        };
        let actual = signature_bytes(entry).map_err(|_| {
            SignatureError::MalformedDigest(format!("{name} is not a byte sequence"))
        })?;
        if actual != expected {
            return Err(SignatureError::DigestMismatch(name));
        }
        checked = true;
    }
    if checked {
        Ok(())
    } else {
        Err(SignatureError::MalformedDigest(
            "no sha-256 or sha-512 member".to_owned(),
        ))
    }
}

/// The digest algorithms [`content_digest`] can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// `sha-256`
    Sha256,
    /// `sha-512`
    Sha512,
}

/// A `Content-Digest` value for a body, e.g. `sha-256=:…:`.
pub fn content_digest(body: &[u8], algorithm: DigestAlgorithm) -> String {
    let (name, digest) = match algorithm {
        DigestAlgorithm::Sha256 => ("sha-256", Sha256::digest(body).to_vec()),
        DigestAlgorithm::Sha512 => ("sha-512", Sha512::digest(body).to_vec()),
    };
    format!("{name}=:{}:", Base64::encode_string(&digest))
}

/// What [`sign`] puts in the `Signature-Input` parameters.
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

/// Signs a message: returns the `Signature-Input` and `Signature` header values. Covered
/// header fields (e.g. `content-digest`) must already be in `message.headers`.
pub fn sign(
    key: &SigningKey,
    message: &Message<'_>,
    options: &SignOptions,
) -> Result<(String, String), SignatureError> {
    let invalid = |what: &str| SignatureError::MalformedInput(what.to_owned());
    let mut items = Vec::with_capacity(options.components.len());
    for name in &options.components {
        let string = sfv::String::try_from(name.clone()).map_err(|_| invalid("component name"))?;
        items.push(Item::new(BareItem::String(string)));
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
    if options.alg {
        param(
            "alg",
            BareItem::String(
                sfv::String::try_from(ALGORITHM.to_owned()).map_err(|_| invalid("alg"))?,
            ),
        )?;
    }
    let entry = ListEntry::InnerList(InnerList::with_params(items, params));
    let signature_params = List::from([entry.clone()])
        .serialize()
        .ok_or_else(|| invalid("empty"))?;
    let base = signature_base(message, &options.components, &signature_params)?;
    let signature: Signature = key.sign(base.as_bytes());
    let label = &options.label;
    Ok((
        format!("{label}={signature_params}"),
        format!("{label}=:{}:", Base64::encode_string(&signature.to_bytes())),
    ))
}

/// Whether a route checks install-key request signatures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureMode {
    /// Not checked; `input.signature.valid` is always false.
    #[default]
    Off,
    /// Checked when the request is signed and the token names a key: a signature that is
    /// present but fails is refused; an unsigned request (or a token without the key claim,
    /// as fail-over tokens may be) goes on with `input.signature.valid` false.
    Optional,
    /// Every request must carry a valid signature by the token's install key.
    Required,
}

/// The `signature` config block, top level or per rule (a rule's block replaces the top
/// level one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// `off` (default), `optional` or `required`.
    #[serde(default)]
    pub mode: SignatureMode,
    /// The `Signature-Input` / `Signature` label.
    #[serde(default = "default_label")]
    pub label: String,
    /// Components the signature must cover.
    #[serde(default = "default_components")]
    pub components: Vec<String>,
    /// Maximum seconds since `created`; 0 for no limit.
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u32,
    /// Allowed clock difference on `created` and `expires`.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u32,
    /// The token claim holding the install key (base64 DER SubjectPublicKeyInfo, P-256).
    #[serde(default = "default_key_claim")]
    pub key_claim: String,
    /// The scheme `@scheme` and `@target-uri` use (the gate sits behind TLS termination).
    #[serde(default = "default_scheme")]
    pub scheme: String,
}

fn default_label() -> String {
    DEFAULT_LABEL.to_owned()
}
fn default_components() -> Vec<String> {
    VerifyOptions::default().required_components
}
fn default_max_age() -> u32 {
    VerifyOptions::default().max_age_seconds
}
fn default_skew() -> u32 {
    VerifyOptions::default().clock_skew_seconds
}
fn default_key_claim() -> String {
    "ipk".to_owned()
}
fn default_scheme() -> String {
    "https".to_owned()
}

impl Default for SignatureConfig {
    fn default() -> SignatureConfig {
        SignatureConfig {
            mode: SignatureMode::Off,
            label: default_label(),
            components: default_components(),
            max_age_seconds: default_max_age(),
            clock_skew_seconds: default_skew(),
            key_claim: default_key_claim(),
            scheme: default_scheme(),
        }
    }
}

impl SignatureConfig {
    /// Whether this is the default (for `skip_serializing_if`).
    pub fn is_default(&self) -> bool {
        *self == SignatureConfig::default()
    }

    /// What the verifier requires.
    pub fn verify_options(&self) -> VerifyOptions {
        VerifyOptions {
            label: self.label.clone(),
            required_components: self.components.clone(),
            max_age_seconds: self.max_age_seconds,
            clock_skew_seconds: self.clock_skew_seconds,
            require_created: true,
        }
    }

    /// Whether a request needs its body buffered before it can be decided: the signature
    /// must cover `content-digest`.
    pub fn needs_body(&self) -> bool {
        self.mode != SignatureMode::Off && self.components.iter().any(|c| c == "content-digest")
    }

    /// Refuses configs that cannot work; `field` is the dotted path for the message.
    pub(crate) fn validate(&self, field: &str) -> Result<(), crate::ConfigError> {
        let invalid = |message: String| {
            Err(crate::ConfigError::Invalid {
                field: field.to_owned(),
                message,
            })
        };
        if sfv::KeyRef::from_str(&self.label).is_err() {
            return invalid(format!(
                "label `{}` is not a structured-field key",
                self.label
            ));
        }
        for component in &self.components {
            let derived = [
                "@method",
                "@scheme",
                "@authority",
                "@path",
                "@query",
                "@request-target",
                "@target-uri",
            ];
            let ok = if component.starts_with('@') {
                derived.contains(&component.as_str())
            } else {
                crate::gate::is_header_name(component)
                    && !component.bytes().any(|b| b.is_ascii_uppercase())
            };
            if !ok {
                return invalid(format!(
                    "component `{component}` is not a supported derived component or a lower-case header name"
                ));
            }
        }
        if self.key_claim.is_empty() {
            return invalid("key_claim must not be empty".to_owned());
        }
        if self.scheme != "https" && self.scheme != "http" {
            return invalid("scheme must be `https` or `http`".to_owned());
        }
        Ok(())
    }

    /// Checks a request's signature against the verified token's claims: the gate's step.
    pub fn check(
        &self,
        request: &crate::Request,
        claims: &serde_json::Map<String, serde_json::Value>,
        now: i64,
    ) -> SignatureOutcome {
        let message = Message::from_request(request, &self.scheme);
        let present = matches!(
            parse(&message, &self.label),
            Ok(_)
                | Err(SignatureError::MalformedInput(_)
                    | SignatureError::MalformedSignature(_)
                    | SignatureError::UnsupportedAlgorithm(_)
                    | SignatureError::UnsupportedComponent(_))
        );
        let mut outcome = SignatureOutcome {
            present,
            valid: false,
            components: Vec::new(),
            error: None,
        };
        if self.mode == SignatureMode::Off {
            return outcome;
        }
        let result = match claims.get(&self.key_claim) {
            None => Err(SignatureError::NoKey(self.key_claim.clone())),
            Some(serde_json::Value::String(ipk)) => InstallKey::from_base64_spki(ipk),
            Some(_) => Err(SignatureError::InvalidKey(format!(
                "claim `{}` is not a string",
                self.key_claim
            ))),
        }
        .and_then(|key| {
            verify(
                &message,
                request.body.as_deref(),
                &key,
                &self.verify_options(),
                now,
            )
        });
        match result {
            Ok(verified) => {
                outcome.valid = true;
                outcome.components = verified.components;
            }
            Err(error) => outcome.error = Some(error),
        }
        outcome
    }
}

/// What the gate learned about a request's signature; `input.signature` for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureOutcome {
    /// The request carries a signature under the label (well-formed or not).
    pub present: bool,
    /// It verified.
    pub valid: bool,
    /// The components it covers, when valid.
    pub components: Vec<String>,
    /// Why it did not verify, when checked.
    pub error: Option<SignatureError>,
}

impl SignatureOutcome {
    /// The decision reason when this outcome refuses the request under `mode`, if it does.
    pub fn denial(&self, mode: SignatureMode) -> Option<crate::Reason> {
        match (mode, &self.error) {
            (SignatureMode::Off, _) | (_, None) => None,
            (SignatureMode::Required, Some(_)) if !self.present => {
                Some(crate::Reason::RequestSignatureMissing)
            }
            (SignatureMode::Required, Some(_)) => Some(crate::Reason::RequestSignatureInvalid),
            (SignatureMode::Optional, Some(_)) if !self.present => None,
            (SignatureMode::Optional, Some(SignatureError::NoKey(_))) => None,
            (SignatureMode::Optional, Some(_)) => Some(crate::Reason::RequestSignatureInvalid),
        }
    }

    /// `input.signature`: `{present, valid, components, error}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "present": self.present,
            "valid": self.valid,
            "components": self.components,
            "error": self.error.as_ref().map(ToString::to_string),
        })
    }
}
