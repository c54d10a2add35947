//! Request signatures: HTTP Message Signatures (RFC 9421) as Approov's SDK sends them, and the
//! body digest they cover (`Content-Digest`, RFC 9530).
//!
//! Two kinds of signature, each under its own label of one `Signature-Input` / `Signature`
//! pair:
//! - **install** (`ecdsa-p256-sha256`): the app install holds a P-256 key; the attestation
//!   token names its public half (claim `ipk`, base64 DER SubjectPublicKeyInfo);
//! - **account** (`hmac-sha256`): the account's message-signing key, shared by every app of
//!   the account, so that a device without secure hardware still signs.
//!
//! Verifying rebuilds the signature base exactly as RFC 9421 §2.5 says from the request as
//! received (component parameters `sf`, `key`, `bs` and `@query-param;name` included),
//! checks the `created` / `expires` parameters against the caller's clock, checks that every
//! required component is covered and verifies the signature (§3.3.4, §3.3.3).
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
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, List, ListEntry, Parameters, Parser};
use sha2::{Digest, Sha256, Sha512};

use crate::config::MAX_MAX_BODY_BYTES;
pub use crate::config::{
    Accept, SignatureConfig, SignatureMode, DEFAULT_ACCOUNT_LABEL, DEFAULT_LABEL,
};

/// The install signature's algorithm (RFC 9421 §3.3.4).
pub(crate) const ALGORITHM: &str = "ecdsa-p256-sha256";

/// The account signature's algorithm (RFC 9421 §3.3.3).
pub(crate) const ACCOUNT_ALGORITHM: &str = "hmac-sha256";

/// Shortest account key accepted: the HMAC's output size, as for `approov_secret`.
pub(crate) const MIN_ACCOUNT_KEY_BYTES: usize = 32;

