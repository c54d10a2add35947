//! Reading `Signature-Input` and `Signature`: one labelled signature, its covered components
//! and its parameters. Nothing is verified here.

use base64ct::{Base64, Encoding};
use sfv::{Dictionary, FieldType, InnerList, Item, List, ListEntry, Parser};

use super::message::Component;
use super::{Message, SignatureError};

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
    pub(super) items: Vec<Component>,
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

pub(super) fn components(inner: &InnerList) -> Result<Vec<Component>, SignatureError> {
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
pub(super) fn signature_bytes(entry: &ListEntry) -> Result<Vec<u8>, SignatureError> {
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
