//! The decision record: what a host writes about each decision where its operators already
//! look (Envoy's filter state and access log, NGINX's log variables, Kong's serialized log, the
//! Worker's log line), and what `attestgate report` reads back. One flat set of fields, the
//! same in every host, made here from the decision.
//!
//! The device id, platform and app version come only from the token's *verified* claims (`did`,
//! `att.device.platform`, `att.app.version`, as Approov's tokens carry them): a client cannot
//! put them into the record with a header. Every value is bounded, so a token cannot make a log
//! line grow without limit.
//!
//! ```
//! use attestgate_policy::record::DecisionRecord;
//! use attestgate_policy::{CacheOutcome, Gate, Request};
//! let gate = Gate::from_json(r#"{ "mode": "monitor", "keys": { "approov_secret":
//!     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" } }"#).unwrap();
//! let decision = gate.check(&Request::new("GET", "/v1/shapes"), 1_700_000_000);
//! let record = DecisionRecord::of(&decision, CacheOutcome::Uncached);
//! assert_eq!((record.verdict, record.allowed, record.reason), ("deny", true, "token_missing"));
//! assert_eq!(record.device, None);
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::CacheOutcome;
use crate::config::RecordField;
use crate::decision::{Decision, Verdict};

/// Most policy reasons a record keeps; more are counted in `policy_reasons_dropped`.
pub const MAX_POLICY_REASONS: usize = 16;
/// Most bytes of any text value in a record (longer ones are cut at a character boundary).
pub const MAX_VALUE_BYTES: usize = 128;

/// One decision, as hosts log it. Serialized as a flat JSON object with these field names
/// (absent values as `null`); [`DecisionRecord::FIELDS`] lists them in order.
///
/// ```
/// use attestgate_policy::record::DecisionRecord;
/// let line = r#"{"verdict":"deny","allowed":true,"mode":"monitor","status":200,
///   "reason":"policy_denied","policy_reasons":["rooted"],"policy_reasons_dropped":0,
///   "rule":null,"device":"d1","platform":"android","app_version":"2.3.0","cache":"miss"}"#;
/// let record: DecisionRecord<String> = serde_json::from_str(line).unwrap();
/// assert_eq!(record.policy_reasons, ["rooted"]);
/// assert!(record.would_deny());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord<S = &'static str> {
    /// `allow` or `deny`: the gate's decision before monitor mode.
    pub verdict: S,
    /// Whether the request went on (a monitored denial did).
    pub allowed: bool,
    /// `enforce`, `monitor` or `bypass`: the mode that applied.
    pub mode: S,
    /// The HTTP status: 200 when allowed, else the denial's.
    pub status: u16,
    /// The gate's reason code (`allowed`, `token_expired`, `policy_denied`, ...).
    pub reason: S,
    /// The policy's reasons for a policy denial, at most [`MAX_POLICY_REASONS`].
    pub policy_reasons: Vec<String>,
    /// How many more policy reasons there were.
    pub policy_reasons_dropped: usize,
    /// The matched rule's name.
    pub rule: Option<String>,
    /// The verified device id (`did`).
    pub device: Option<String>,
    /// The verified platform (`att.device.platform`).
    pub platform: Option<String>,
    /// The verified app version (`att.app.version`).
    pub app_version: Option<String>,
    /// `hit` or `miss` when the decision cache was asked, else absent.
    pub cache: Option<S>,
}

impl<S> DecisionRecord<S> {
    /// The field names, in the order hosts write them (NGINX's variables are these with
    /// `attestgate_` before them).
    pub const FIELDS: [&'static str; 12] = {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = RecordField::ALL;
        [
            a.as_str(),
            b.as_str(),
            c.as_str(),
            d.as_str(),
            e.as_str(),
            f.as_str(),
            g.as_str(),
            h.as_str(),
            i.as_str(),
            j.as_str(),
            k.as_str(),
            l.as_str(),
        ]
    };
}