/// Why a request signature was refused.
///
/// ```
/// use attestgate_policy::signature::{self, SignatureError, VerifyOptions};
/// # use attestgate_policy::signature as s;
/// # let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// # let install = s::InstallKey::from_verifying_key(*key.verifying_key());
/// # let unsigned = s::Message::request("GET", "https", "api.example.com", "/v1/x", &[]);
/// # let (input, sig) = s::sign(&key, &unsigned, &s::SignOptions::new(["@method", "@authority"], 1_700_000_000)).unwrap();
/// # let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// # let message = s::Message::request("GET", "https", "api.example.com", "/v1/x", &headers);
/// let options = VerifyOptions { required_components: vec!["@authority".to_owned()], ..VerifyOptions::default() };
/// let verify = |now| signature::verify(&message, None, &install, &options, now);
/// assert!(verify(1_700_000_010).is_ok());
/// assert_eq!(verify(1_700_000_400), Err(SignatureError::TooOld { age: 400, max: 300 }));
/// let required = VerifyOptions::default(); // covers `@method` and `@target-uri`
/// assert_eq!(
///     signature::verify(&message, None, &install, &required, 1_700_000_010),
///     Err(SignatureError::RequiredComponentNotCovered("@target-uri".to_owned())),
/// );
/// let error = signature::verify(&unsigned, None, &install, &options, 1_700_000_010).unwrap_err();
/// assert_eq!(error.to_string(), "no request signature labelled `install`");
/// ```
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
    /// A covered component this verifier does not derive (e.g. trailers, `;tr`).
    #[error("unsupported covered component `{0}`")]
    UnsupportedComponent(String),
    /// A component parameter RFC 9421 does not define, or one used where the RFC forbids it
    /// (`bs` with `sf` or `key`, `req` in a request, `name` outside `@query-param`).
    #[error("invalid parameters on component `{component}`: {message}")]
    InvalidComponentParameter {
        /// The component identifier.
        component: String,
        /// What is wrong.
        message: String,
    },
    /// `sf` or `key` is given for a field whose value is not a structured field.
    #[error("covered field `{0}` is not a structured field")]
    NotStructured(String),
    /// `key` names a member the dictionary field does not have.
    #[error("covered field `{field}` has no dictionary member `{key}`")]
    MemberAbsent {
        /// The field.
        field: String,
        /// The member.
        key: String,
    },
    /// `@query-param` names a parameter the query has more than once (RFC 9421 §2.2.8).
    #[error("query parameter `{0}` appears more than once")]
    QueryParamRepeated(String),
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
    /// The account signature's key is not configured.
    #[error("no account key is configured")]
    NoAccountKey,
    /// The signature does not verify over the signature base.
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
///
/// ```
/// use attestgate_policy::signature::{self, Message};
/// let headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
/// let message = Message { status: Some(200), ..Message::request("GET", "https", "h", "/", &headers) };
/// let base = signature::signature_base(&message, &["@status".to_owned(), "content-type".to_owned()], "()").unwrap();
/// assert_eq!(base, "\"@status\": 200\n\"content-type\": application/json\n\"@signature-params\": ()");
/// ```
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
    ///
    /// ```
    /// use attestgate_policy::signature::{self, Message};
    /// let message = Message::request("POST", "https", "api.example.com", "/v1/pay?x=1", &[]);
    /// let base = signature::signature_base(&message, &["@target-uri".to_owned()], "()").unwrap();
    /// assert!(base.starts_with("\"@target-uri\": https://api.example.com/v1/pay?x=1\n"));
    /// ```
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
    ///
    /// ```
    /// use attestgate_policy::{signature::Message, Request};
    /// let request = Request::new("GET", "/v1/x?y=1").with_host("api.example.com");
    /// let message = Message::from_request(&request, "https");
    /// assert_eq!((message.method, message.authority, message.target), ("GET", "api.example.com", "/v1/x?y=1"));
    /// assert_eq!(message.status, None);
    /// ```
    pub fn from_request(request: &'a crate::Request, scheme: &'a str) -> Message<'a> {
        Message::request(
            &request.method,
            scheme,
            &request.host,
            &request.path,
            &request.headers,
        )
    }

    /// Field lines of a header, each trimmed, in order.
    fn field_lines(&self, name: &str) -> Vec<&'a str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches([' ', '\t']))
            .collect()
    }

    /// Field lines of a header, trimmed and joined with `, ` (RFC 9421 §2.1); `None` if absent.
    fn field(&self, name: &str) -> Option<String> {
        let lines = self.field_lines(name);
        (!lines.is_empty()).then(|| lines.join(", "))
    }

    fn path_and_query(&self) -> (&'a str, Option<&'a str>) {
        let target = self.target.split('#').next().unwrap_or(self.target);
        match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        }
    }

    /// `@authority`: lower-cased, without the scheme's default port (RFC 9421 §2.2.3).
    fn authority(&self) -> String {
        let authority = self.authority.to_ascii_lowercase();
        let default_port = match self.scheme.to_ascii_lowercase().as_str() {
            "https" => ":443",
            "http" => ":80",
            _ => return authority,
        };
        match authority.strip_suffix(default_port) {
            Some(host) if !host.is_empty() => host.to_owned(),
            _ => authority,
        }
    }

    /// The value of one component (RFC 9421 §2.1 fields with their parameters, §2.2 derived
    /// components).
    fn component(&self, component: &Component) -> Result<String, SignatureError> {
        let name = component.name.as_str();
        let (path, query) = self.path_and_query();
        let path = if path.is_empty() { "/" } else { path };
        let value = match name {
            "@method" => self.method.to_owned(),
            "@scheme" => self.scheme.to_ascii_lowercase(),
            "@authority" => self.authority(),
            "@path" => path.to_owned(),
            "@query" => format!("?{}", query.unwrap_or("")),
            "@query-param" => {
                let wanted = component.query_name.as_deref().unwrap_or_default();
                query_param(query.unwrap_or(""), wanted)?
                    .ok_or_else(|| SignatureError::ComponentAbsent(component.label()))?
            }
            "@request-target" => self.target.to_owned(),
            // The target URI as the client sent it (§2.2.2): only `@authority` is normalized.
            "@target-uri" => format!(
                "{}://{}{}",
                self.scheme.to_ascii_lowercase(),
                self.authority,
                self.target
            ),
            "@status" => match self.status {
                Some(status) => status.to_string(),
                None => return Err(SignatureError::UnsupportedComponent(name.to_owned())),
            },
            derived if derived.starts_with('@') => {
                return Err(SignatureError::UnsupportedComponent(name.to_owned()))
            }
            field => {
                let lines = self.field_lines(field);
                if lines.is_empty() {
                    return Err(SignatureError::ComponentAbsent(field.to_owned()));
                }
                if component.bs {
                    // §2.1.3: each field line wrapped as a byte sequence.
                    lines
                        .iter()
                        .map(|line| format!(":{}:", Base64::encode_string(line.as_bytes())))
                        .collect::<Vec<_>>()
                        .join(", ")
                } else if let Some(key) = &component.key {
                    dictionary_member(field, &lines.join(", "), key)?
                } else if component.sf {
                    reserialize(field, &lines.join(", "))?
                } else {
                    lines.join(", ")
                }
            }
        };
        if value.contains(['\r', '\n']) {
            return Err(SignatureError::MalformedInput(format!(
                "component `{name}` has a line break"
            )));
        }
        Ok(value)
    }
}

/// Fields defined as dictionaries and lists (RFC 9421, 9530, 9209, 9211, 9218); others are
/// read as whichever structured type parses, dictionary first.
const DICTIONARY_FIELDS: &[&str] = &[
    "content-digest",
    "repr-digest",
    "want-content-digest",
    "want-repr-digest",
    "signature",
    "signature-input",
    "accept-signature",
    "priority",
    "cdn-cache-control",
];
const LIST_FIELDS: &[&str] = &["cache-status", "proxy-status", "accept-ch"];

