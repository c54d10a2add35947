//! The policy's `input` document, built only when something needs it whole.
//!
//! A policy-memo hit on a policy that reads only the token's claims (the default policy reads
//! `input.token.claims.att`) is keyed on the claims alone, so the document (request facts,
//! headers, the signature outcome) is never built for it: on a fresh token with a known
//! attestation that was a sixth of the check.

use serde_json::{Map, Value};

use crate::binding::BindingOutcome;
use crate::keys::Algorithm;
use crate::request::Request;
use crate::signature::SignatureOutcome;

/// What `input` is made of, and the document once built. The claims move into the document
/// and back out ([`PolicyInput::into_claims`]): no copy of them per request.
pub(crate) struct PolicyInput<'r> {
    parts: Parts<'r>,
    state: State,
}

/// Everything but the claims.
pub(crate) struct Parts<'r> {
    pub(crate) request: &'r Request,
    /// The token header's name: the one header `input.request.headers` leaves out.
    pub(crate) token_header: &'r str,
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    pub(crate) binding: BindingOutcome,
    pub(crate) device: Option<String>,
    pub(crate) now: i64,
    /// The matched rule's name.
    pub(crate) rule: Option<&'r str>,
    pub(crate) signature: &'r SignatureOutcome,
}

enum State {
    Claims(Map<String, Value>),
    Document(Value),
}

impl<'r> PolicyInput<'r> {
    pub(crate) fn new(parts: Parts<'r>, claims: Map<String, Value>) -> PolicyInput<'r> {
        PolicyInput {
            parts,
            state: State::Claims(claims),
        }
    }

    /// The token's claims while the document is not built yet.
    pub(crate) fn unbuilt_claims(&self) -> Option<&Map<String, Value>> {
        match &self.state {
            State::Claims(claims) => Some(claims),
            State::Document(_) => None,
        }
    }

    /// The whole document, built on first use.
    pub(crate) fn document(&mut self) -> &Value {
        if let State::Claims(claims) = &mut self.state {
            let claims = std::mem::take(claims);
            let mut document = policy_input_document(&self.parts, claims);
            if let Some(members) = document.as_object_mut() {
                members.insert("signature".to_owned(), self.parts.signature.to_json());
            }
            self.state = State::Document(document);
        }
        match &self.state {
            State::Document(document) => document,
            // Built just above.
            State::Claims(_) => &Value::Null,
        }
    }

    /// The claims back, from wherever they are.
    pub(crate) fn into_claims(self) -> Map<String, Value> {
        match self.state {
            State::Claims(claims) => claims,
            State::Document(mut document) => match document.pointer_mut("/token/claims") {
                Some(Value::Object(claims)) => std::mem::take(claims),
                _ => Map::new(),
            },
        }
    }
}

/// `input` without `signature` (docs/claims.md, "The Rego input document"): the token's header and
/// claims, the request facts with its headers (lowercased, repeats joined by commas, the token
/// header left out), binding, device, clock and rule.
fn policy_input_document(parts: &Parts<'_>, claims: Map<String, Value>) -> Value {
    let request = parts.request;
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case(parts.token_header) {
            continue;
        }
        let name = name.to_ascii_lowercase();
        match headers.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(value);
            }
            _ => {
                headers.insert(name, Value::String(value.clone()));
            }
        }
    }
    // Built member by member: `json!` would serialize the claims and headers into copies
    // (`to_value`) where they can be moved.
    let object = |members: Vec<(&str, Value)>| {
        Value::Object(
            members
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        )
    };
    let text = |value: &Option<String>| value.clone().map_or(Value::Null, Value::String);
    object(vec![
        (
            "token",
            object(vec![
                (
                    "header",
                    object(vec![
                        ("alg", Value::from(parts.alg.name())),
                        ("kid", text(&parts.kid)),
                        ("typ", text(&parts.typ)),
                    ]),
                ),
                ("claims", Value::Object(claims)),
            ]),
        ),
        (
            "request",
            object(vec![
                ("method", Value::from(request.method.as_str())),
                ("path", Value::from(request.path.as_str())),
                ("host", Value::from(request.host.as_str())),
                ("headers", Value::Object(headers)),
                ("source_ip", text(&request.source_ip)),
            ]),
        ),
        // Two booleans: serializing them costs nothing worth a second spelling of their names.
        (
            "binding",
            serde_json::to_value(parts.binding).unwrap_or_default(),
        ),
        // Listed devices are refused before the policy runs; the id is there for rules.
        (
            "device",
            object(vec![
                ("id", text(&parts.device)),
                ("listed", Value::Bool(false)),
            ]),
        ),
        ("now", Value::from(parts.now)),
        ("rule", parts.rule.map_or(Value::Null, Value::from)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned() -> SignatureOutcome {
        SignatureOutcome::default()
    }

    /// The input document, built member by member, is the document `json!` spells out.
    #[test]
    fn the_document_has_the_documented_shape() {
        let claims = serde_json::json!({"did": "d1", "att": {"app": {"id": "x"}}, "exp": 5});
        let Value::Object(claims) = claims.clone() else {
            unreachable!()
        };
        let request = Request::new("POST", "/pay?x=1")
            .with_host("api.example.com")
            .with_header("Approov-Token", "t")
            .with_header("Accept", "a")
            .with_header("accept", "b")
            .with_source_ip("203.0.113.7");
        let signature = unsigned();
        let parts = Parts {
            request: &request,
            token_header: "approov-token",
            alg: Algorithm::Hs256,
            kid: Some("k1".into()),
            typ: None,
            binding: BindingOutcome {
                checked: true,
                valid: false,
            },
            device: Some("d1".into()),
            now: 1_700_000_000,
            rule: Some("payments"),
            signature: &signature,
        };
        let mut input = PolicyInput::new(parts, claims.clone());
        assert_eq!(input.unbuilt_claims(), Some(&claims));
        let expected = serde_json::json!({
            "token": {
                "header": { "alg": "HS256", "kid": "k1", "typ": null },
                "claims": claims,
            },
            "request": {
                "method": "POST",
                "path": "/pay?x=1",
                "host": "api.example.com",
                "headers": { "accept": "a,b" },
                "source_ip": "203.0.113.7",
            },
            "binding": { "checked": true, "valid": false },
            "device": { "id": "d1", "listed": false },
            "now": 1_700_000_000,
            "rule": "payments",
            "signature": signature.to_json(),
        });
        assert_eq!(input.document(), &expected);
        assert_eq!(input.unbuilt_claims(), None);
        assert_eq!(input.into_claims(), claims);
    }

    #[test]
    fn absent_parts_are_null_and_unbuilt_claims_come_back_as_they_were() {
        let request = Request::new("GET", "/");
        let signature = unsigned();
        let parts = || Parts {
            request: &request,
            token_header: "approov-token",
            alg: Algorithm::Es256,
            kid: None,
            typ: Some("JWT".into()),
            binding: BindingOutcome::default(),
            device: None,
            now: 0,
            rule: None,
            signature: &signature,
        };
        let mut bare = PolicyInput::new(parts(), Map::new());
        let document = bare.document().clone();
        assert_eq!(
            document["token"]["header"],
            serde_json::json!({"alg": "ES256", "kid": null, "typ": "JWT"})
        );
        assert_eq!(document["request"]["source_ip"], Value::Null);
        assert_eq!(document["device"]["id"], Value::Null);
        assert_eq!(document["rule"], Value::Null);

        let mut claims = Map::new();
        claims.insert("did".into(), Value::from("d2"));
        let unbuilt = PolicyInput::new(parts(), claims.clone());
        assert_eq!(unbuilt.into_claims(), claims);
    }
}
