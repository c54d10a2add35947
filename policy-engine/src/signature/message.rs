//! The message a signature is checked against, its covered components (RFC 9421 §2.1, §2.2)
//! and the signature base built from them (§2.5).

use base64ct::{Base64, Encoding};
use sfv::{Dictionary, FieldType, Item, List, Parser};

use super::SignatureError;

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
    pub(super) fn field(&self, name: &str) -> Option<String> {
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
pub(super) struct Component {
    pub(super) name: String,
    sf: bool,
    bs: bool,
    key: Option<String>,
    query_name: Option<String>,
    /// The identifier as the signature base writes it: `"name";params`.
    pub(super) identifier: String,
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
    pub(super) fn from_item(item: &Item) -> Result<Component, SignatureError> {
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
    pub(super) fn label(&self) -> String {
        if self.identifier.len() == self.name.len() + 2 {
            self.name.clone()
        } else {
            self.identifier.clone()
        }
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

pub(super) fn base_of(
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
