//! The Worker's WebCrypto as the gate's host verifier. WebCrypto answers asynchronously and
//! the gate decides synchronously, so the host checks first and the gate asks after: a
//! [`Answers`] table holds the host's verdicts for one call. A check the table does not hold
//! is written down for the host and answered "invalid" for now, which ends that decision
//! before anything a forged signature would protect is read (the claims of a token, the body
//! a signature covers); the host checks what was written down and decides again with the
//! verdicts ([`crate::Gate::plan`], at most three rounds: the token's, the request's, and the
//! last). A verdict the host could not give (`null`) is left to the built-in verifier.
//!
//! The probe works the same way: the host first checks [`known_answer_checks`] itself and
//! hands over the verdicts; the core's probe then reads them from the table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use attestgate_policy::verifier::{HostCheck, HostVerifier, Scheme, SignatureCheck};
use base64ct::{Base64, Encoding};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A bound on what one decision may ask: a JWS is tried against each matching key, and
/// there is one request signature.
const MAX_ASKED: usize = 16;

/// The host's verdicts for the decision at hand, and what the gate asked that they lack.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    known: HashMap<SignatureCheck, Option<bool>>,
    asked: Vec<SignatureCheck>,
}

/// The gate's side of the table.
#[derive(Debug, Clone, Default)]
pub(crate) struct WebCrypto(pub(crate) Arc<Mutex<Answers>>);

impl HostVerifier for WebCrypto {
    fn verify(&self, check: &HostCheck<'_>) -> Option<bool> {
        let mut answers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let owned = SignatureCheck::of(check);
        if let Some(verdict) = answers.known.get(&owned) {
            return *verdict;
        }
        if answers.asked.len() < MAX_ASKED && !answers.asked.contains(&owned) {
            answers.asked.push(owned);
        }
        Some(false)
    }
}

impl WebCrypto {
    /// Runs `decide` with `verdicts` in the table; returns its result and what it asked that
    /// the verdicts lack.
    pub(crate) fn with_verdicts<T>(
        &self,
        verdicts: HashMap<SignatureCheck, Option<bool>>,
        decide: impl FnOnce() -> T,
    ) -> (T, Vec<SignatureCheck>) {
        {
            let mut answers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            answers.known = verdicts;
            answers.asked.clear();
        }
        let result = decide();
        let mut answers = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        answers.known.clear();
        (result, std::mem::take(&mut answers.asked))
    }
}

/// A check as JavaScript sees it: `{scheme, public_key, signature, message}`, the bytes in
/// base64; a verdict adds `valid` (`true`, `false`, or `null` when the host could not check).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckJson {
    scheme: String,
    public_key: String,
    signature: String,
    message: String,
    #[serde(default, skip_serializing)]
    valid: Option<bool>,
}

impl CheckJson {
    pub(crate) fn of(check: &SignatureCheck) -> CheckJson {
        CheckJson {
            scheme: check.scheme.name().to_owned(),
            public_key: Base64::encode_string(&check.public_key),
            signature: Base64::encode_string(&check.signature),
            message: Base64::encode_string(&check.message),
            valid: None,
        }
    }
}

/// The checks of `checks`, as JSON for the host.
pub(crate) fn checks_json(checks: &[SignatureCheck]) -> Value {
    Value::Array(
        checks
            .iter()
            .map(|check| serde_json::to_value(CheckJson::of(check)).unwrap_or(Value::Null))
            .collect(),
    )
}

/// Parses the host's verdicts: a list of checks with `valid`; `null` or absent is none.
pub(crate) fn verdicts(value: Value) -> Result<HashMap<SignatureCheck, Option<bool>>, String> {
    if value.is_null() {
        return Ok(HashMap::new());
    }
    let list: Vec<CheckJson> =
        serde_json::from_value(value).map_err(|err| format!("invalid verdicts: {err}"))?;
    let bytes = |what: &str, text: &str| {
        Base64::decode_vec(text).map_err(|_| format!("invalid verdicts: {what} is not base64"))
    };
    list.into_iter()
        .map(|v| {
            let scheme = Scheme::from_name(&v.scheme)
                .ok_or_else(|| format!("invalid verdicts: unknown scheme `{}`", v.scheme))?;
            let check = SignatureCheck {
                scheme,
                public_key: bytes("public_key", &v.public_key)?,
                signature: bytes("signature", &v.signature)?,
                message: bytes("message", &v.message)?,
            };
            Ok((check, v.valid))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use attestgate_policy::verifier::{known_answer_checks, BuiltInVerifier};

    #[test]
    fn a_check_the_table_lacks_is_written_down_and_refused_for_now() {
        let table = WebCrypto::default();
        let check = &known_answer_checks()[0];
        let (verdict, asked) = table.with_verdicts(HashMap::new(), || table.verify(&check.check()));
        assert_eq!((verdict, asked), (Some(false), vec![check.clone()]));
        let known = HashMap::from([(check.clone(), Some(true))]);
        let (verdict, asked) = table.with_verdicts(known, || table.verify(&check.check()));
        assert_eq!((verdict, asked.len()), (Some(true), 0));
        let unknown = HashMap::from([(check.clone(), None)]);
        let (verdict, _) = table.with_verdicts(unknown, || table.verify(&check.check()));
        assert_eq!(verdict, None, "left to the built-in verifier");
    }

    #[test]
    fn verdicts_round_trip_through_json() {
        let checks = known_answer_checks();
        let mut json = checks_json(&checks);
        for (entry, check) in json.as_array_mut().unwrap().iter_mut().zip(&checks) {
            entry["valid"] = BuiltInVerifier.verify(&check.check()).into();
        }
        let parsed = verdicts(json).unwrap();
        assert_eq!(parsed.len(), checks.len());
        for check in &checks {
            assert_eq!(parsed[check], BuiltInVerifier.verify(&check.check()));
        }
        assert!(verdicts(serde_json::json!([{"scheme": "PS256", "public_key": "", "signature": "", "message": ""}])).is_err());
    }
}