/// `;sf`: the field re-serialized strictly as its structured type (§2.1.1).
fn reserialize(field: &str, value: &str) -> Result<String, SignatureError> {
    let not_structured = || SignatureError::NotStructured(field.to_owned());
    let as_dictionary = || -> Option<String> {
        Parser::new(value)
            .parse::<Dictionary>()
            .ok()
            .and_then(|d| d.serialize())
    };
    let as_list = || -> Option<String> {
        Parser::new(value)
            .parse::<List>()
            .ok()
            .and_then(|l| l.serialize())
    };
    let as_item = || -> Option<String> {
        Parser::new(value)
            .parse::<Item>()
            .ok()
            .map(|i| i.serialize())
    };
    let serialized = if DICTIONARY_FIELDS.contains(&field) {
        as_dictionary()
    } else if LIST_FIELDS.contains(&field) {
        as_list()
    } else {
        as_dictionary().or_else(as_list).or_else(as_item)
    };
    serialized.ok_or_else(not_structured)
}

/// `;key="k"`: the serialized value of one dictionary member (§2.1.2).
fn dictionary_member(field: &str, value: &str, key: &str) -> Result<String, SignatureError> {
    let dict = Parser::new(value)
        .parse::<Dictionary>()
        .map_err(|_| SignatureError::NotStructured(field.to_owned()))?;
    let member = dict.get(key).ok_or_else(|| SignatureError::MemberAbsent {
        field: field.to_owned(),
        key: key.to_owned(),
    })?;
    List::from([member.clone()])
        .serialize()
        .ok_or_else(|| SignatureError::NotStructured(field.to_owned()))
}

/// `@query-param;name="n"` (§2.2.8): the query parsed as `application/x-www-form-urlencoded`,
/// names and values re-encoded with its percent-encode set. `None`
/// when the query has no such parameter; an error when it has it more than once.
fn query_param(query: &str, wanted: &str) -> Result<Option<String>, SignatureError> {
    let mut found = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_encode(&form_decode(name)) != wanted {
            continue;
        }
        if found.is_some() {
            return Err(SignatureError::QueryParamRepeated(wanted.to_owned()));
        }
        found = Some(percent_encode(&form_decode(value)));
    }
    Ok(found)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Percent-encodes with the URL standard's `application/x-www-form-urlencoded` percent-encode
/// set (as RFC 9421 §2.2.8 says): letters, digits and `*-._` stay, a space is `%20`.
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"*-._".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One covered component: a name and the parameters RFC 9421 §2.1 and §2.2.8 define.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Component {
    name: String,
    sf: bool,
    bs: bool,
    key: Option<String>,
    query_name: Option<String>,
    /// The identifier as the signature base writes it: `"name";params`.
    identifier: String,
}

impl Component {
    /// A component without parameters.
    fn plain(name: &str) -> Component {
        Component {
            name: name.to_owned(),
            sf: false,
            bs: false,
            key: None,
            query_name: None,
            identifier: format!("\"{name}\""),
        }
    }

    /// From one item of a `Signature-Input` inner list.
    fn from_item(item: &Item) -> Result<Component, SignatureError> {
        let Some(name) = item.bare_item.as_string().map(|s| s.as_str()) else {
            return Err(SignatureError::MalformedInput(
                "component identifiers must be strings".to_owned(),
            ));
        };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(SignatureError::MalformedInput(format!(
                "component `{name}` must be a non-empty lower-case name"
            )));
        }
        let mut component = Component::plain(name);
        component.identifier = item.serialize();
        let invalid = |message: &str| SignatureError::InvalidComponentParameter {
            component: component.identifier.clone(),
            message: message.to_owned(),
        };
        let mut errors = None;
        for (key, value) in &item.params {
            let flag = || {
                value
                    .as_boolean()
                    .ok_or_else(|| invalid("must be a boolean"))
            };
            let text = || {
                value
                    .as_string()
                    .map(|s| s.as_str().to_owned())
                    .ok_or_else(|| invalid("must be a string"))
            };
            let result = match key.as_str() {
                "sf" => flag().map(|on| component.sf = on),
                "bs" => flag().map(|on| component.bs = on),
                "key" => text().map(|k| component.key = Some(k)),
                "name" => text().map(|n| component.query_name = Some(n)),
                "req" => Err(invalid(
                    "`req` names the request of a signed response; a request has none",
                )),
                "tr" => Err(SignatureError::UnsupportedComponent(format!(
                    "{} (trailers are not available to the gate)",
                    component.identifier
                ))),
                other => Err(invalid(&format!("unknown parameter `{other}`"))),
            };
            if let Err(error) = result {
                errors = Some(error);
                break;
            }
        }
        if let Some(error) = errors {
            return Err(error);
        }
        let derived = name.starts_with('@');
        if component.bs && (component.sf || component.key.is_some()) {
            return Err(invalid("`bs` cannot be combined with `sf` or `key`"));
        }
        if derived && (component.sf || component.bs || component.key.is_some()) {
            return Err(invalid("`sf`, `key` and `bs` apply to fields only"));
        }
        match (name == "@query-param", component.query_name.is_some()) {
            (true, false) => return Err(invalid("`@query-param` needs a `name`")),
            (false, true) => return Err(invalid("`name` applies to `@query-param` only")),
            _ => {}
        }
        Ok(component)
    }

    /// From configuration or a caller: a bare name, or a serialized item with parameters
    /// (`"@query-param";name="id"`).
    fn parse(text: &str) -> Result<Component, SignatureError> {
        if !text.starts_with('"') {
            return Ok(Component::plain(text));
        }
        let item = Parser::new(text)
            .parse::<Item>()
            .map_err(|e| SignatureError::MalformedInput(e.to_string()))?;
        Component::from_item(&item)
    }

    /// How outputs name it: the bare name without parameters, else the identifier.
    fn label(&self) -> String {
        if self.identifier.len() == self.name.len() + 2 {
            self.name.clone()
        } else {
            self.identifier.clone()
        }
    }
}