impl DecisionRecord<&'static str> {
    /// The record of `decision`, decided with the cache outcome `cache`.
    ///
    /// ```
    /// use attestgate_policy::record::DecisionRecord;
    /// use attestgate_policy::{CacheOutcome, Gate, Request};
    /// use attestgate_testkit::SigningKey;
    /// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    /// let gate = Gate::from_json(&format!(r#"{{ "keys": {{ "approov_secret": "{secret}" }} }}"#)).unwrap();
    /// let claims = serde_json::json!({ "exp": 1_700_000_300, "did": "device-1",
    ///     "att": { "device": { "platform": "ios" }, "app": { "version": "2.4.1" } } });
    /// let token = SigningKey::hs256_from_base64_secret(secret).unwrap()
    ///     .sign(claims.as_object().unwrap()).unwrap();
    /// let request = Request::new("GET", "/").with_header("approov-token", token);
    /// let record = DecisionRecord::of(&gate.check(&request, 1_700_000_000), CacheOutcome::Miss);
    /// assert_eq!(record.device.as_deref(), Some("device-1"));
    /// assert_eq!((record.platform.as_deref(), record.app_version.as_deref()), (Some("ios"), Some("2.4.1")));
    /// assert_eq!(record.cache, Some("miss"));
    /// ```
    pub fn of(decision: &Decision, cache: CacheOutcome) -> DecisionRecord {
        let claims = decision.claims.as_deref();
        let claim = |path: &[&str]| -> Option<String> {
            let (first, rest) = path.split_first()?;
            let mut value = claims?.get(*first)?;
            for key in rest {
                value = value.get(key)?;
            }
            text(value)
        };
        let policy_reasons = if decision.reason == crate::Reason::PolicyDenied {
            decision.reasons.as_slice()
        } else {
            &[]
        };
        DecisionRecord {
            verdict: match decision.verdict {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny",
            },
            allowed: decision.allow,
            mode: decision.mode.as_str(),
            status: decision.status,
            reason: decision.reason.as_str(),
            policy_reasons: policy_reasons
                .iter()
                .take(MAX_POLICY_REASONS)
                .map(|reason| bounded(reason))
                .collect(),
            policy_reasons_dropped: policy_reasons.len().saturating_sub(MAX_POLICY_REASONS),
            rule: decision.rule.as_deref().map(bounded),
            device: claim(&["did"]),
            platform: claim(&["att", "device", "platform"]),
            app_version: claim(&["att", "app", "version"]),
            cache: match cache {
                CacheOutcome::Hit => Some("hit"),
                CacheOutcome::Miss => Some("miss"),
                CacheOutcome::Uncached => None,
            },
        }
    }
}

impl<S: AsRef<str>> DecisionRecord<S> {
    /// Whether enforcing would have refused it: the verdict was `deny` (whether or not monitor
    /// mode let it through).
    ///
    /// ```
    /// use attestgate_policy::record::DecisionRecord;
    /// use attestgate_policy::{CacheOutcome, Gate, Request};
    /// let gate = Gate::from_json(r#"{ "keys": { "approov_secret":
    ///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" } }"#).unwrap();
    /// let denied = gate.check(&Request::new("GET", "/"), 0);
    /// assert!(DecisionRecord::of(&denied, CacheOutcome::Uncached).would_deny());
    /// ```
    pub fn would_deny(&self) -> bool {
        self.verdict.as_ref() == "deny"
    }

