//! Decision logs (`log_decisions`, `decision_log`): which decisions a host logs, and the line
//! it writes, with the masked fields removed. One function for every host that logs (the
//! proxy-wasm filter, the CLI), so a sample and a mask mean the same everywhere.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{Config, DecisionLogConfig};
use crate::decision::Decision;

/// Most mask entries, and the longest one.
const MAX_MASK: usize = 64;
const MAX_MASK_PATH_BYTES: usize = 128;

/// Checks a `decision_log` block: `(field, message)` for the first problem.
pub(crate) fn validate(log: &DecisionLogConfig, logging: bool) -> Result<(), (String, String)> {
    let invalid = |field: &str, message: String| Err((field.to_owned(), message));
    if !logging {
        return invalid(
            "decision_log",
            "it only applies with `log_decisions: true`; set that, or leave it out".to_owned(),
        );
    }
    if !(log.sample_rate > 0.0 && log.sample_rate <= 1.0) {
        return invalid(
            "decision_log.sample_rate",
            format!("must be above 0 and at most 1, not {}", log.sample_rate),
        );
    }
    if log.mask.len() > MAX_MASK {
        return invalid(
            "decision_log.mask",
            format!("at most {MAX_MASK} paths, not {}", log.mask.len()),
        );
    }
    for path in &log.mask {
        let well_formed = !path.is_empty()
            && path.len() <= MAX_MASK_PATH_BYTES
            && path.split('.').all(|segment| !segment.is_empty());
        if !well_formed {
            return invalid(
                "decision_log.mask",
                format!(
                    "{path:?} is not a dot path into the decision (such as `claims.did`, at most \
                     {MAX_MASK_PATH_BYTES} bytes)"
                ),
            );
        }
    }
    Ok(())
}

