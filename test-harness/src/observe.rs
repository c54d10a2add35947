//! Decisions as a gateway shows them, so every runner can be compared with the native core.
//!
//! A gateway does not hand back the [`Decision`](attestgate_policy::Decision): it answers
//! with a status and `x-attestgate-reason`, or forwards the request, and it moves one of the
//! filter's counters. The counter says which decision it was (allowed, bypassed, monitored
//! or denied, and why), the same way in the harness and in real Envoy's `/stats`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a runner decided, in the terms every runner can show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// Whether the request reached the upstream.
    pub allow: bool,
    /// The status the client got (200 when the request went upstream).
    pub status: u16,
    /// The reason code.
    pub reason: String,
    /// `allow` or `deny`: the gate's verdict (`deny` with `allow: true` is monitor mode).
    pub verdict: String,
}

impl Observed {
    /// The native core's decision in the same terms, to compare a runner with.
    pub fn of(decision: &attestgate_policy::Decision) -> Observed {
        Observed {
            allow: decision.allow,
            status: decision.status,
            reason: decision.reason.as_str().to_owned(),
            verdict: match decision.verdict {
                attestgate_policy::Verdict::Deny => "deny",
                _ => "allow",
            }
            .to_owned(),
        }
    }

    /// Whether this is what a case expects: `allow`, `status`, `reason`, and the verdict when
    /// the case names one.
    pub fn meets(&self, allow: bool, status: u16, reason: &str, verdict: Option<&str>) -> bool {
        self.allow == allow
            && self.status == status
            && self.reason == reason
            && verdict.is_none_or(|v| v == self.verdict)
    }
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "allow={} status={} reason={} verdict={}",
            self.allow, self.status, self.reason, self.verdict
        )
    }
}

/// The decision a change in the filter's counters records: `(allow, verdict, reason)`.
///
/// `before` and `after` map counter names (without a host prefix such as Envoy's
/// `wasmcustom.`) to values. Exactly one decision counter must have moved by one.
///
/// ```
/// # use std::collections::BTreeMap;
/// use attestgate_harness::observe::from_counters;
/// let before = BTreeMap::from([("attestgate.denied.token_expired".to_owned(), 2)]);
/// let after = BTreeMap::from([
///     ("attestgate.denied".to_owned(), 1),
///     ("attestgate.denied.token_expired".to_owned(), 3),
/// ]);
/// assert_eq!(
///     from_counters(&before, &after),
///     Ok((false, "deny", "token_expired".to_owned()))
/// );
/// ```
pub fn from_counters(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> Result<(bool, &'static str, String), String> {
    let moved: Vec<(&str, u64)> = after
        .iter()
        .filter_map(|(name, value)| {
            let old = before.get(name).copied().unwrap_or(0);
            (*value != old).then(|| (name.as_str(), value.saturating_sub(old)))
        })
        .collect();
    let mut found = Vec::new();
    for (name, delta) in &moved {
        let decision = if *name == "attestgate.allowed" {
            Some((true, "allow", "allowed".to_owned()))
        } else if *name == "attestgate.bypassed" {
            Some((true, "allow", "bypassed".to_owned()))
        } else if let Some(reason) = name.strip_prefix("attestgate.monitored_denied.") {
            Some((true, "deny", reason.to_owned()))
        } else if let Some(reason) = name.strip_prefix("attestgate.denied.") {
            Some((false, "deny", reason.to_owned()))
        } else if *name == "attestgate.errors" {
            Some((false, "deny", "internal_error".to_owned()))
        } else {
            None
        };
        if let Some(decision) = decision {
            if *delta != 1 {
                return Err(format!("counter {name} moved by {delta}, not 1"));
            }
            found.push(decision);
        }
    }
    match found.len() {
        1 => found.pop().ok_or_else(|| "no decision".to_owned()),
        0 => Err(format!("no decision counter moved (moved: {moved:?})")),
        _ => Err(format!("several decision counters moved: {moved:?}")),
    }
}