    /// The fields as text, in [`Self::FIELDS`]' order, for hosts whose log fields are strings
    /// (NGINX variables, Envoy filter state): absent values are `""`, booleans `true`/`false`,
    /// `policy_reasons` joined with `,`.
    ///
    /// ```
    /// use attestgate_policy::record::DecisionRecord;
    /// use attestgate_policy::{CacheOutcome, Gate, Request};
    /// let gate = Gate::from_json(r#"{ "keys": { "approov_secret":
    ///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" } }"#).unwrap();
    /// let record = DecisionRecord::of(&gate.check(&Request::new("GET", "/"), 0), CacheOutcome::Uncached);
    /// let pairs = record.text_fields();
    /// assert_eq!(pairs[0], ("verdict", "deny".to_owned()));
    /// assert_eq!(pairs[4], ("reason", "token_missing".to_owned()));
    /// assert_eq!(pairs[8], ("device", String::new()));
    /// ```
    pub fn text_fields(&self) -> [(&'static str, String); 12] {
        RecordField::ALL.map(|field| (field.as_str(), self.text_field(field)))
    }

    /// One field as text, as [`Self::text_fields`] gives it.
    ///
    /// ```
    /// use attestgate_policy::record::DecisionRecord;
    /// use attestgate_policy::{CacheOutcome, Gate, RecordField, Request};
    /// let gate = Gate::from_json(r#"{ "keys": { "approov_secret":
    ///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" } }"#).unwrap();
    /// let record = DecisionRecord::of(&gate.check(&Request::new("GET", "/"), 0), CacheOutcome::Uncached);
    /// assert_eq!(record.text_field(RecordField::Status), "401");
    /// assert_eq!(record.text_field(RecordField::Cache), "");
    /// ```
    pub fn text_field(&self, field: RecordField) -> String {
        let or_empty = |value: &Option<String>| value.clone().unwrap_or_default();
        match field {
            RecordField::Verdict => self.verdict.as_ref().to_owned(),
            RecordField::Allowed => self.allowed.to_string(),
            RecordField::Mode => self.mode.as_ref().to_owned(),
            RecordField::Status => self.status.to_string(),
            RecordField::Reason => self.reason.as_ref().to_owned(),
            RecordField::PolicyReasons => self.policy_reasons.join(","),
            RecordField::PolicyReasonsDropped => self.policy_reasons_dropped.to_string(),
            RecordField::Rule => or_empty(&self.rule),
            RecordField::Device => or_empty(&self.device),
            RecordField::Platform => or_empty(&self.platform),
            RecordField::AppVersion => or_empty(&self.app_version),
            RecordField::Cache => self
                .cache
                .as_ref()
                .map(|c| c.as_ref().to_owned())
                .unwrap_or_default(),
        }
    }
}

/// A claim as record text: a string as it is, a number as JSON writes it, anything else none.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(bounded(s)),
        Value::Number(n) => Some(bounded(&n.to_string())),
        _ => None,
    }
}

/// `value` cut to at most [`MAX_VALUE_BYTES`], at a character boundary.
fn bounded(value: &str) -> String {
    if value.len() <= MAX_VALUE_BYTES {
        return value.to_owned();
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default().to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::{Mode, Reason};

    fn denied(reasons: Vec<String>) -> Decision {
        let mut decision = Decision::allowed(Mode::Monitor, Reason::PolicyDenied);
        decision.verdict = Verdict::Deny;
        decision.reasons = reasons;
        decision.claims = serde_json::json!({
            "did": "é".repeat(100),
            "att": {"device": {"platform": ["not", "text"]}, "app": {"version": 23}},
        })
        .as_object()
        .cloned()
        .map(std::sync::Arc::new);
        decision
    }

    #[test]
    fn values_are_bounded_and_only_text_or_numbers() {
        let reasons: Vec<String> = (0..40).map(|i| format!("reason-{i}")).collect();
        let record = DecisionRecord::of(&denied(reasons), CacheOutcome::Hit);
        assert_eq!(record.policy_reasons.len(), MAX_POLICY_REASONS);
        assert_eq!(record.policy_reasons_dropped, 40 - MAX_POLICY_REASONS);
        let device = record.device.clone().unwrap();
        assert!(device.len() <= MAX_VALUE_BYTES && device.chars().all(|c| c == 'é'));
        assert_eq!(record.platform, None, "a list is not a platform");
        assert_eq!(record.app_version.as_deref(), Some("23"));
        assert_eq!(record.cache, Some("hit"));
        assert!(record.would_deny() && record.allowed);
    }

    #[test]
    fn the_json_form_round_trips_with_the_listed_fields() {
        let record = DecisionRecord::of(&denied(vec!["rooted".to_owned()]), CacheOutcome::Miss);
        let value = serde_json::to_value(&record).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut fields = DecisionRecord::<&str>::FIELDS.to_vec();
        fields.sort_unstable();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, fields);
        let back: DecisionRecord<String> = serde_json::from_value(value).unwrap();
        assert_eq!(back.reason, "policy_denied");
        assert_eq!(back.policy_reasons, ["rooted"]);
        let names: Vec<&str> = record.text_fields().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, DecisionRecord::<&str>::FIELDS);
    }

    #[test]
    fn only_a_policy_denial_has_policy_reasons() {
        let mut decision = denied(vec!["a detail".to_owned()]);
        decision.reason = Reason::TokenExpired;
        let record = DecisionRecord::of(&decision, CacheOutcome::Uncached);
        assert!(record.policy_reasons.is_empty());
        assert_eq!(record.cache, None);
    }
}