/// Whether a request whose sample key is `key` is in a sample of `rate`: the first 8 bytes of
/// SHA-256(key) against `rate` of their range, so the same key is always in or out.
fn sampled(rate: f64, key: &str) -> bool {
    if rate >= 1.0 {
        return true;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    #[allow(clippy::cast_precision_loss)] // a share: 2^-53 of precision is plenty
    let share = u64::from_be_bytes(first) as f64 / u64::MAX as f64;
    share < rate
}

/// Removes the value at the dot path `path` from `value`; whether there was one.
fn erase(value: &mut Value, path: &str) -> bool {
    let mut segments = path.split('.').peekable();
    let mut at = value;
    while let Some(segment) = segments.next() {
        let Some(object) = at.as_object_mut() else {
            return false;
        };
        if segments.peek().is_none() {
            return object.remove(segment).is_some();
        }
        match object.get_mut(segment) {
            Some(next) => at = next,
            None => return false,
        }
    }
    false
}

/// The decision-log line of `decision` under `config`, or `None` when the config does not log
/// decisions or this request is not in the sample. `sample_key` is the request's id where the
/// host has one (Envoy's `x-request-id`), else anything that differs per request. The line is
/// the decision's JSON without the masked fields, with `"erased": [paths]` naming those that
/// were there.
///
/// ```
/// use attestgate_policy::plan::decision_log_line;
/// use attestgate_policy::{Gate, Request};
/// let gate = Gate::from_json(r#"{ "keys": { "approov_secret":
///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" }, "log_decisions": true,
///     "decision_log": { "mask": ["reasons"] } }"#).unwrap();
/// let decision = gate.check(&Request::new("GET", "/"), 1_700_000_000);
/// let line = decision_log_line(gate.config(), &decision, "request-1").unwrap();
/// let logged: serde_json::Value = serde_json::from_str(&line).unwrap();
/// assert_eq!(logged["reason"], "token_missing");
/// assert!(logged.get("reasons").is_none());
/// assert_eq!(logged["erased"], serde_json::json!(["reasons"]));
/// ```
pub fn decision_log_line(config: &Config, decision: &Decision, sample_key: &str) -> Option<String> {
    if !config.log_decisions {
        return None;
    }
    let Some(log) = &config.decision_log else {
        return serde_json::to_string(decision).ok();
    };
    if !sampled(log.sample_rate, sample_key) {
        return None;
    }
    let mut value = serde_json::to_value(decision).ok()?;
    let erased: Vec<&str> = log
        .mask
        .iter()
        .map(String::as_str)
        .filter(|path| erase(&mut value, path))
        .collect();
    if !erased.is_empty() {
        if let Some(object) = value.as_object_mut() {
            object.insert("erased".to_owned(), Value::from(erased));
        }
    }
    serde_json::to_string(&value).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::{Gate, Request};
    use attestgate_testkit::SigningKey;

    const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

    fn gate(log: &str) -> Gate {
        Gate::from_json(&format!(
            r#"{{"keys":{{"approov_secret":"{SECRET}"}},"log_decisions":true{log},
                "claim_to_headers":[{{"claim":"did","header":"x-device-id"}}]}}"#
        ))
        .unwrap()
    }

    fn signed() -> (String, Request) {
        let claims = serde_json::json!({"exp": 1_700_000_300, "did": "device-1",
                                        "att": {"device": {"platform": "android"}}});
        let token = SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap();
        let request = Request::new("GET", "/").with_header("approov-token", token.clone());
        (token, request)
    }

    #[test]
    fn masked_fields_are_never_written_and_the_token_never_is() {
        let gate = gate(r#","decision_log":{"mask":["claims.did","headers","claims.nope"]}"#);
        let (token, request) = signed();
        let decision = gate.check(&request, 1_700_000_000);
        assert!(decision.allow);
        let line = decision_log_line(gate.config(), &decision, "r").unwrap();
        assert!(!line.contains("device-1"), "{line}");
        assert!(!line.contains(&token) && !line.contains(token.rsplit('.').next().unwrap()));
        let logged: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(logged["claims"]["att"]["device"]["platform"], "android");
        assert_eq!(
            logged["erased"],
            serde_json::json!(["claims.did", "headers"])
        );
        // Without a mask the same decision names the device: the mask is what removed it.
        let plain = decision_log_line(gate_plain().config(), &decision, "r").unwrap();
        assert!(plain.contains("device-1"));
    }

    fn gate_plain() -> Gate {
        gate("")
    }

    #[test]
    fn a_sample_keeps_about_its_share_and_always_the_same_requests() {
        let gate = gate(r#","decision_log":{"sample_rate":0.25}"#);
        let decision = gate.check(&Request::new("GET", "/"), 0);
        let logged = (0..4000)
            .filter(|i| decision_log_line(gate.config(), &decision, &format!("req-{i}")).is_some())
            .count();
        assert!((850..1150).contains(&logged), "{logged} of 4000 at 0.25");
        for i in 0..50 {
            let key = format!("req-{i}");
            let first = decision_log_line(gate.config(), &decision, &key).is_some();
            assert_eq!(
                first,
                decision_log_line(gate.config(), &decision, &key).is_some()
            );
        }
        let off =
            Gate::from_json(&format!(r#"{{"keys":{{"approov_secret":"{SECRET}"}}}}"#)).unwrap();
        assert_eq!(decision_log_line(off.config(), &decision, "r"), None);
    }

    #[test]
    fn bad_blocks_are_refused_naming_the_field() {
        for (log, field) in [
            (
                r#","decision_log":{"sample_rate":0}"#,
                "decision_log.sample_rate",
            ),
            (
                r#","decision_log":{"sample_rate":1.5}"#,
                "decision_log.sample_rate",
            ),
            (
                r#","decision_log":{"mask":["claims..did"]}"#,
                "decision_log.mask",
            ),
            (r#","decision_log":{"mask":[""]}"#, "decision_log.mask"),
        ] {
            let error = Gate::from_json(&format!(
                r#"{{"keys":{{"approov_secret":"{SECRET}"}},"log_decisions":true{log}}}"#
            ))
            .unwrap_err();
            assert!(error.to_string().contains(&format!("`{field}`")), "{error}");
        }
        let without = Gate::from_json(&format!(
            r#"{{"keys":{{"approov_secret":"{SECRET}"}},"decision_log":{{}}}}"#
        ))
        .unwrap_err();
        assert!(
            without.to_string().contains("log_decisions: true"),
            "{without}"
        );
    }
}