/// One signature, as parsed from `Signature-Input` and `Signature`.
///
/// ```
/// use attestgate_policy::signature;
/// # use attestgate_policy::signature as s;
/// # let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// # let install = s::InstallKey::from_verifying_key(*key.verifying_key());
/// # let unsigned = s::Message::request("GET", "https", "api.example.com", "/v1/x", &[]);
/// # let (input, sig) = s::sign(&key, &unsigned, &s::SignOptions::new(["@method", "@authority"], 1_700_000_000)).unwrap();
/// # let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// # let message = s::Message::request("GET", "https", "api.example.com", "/v1/x", &headers);
/// let parsed = signature::parse(&message, "install").unwrap();
/// assert_eq!((parsed.components, parsed.created), (vec!["@method".to_owned(), "@authority".to_owned()], Some(1_700_000_000)));
/// assert_eq!(parsed.signature.len(), 64);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    /// The label both headers use.
    pub label: String,
    /// Covered components, in order: the bare name, or the identifier with its parameters
    /// (`"@query-param";name="id"`).
    pub components: Vec<String>,
    /// The covered components, parsed.
    items: Vec<Component>,
    /// The `alg` parameter, if given.
    pub alg: Option<String>,
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
/// Nothing is verified.
///
/// ```
/// use attestgate_policy::signature::{self, Message, SignatureError};
/// let headers = vec![
///     ("Signature-Input".to_owned(), r#"sig1=("@method");created=1;keyid="k""#.to_owned()),
///     ("Signature".to_owned(), format!("sig1=:{}:", "A".repeat(86) + "==")),
/// ];
/// let message = Message::request("GET", "https", "h", "/", &headers);
/// let parsed = signature::parse(&message, "sig1").unwrap();
/// assert_eq!(parsed.keyid.as_deref(), Some("k"));
/// assert_eq!(parsed.signature_params, r#"("@method");created=1;keyid="k""#);
/// assert!(matches!(signature::parse(&message, "sig2"), Err(SignatureError::Missing(_))));
/// ```
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
    let items = components(inner)?;
    let mut parsed = ParsedSignature {
        label: label.to_owned(),
        components: items.iter().map(Component::label).collect(),
        items,
        alg: None,
        created: None,
        expires: None,
        keyid: None,
        signature_params: List::from([input.clone()]).serialize().unwrap_or_default(),
        signature: signature_bytes(signature)?,
    };
    for (key, value) in &inner.params {
        let bad = |what: &str| SignatureError::MalformedInput(format!("`{key}` must be {what}"));
        let text = || {
            value
                .as_string()
                .map(|s| s.as_str().to_owned())
                .ok_or_else(|| bad("a string"))
        };
        match key.as_str() {
            "created" => {
                parsed.created = Some(value.as_integer().ok_or_else(|| bad("an integer"))?.into())
            }
            "expires" => {
                parsed.expires = Some(value.as_integer().ok_or_else(|| bad("an integer"))?.into())
            }
            "keyid" => parsed.keyid = Some(text()?),
            "alg" => parsed.alg = Some(text()?),
            "nonce" | "tag" => {
                text()?;
            }
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

/// Whether a member of a request's `Signature-Input` under one of `labels` covers a
/// component: what a host asks before deciding whether to wait for the body
/// (`content-digest`). The header is parsed once. False when it or the members are absent or
/// unreadable. (Hosts ask [`crate::Gate::needs_body`], which asks this.)
pub(crate) fn covers<'l>(
    message: &Message<'_>,
    labels: impl IntoIterator<Item = &'l str>,
    name: &str,
) -> bool {
    let Ok(Some(inputs)) = dictionary(message, "signature-input") else {
        return false;
    };
    labels.into_iter().any(|label| match inputs.get(label) {
        Some(ListEntry::InnerList(inner)) => inner.items.iter().any(|item| {
            item.bare_item
                .as_string()
                .is_some_and(|s| s.as_str() == name)
        }),
        _ => false,
    })
}

fn components(inner: &InnerList) -> Result<Vec<Component>, SignatureError> {
    let mut items: Vec<Component> = Vec::with_capacity(inner.items.len());
    for item in &inner.items {
        let component = Component::from_item(item)?;
        if items.iter().any(|c| c.identifier == component.identifier) {
            return Err(SignatureError::MalformedInput(format!(
                "component `{}` is listed twice",
                component.identifier
            )));
        }
        items.push(component);
    }
    Ok(items)
}

/// A signature member: a byte sequence (RFC 9421 §4.2), or a string of base64 as some
/// versions of Approov's service layers send it.
fn signature_bytes(entry: &ListEntry) -> Result<Vec<u8>, SignatureError> {
    let not_bytes =
        || SignatureError::MalformedSignature("the member is not a byte sequence".to_owned());
    match entry {
        ListEntry::Item(Item { bare_item, .. }) => {
            if let Some(bytes) = bare_item.as_byte_sequence() {
                return Ok(bytes.to_vec());
            }
            let text = bare_item.as_string().ok_or_else(not_bytes)?;
            Base64::decode_vec(text.as_str()).map_err(|_| not_bytes())
        }
        ListEntry::InnerList(_) => Err(not_bytes()),
    }
}

/// The signature base of RFC 9421 §2.5: one `"name";params: value` line per covered
/// component, then the `@signature-params` line, joined with `\n` and without a trailing
/// newline. A component is a bare name (`@method`, `content-type`) or an identifier with its
/// parameters (`"@query-param";name="id"`, `"example-dict";key="a"`).
///
/// ```
/// use attestgate_policy::signature::{self, Message};
/// let message = Message::request("GET", "https", "h", "/v1/x?id=7&b=2", &[]);
/// let components = ["@method".to_owned(), r#""@query-param";name="id""#.to_owned()];
/// let base = signature::signature_base(&message, &components, "();created=1").unwrap();
/// assert_eq!(base, "\"@method\": GET\n\"@query-param\";name=\"id\": 7\n\"@signature-params\": ();created=1");
/// ```
pub fn signature_base(
    message: &Message<'_>,
    components: &[String],
    signature_params: &str,
) -> Result<String, SignatureError> {
    let items = components
        .iter()
        .map(|text| Component::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    base_of(message, &items, signature_params)
}

fn base_of(
    message: &Message<'_>,
    components: &[Component],
    signature_params: &str,
) -> Result<String, SignatureError> {
    let mut base = String::new();
    for component in components {
        let value = message.component(component)?;
        base.push_str(&component.identifier);
        base.push_str(": ");
        base.push_str(&value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(signature_params);
    Ok(base)
}

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
pub struct InstallKey(VerifyingKey);

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

/// What a verifier requires of a signature.
///
/// ```
/// use attestgate_policy::signature::{self, VerifyOptions};
/// # use attestgate_policy::signature as s;
/// # let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// # let install = s::InstallKey::from_verifying_key(*key.verifying_key());
/// # let unsigned = s::Message::request("GET", "https", "api.example.com", "/v1/x", &[]);
/// # let (input, sig) = s::sign(&key, &unsigned, &s::SignOptions::new(["@method", "@authority"], 1_700_000_000)).unwrap();
/// # let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// # let message = s::Message::request("GET", "https", "api.example.com", "/v1/x", &headers);
/// let defaults = VerifyOptions::default();
/// assert_eq!((defaults.label.as_str(), defaults.max_age_seconds), ("install", 300));
/// // The default requires `@method` and `@target-uri`; this signature covers `@authority`.
/// assert!(signature::verify(&message, None, &install, &defaults, 1_700_000_000).is_err());
/// let options = VerifyOptions { required_components: vec!["@authority".to_owned()], ..defaults };
/// assert!(signature::verify(&message, None, &install, &options, 1_700_000_000).is_ok());
/// ```
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
    /// What the default [`SignatureConfig`] requires.
    fn default() -> VerifyOptions {
        SignatureConfig::default().verify_options()
    }
}

/// A signature that verified.
///
/// ```
/// use attestgate_policy::signature::{self, VerifyOptions};
/// # use attestgate_policy::signature as s;
/// # let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// # let install = s::InstallKey::from_verifying_key(*key.verifying_key());
/// # let unsigned = s::Message::request("GET", "https", "api.example.com", "/v1/x", &[]);
/// # let (input, sig) = s::sign(&key, &unsigned, &s::SignOptions::new(["@method", "@authority"], 1_700_000_000)).unwrap();
/// # let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// # let message = s::Message::request("GET", "https", "api.example.com", "/v1/x", &headers);
/// let options = VerifyOptions { required_components: vec![], ..VerifyOptions::default() };
/// let verified = signature::verify(&message, None, &install, &options, 1_700_000_000).unwrap();
/// assert_eq!(verified.components, ["@method", "@authority"]);
/// assert_eq!((verified.created, verified.keyid), (Some(1_700_000_000), None));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The covered components, in order.
    pub components: Vec<String>,
    /// The `keyid` parameter, if any.
    pub keyid: Option<String>,
    /// The `created` parameter, if any.
    pub created: Option<i64>,
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

    fn mac(&self) -> Result<Hmac<Sha256>, SignatureError> {
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

/// Verifies the install signature under `options.label` at time `now` (unix seconds). `body`
/// is the complete request body when the host has it; it is needed only when
/// `content-digest` is covered, and then the digest is checked against it.
///
/// ```
/// use attestgate_policy::signature::{self, content_digest, DigestAlgorithm, InstallKey, Message, SignOptions, SignatureError, VerifyOptions};
/// let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// let install = InstallKey::from_verifying_key(*key.verifying_key());
/// let mut headers = vec![("Content-Digest".to_owned(), content_digest(b"{}", DigestAlgorithm::Sha256))];
/// let options = SignOptions::new(["@method", "@target-uri", "content-digest"], 1_700_000_000);
/// let message = Message::request("POST", "https", "h", "/pay", &headers);
/// let (input, sig) = signature::sign(&key, &message, &options).unwrap();
/// headers.extend([("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)]);
/// let message = Message::request("POST", "https", "h", "/pay", &headers);
///
/// let verify = |body| signature::verify(&message, body, &install, &VerifyOptions::default(), 1_700_000_000);
/// assert!(verify(Some(b"{}")).is_ok());
/// assert!(matches!(verify(Some(b"{\"amount\":1}")), Err(SignatureError::DigestMismatch(_))));
/// assert_eq!(verify(None), Err(SignatureError::BodyUnavailable));
/// ```
pub fn verify(
    message: &Message<'_>,
    body: Option<&[u8]>,
    key: &InstallKey,
    options: &VerifyOptions,
    now: i64,
) -> Result<Verified, SignatureError> {
    verify_with(message, body, SignatureKey::Install(key), options, now)
}

/// [`verify`] with either kind of key.
///
/// ```
/// use attestgate_policy::signature::{self, AccountKey, Message, SignOptions, SignatureKey, Signer, VerifyOptions};
/// let account = AccountKey::from_bytes(vec![7; 32]).unwrap();
/// let options = SignOptions { label: "account".to_owned(), ..SignOptions::new(["@method"], 1_700_000_000) };
/// let (input, sig) = signature::sign_with(Signer::Account(&account), &Message::request("GET", "https", "h", "/", &[]), &options).unwrap();
/// let headers = vec![("Signature-Input".to_owned(), input), ("Signature".to_owned(), sig)];
/// let message = Message::request("GET", "https", "h", "/", &headers);
/// let verify = VerifyOptions { label: "account".to_owned(), required_components: vec!["@method".to_owned()], ..VerifyOptions::default() };
/// let verified = signature::verify_with(&message, None, SignatureKey::Account(&account), &verify, 1_700_000_005).unwrap();
/// assert_eq!(verified.components, ["@method"]);
/// ```
pub fn verify_with(
    message: &Message<'_>,
    body: Option<&[u8]>,
    key: SignatureKey<'_>,
    options: &VerifyOptions,
    now: i64,
) -> Result<Verified, SignatureError> {
    let parsed = parse(message, &options.label)?;
    if let Some(alg) = &parsed.alg {
        if alg != key.algorithm() {
            return Err(SignatureError::UnsupportedAlgorithm(alg.clone()));
        }
    }
    check_parsed(&parsed, options, now)?;
    let base = base_of(message, &parsed.items, &parsed.signature_params)?;
    match key {
        SignatureKey::Install(key) => verify_base(key, &base, &parsed.signature)?,
        SignatureKey::Account(key) => {
            let mut mac = key.mac()?;
            mac.update(base.as_bytes());
            // Constant-time comparison.
            mac.verify_slice(&parsed.signature)
                .map_err(|_| SignatureError::BadSignature)?;
        }
    }
    if parsed.items.iter().any(|c| c.name == "content-digest") {
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
pub(crate) fn check_parsed(
    parsed: &ParsedSignature,
    options: &VerifyOptions,
    now: i64,
) -> Result<(), SignatureError> {
    for required in &options.required_components {
        if !parsed.items.iter().any(|c| &c.name == required) {
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
///
/// ```
/// use attestgate_policy::signature::{verify_base, InstallKey, SignatureError};
/// use p256::ecdsa::{signature::Signer, Signature};
/// let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
/// let install = InstallKey::from_verifying_key(*key.verifying_key());
/// let base = "\"@method\": GET\n\"@signature-params\": (\"@method\")";
/// let signature: Signature = key.sign(base.as_bytes());
/// assert_eq!(verify_base(&install, base, &signature.to_bytes()), Ok(()));
/// assert_eq!(verify_base(&install, "tampered", &signature.to_bytes()), Err(SignatureError::BadSignature));
/// assert!(matches!(verify_base(&install, base, &[0; 63]), Err(SignatureError::MalformedSignature(_))));
/// ```
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
///
/// ```
/// use attestgate_policy::signature::{check_content_digest, content_digest, DigestAlgorithm, SignatureError};
/// let value = content_digest(b"hello", DigestAlgorithm::Sha512);
/// assert_eq!(check_content_digest(&value, b"hello"), Ok(()));
/// assert!(matches!(check_content_digest(&value, b"hullo"), Err(SignatureError::DigestMismatch(_))));
/// assert!(matches!(check_content_digest("md5=:AAAA:", b"hello"), Err(SignatureError::MalformedDigest(_))));
/// ```
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
///
/// ```
/// use attestgate_policy::signature::{content_digest, DigestAlgorithm};
/// assert!(content_digest(b"", DigestAlgorithm::Sha256).starts_with("sha-256=:"));
/// assert!(content_digest(b"", DigestAlgorithm::Sha512).starts_with("sha-512=:"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// `sha-256`
    Sha256,
    /// `sha-512`
    Sha512,
}

/// A `Content-Digest` value for a body, e.g. `sha-256=:…:`.
///
/// ```
/// use attestgate_policy::signature::{content_digest, DigestAlgorithm};
/// // RFC 9530 appendix B.1.
/// assert_eq!(
///     content_digest(b"{\"hello\": \"world\"}\n", DigestAlgorithm::Sha256),
///     "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:",
/// );
/// ```
pub fn content_digest(body: &[u8], algorithm: DigestAlgorithm) -> String {
    let (name, digest) = match algorithm {
        DigestAlgorithm::Sha256 => ("sha-256", Sha256::digest(body).to_vec()),
        DigestAlgorithm::Sha512 => ("sha-512", Sha512::digest(body).to_vec()),
    };
    format!("{name}=:{}:", Base64::encode_string(&digest))
}

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

impl SignatureConfig {
    /// What the verifier requires of the install signature.
    pub(crate) fn verify_options(&self) -> VerifyOptions {
        VerifyOptions {
            label: self.label.clone(),
            required_components: self.components.clone(),
            max_age_seconds: self.max_age_seconds,
            clock_skew_seconds: self.clock_skew_seconds,
            require_created: true,
        }
    }

    /// The labels whose signatures count.
    fn accepted_labels(&self) -> impl Iterator<Item = &str> {
        let accept = self.acceptance();
        [
            accept.covers_install().then_some(self.label.as_str()),
            accept
                .covers_account()
                .then_some(self.account_label.as_str()),
        ]
        .into_iter()
        .flatten()
    }

    /// Whether this request must be decided on its complete body: signatures are checked and
    /// an accepted signature it carries covers `content-digest`. Hosts ask it at the request
    /// headers; a request that covers no digest is decided there.
    pub(crate) fn body_needed(&self, request: &crate::Request) -> bool {
        if self.mode == SignatureMode::Off {
            return false;
        }
        let message = Message::from_request(request, &self.scheme);
        covers(&message, self.accepted_labels(), "content-digest")
    }

    /// Refuses configs that cannot work; `field` is the dotted path for the message.
    pub(crate) fn validate(&self, field: &str) -> Result<(), crate::ConfigError> {
        let invalid = |message: String| {
            Err(crate::ConfigError::Invalid {
                field: field.to_owned(),
                message,
            })
        };
        for label in [&self.label, &self.account_label] {
            if sfv::KeyRef::from_str(label).is_err() {
                return invalid(format!("label `{label}` is not a structured-field key"));
            }
        }
        if self.label == self.account_label {
            return invalid("`label` and `account_label` must differ".to_owned());
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
                crate::request::is_header_name(component)
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
        if !(1..=MAX_MAX_BODY_BYTES).contains(&self.max_body_bytes) {
            return invalid(format!(
                "max_body_bytes must be between 1 and {MAX_MAX_BODY_BYTES}"
            ));
        }
        match (&self.account_secret, self.acceptance().covers_account()) {
            (Some(secret), _) => {
                if let Err(err) = AccountKey::from_base64(secret) {
                    return invalid(format!("account_secret: {err}"));
                }
            }
            (None, true) => {
                return invalid(format!(
                    "accept `{}` needs an `account_secret`",
                    serde_json::to_value(self.acceptance())
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ))
            }
            (None, false) => {}
        }
        Ok(())
    }

    /// Checks a request's signatures against the verified token's claims: the gate's step.
    pub(crate) fn check(
        &self,
        request: &crate::Request,
        claims: &serde_json::Map<String, serde_json::Value>,
        now: i64,
    ) -> SignatureOutcome {
        let accept = self.acceptance();
        let message = Message::from_request(request, &self.scheme);
        let body = request.body.as_deref();
        let checked = self.mode != SignatureMode::Off;
        let install = if accept.covers_install() {
            let options = self.verify_options();
            MemberOutcome::of(&message, &options.label, checked, || {
                let key = match claims.get(&self.key_claim) {
                    None => return Err(SignatureError::NoKey(self.key_claim.clone())),
                    Some(serde_json::Value::String(ipk)) => InstallKey::from_base64_spki(ipk)?,
                    Some(_) => {
                        return Err(SignatureError::InvalidKey(format!(
                            "claim `{}` is not a string",
                            self.key_claim
                        )))
                    }
                };
                verify_with(&message, body, SignatureKey::Install(&key), &options, now)
            })
        } else {
            MemberOutcome::default()
        };
        let account = if accept.covers_account() {
            let options = VerifyOptions {
                label: self.account_label.clone(),
                ..self.verify_options()
            };
            MemberOutcome::of(&message, &options.label, checked, || {
                let key = AccountKey::from_base64(
                    self.account_secret
                        .as_deref()
                        .ok_or(SignatureError::NoAccountKey)?,
                )?;
                verify_with(&message, body, SignatureKey::Account(&key), &options, now)
            })
        } else {
            MemberOutcome::default()
        };
        let valid = match accept {
            Accept::Install => install.valid,
            Accept::Account => account.valid,
            Accept::Either => install.valid || account.valid,
            Accept::Both => install.valid && account.valid,
        };
        let components = if install.valid {
            install.components.clone()
        } else if valid {
            account.components.clone()
        } else {
            Vec::new()
        };
        let present_failure = [&install, &account]
            .into_iter()
            .filter(|m| m.present)
            .find_map(|m| m.error.clone());
        let neither = !install.present && !account.present;
        let error = match (checked && !valid, present_failure) {
            (_, Some(error)) => Some(error),
            // Name every label that would have done.
            (true, None) if neither && accept == Accept::Either => Some(SignatureError::Missing(
                format!("{}` or `{}", self.label, self.account_label),
            )),
            (true, None) => [&install, &account]
                .into_iter()
                .find_map(|m| m.error.clone()),
            (false, None) => None,
        };
        SignatureOutcome {
            present: install.present || account.present,
            valid: checked && valid,
            components,
            error,
            install,
            account,
        }
    }
}

/// What the gate learned about one accepted signature (`install` or `account`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MemberOutcome {
    /// Signatures under this label count on the route.
    pub(crate) accepted: bool,
    /// The request carries one under the label (well-formed or not).
    pub(crate) present: bool,
    /// It verified.
    pub(crate) valid: bool,
    /// The components it covers, when valid.
    pub(crate) components: Vec<String>,
    /// Why it did not verify, when checked.
    pub(crate) error: Option<SignatureError>,
}

impl MemberOutcome {
    fn of(
        message: &Message<'_>,
        label: &str,
        checked: bool,
        verify: impl FnOnce() -> Result<Verified, SignatureError>,
    ) -> MemberOutcome {
        let present = !matches!(parse(message, label), Err(SignatureError::Missing(_)));
        let mut outcome = MemberOutcome {
            accepted: true,
            present,
            ..MemberOutcome::default()
        };
        if !checked {
            return outcome;
        }
        match verify() {
            Ok(verified) => {
                outcome.valid = true;
                outcome.components = verified.components;
            }
            Err(error) => outcome.error = Some(error),
        }
        outcome
    }

    /// Present and refused: this alone denies the request, whatever else verified (a token
    /// without `ipk` is a fail-over token: not a failure in `optional` mode).
    fn failed(&self, mode: SignatureMode) -> bool {
        self.present
            && match &self.error {
                None => false,
                Some(SignatureError::NoKey(_)) => mode == SignatureMode::Required,
                Some(_) => true,
            }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "present": self.present,
            "valid": self.valid,
            "components": self.components,
            "error": self.error.as_ref().map(ToString::to_string),
        })
    }
}

/// What the gate learned about a request's signatures; `input.signature` for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignatureOutcome {
    /// The request carries an accepted signature (well-formed or not).
    pub(crate) present: bool,
    /// The accepted signatures verified as the route requires (`accept`).
    pub(crate) valid: bool,
    /// The components the verified signature covers (the install one's when both did).
    pub(crate) components: Vec<String>,
    /// Why a signature did not verify, when checked.
    pub(crate) error: Option<SignatureError>,
    /// The install signature.
    pub(crate) install: MemberOutcome,
    /// The account signature.
    pub(crate) account: MemberOutcome,
}

impl SignatureOutcome {
    /// The decision reason when this outcome refuses the request under `mode`, if it does.
    pub(crate) fn denial(&self, mode: SignatureMode) -> Option<crate::Reason> {
        if mode == SignatureMode::Off {
            return None;
        }
        if self.install.failed(mode) || self.account.failed(mode) {
            return Some(crate::Reason::RequestSignatureInvalid);
        }
        match mode {
            SignatureMode::Required if !self.valid => Some(crate::Reason::RequestSignatureMissing),
            _ => None,
        }
    }

    /// `input.signature`: `{present, valid, components, error, install, account}`, the last
    /// two each `{present, valid, components, error}`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut outcome = serde_json::json!({
            "present": self.present,
            "valid": self.valid,
            "components": self.components,
            "error": self.error.as_ref().map(ToString::to_string),
        });
        // Inserted, not interpolated: `json!` would serialize each member's value into a copy.
        if let Some(members) = outcome.as_object_mut() {
            members.insert("install".to_owned(), self.install.to_json());
            members.insert("account".to_owned(), self.account.to_json());
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn covers_looks_only_under_the_given_labels() {
        let headers = vec![(
            "Signature-Input".to_owned(),
            r#"install=("@method");created=1, account=("@method" "content-digest");created=1"#
                .to_owned(),
        )];
        let message = Message::request("POST", "https", "h", "/", &headers);
        assert!(!covers(&message, ["install"], "content-digest"));
        assert!(covers(&message, ["install", "account"], "content-digest"));
        assert!(!covers(
            &Message::request("POST", "https", "h", "/", &[]),
            ["install"],
            "@method"
        ));
    }
}
