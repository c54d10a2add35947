//! What to do with one request, decided without touching the host.
//!
//! The proxy-wasm glue in `lib.rs` reads headers and properties, calls [`plan`], and carries
//! out the [`Action`]. Keeping this pure lets it be tested natively, fast.

use std::rc::Rc;

use attestgate_policy::plan::{action_for, same_header_when_folded};
use attestgate_policy::record::DecisionRecord;
use attestgate_policy::remote::Dynamic;
use attestgate_policy::{
    CacheOutcome, Decision, DecisionCache, Gate, Reason, RecordField, Request,
};

// The host-neutral planning lives in the core (`attestgate_policy::plan`), shared with the
// native library for NGINX: every host strips, sets and refuses alike.
pub use attestgate_policy::plan::{
    all_counter_names, cache_counter, counters, decision_log_line, host_refusal, plan_request,
    refusal_counters, request_facts, Action, CACHE_HITS, CACHE_MISSES, DECISION_HEADER, ERRORS,
    REASON_HEADER,
};

/// Decides a request from its headers (pseudo-headers included), the host's
/// `source.address` property, the time, and what the worker holds of remote documents.
pub fn plan(
    gate: &Gate,
    headers: Vec<(String, String)>,
    source_address: Option<&[u8]>,
    now: i64,
    dynamic: &mut Dynamic<'_>,
) -> (Decision, Action) {
    let request = request_facts(headers, source_address);
    let decision = gate.check_with(&request, now, dynamic);
    let action = action_for(gate, &decision, &request);
    (decision, action)
}

/// [`plan`] through the worker's decision cache, when there is one; also says whether the
/// cache answered.
pub fn plan_cached(
    gate: &Gate,
    cache: Option<&mut DecisionCache>,
    headers: Vec<(String, String)>,
    source_address: Option<&[u8]>,
    now: i64,
    dynamic: &mut Dynamic<'_>,
) -> (Rc<Decision>, Action, CacheOutcome) {
    plan_request(
        gate,
        cache,
        &request_facts(headers, source_address),
        now,
        dynamic,
    )
}

/// A short id for a config text (FNV-1a, 64 bits, as 16 hex digits), so counters and logs can
/// say which config answered while a new one rolls out.
///
/// ```
/// use attestgate_filter::plan::config_id;
/// assert_eq!(config_id("{}").len(), 16);
/// assert_ne!(config_id(r#"{"mode":"monitor"}"#), config_id("{}"));
/// ```
pub fn config_id(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The namespace of the filter-state entries a decision writes (proxy-wasm `set_property`;
/// Envoy files each under `wasm.` + the key, so `attestgate.verdict` is read as
/// `%FILTER_STATE(wasm.attestgate.verdict:PLAIN)%`).
pub const FILTER_STATE_PREFIX: &str = "attestgate.";

/// The filter-state key of the whole record, as JSON.
pub const FILTER_STATE_RECORD: &str = "attestgate.record";

/// What the filter writes into the stream's filter state for a decision's record: the whole
/// record as JSON under [`FILTER_STATE_RECORD`], then each of the config's `record_fields` on
/// its own as text, under [`FILTER_STATE_PREFIX`] + the field's name.
///
/// ```
/// use attestgate_filter::plan::filter_state;
/// use attestgate_policy::record::DecisionRecord;
/// use attestgate_policy::{CacheOutcome, Gate, RecordField, Request};
/// let gate = Gate::from_json(r#"{ "keys": { "approov_secret":
///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" } }"#).unwrap();
/// let decision = gate.check(&Request::new("GET", "/"), 0);
/// let record = DecisionRecord::of(&decision, CacheOutcome::Uncached);
/// let entries = filter_state(&record, &[RecordField::Reason, RecordField::Device]);
/// assert_eq!(entries[0].0, "attestgate.record");
/// assert_eq!(entries[1], ("attestgate.reason".to_owned(), "token_missing".to_owned()));
/// assert_eq!(entries[2], ("attestgate.device".to_owned(), String::new()));
/// assert_eq!(filter_state(&record, &[]).len(), 1); // the record alone by default
/// ```
pub fn filter_state(record: &DecisionRecord, fields: &[RecordField]) -> Vec<(String, String)> {
    let mut entries = Vec::with_capacity(fields.len() + 1);
    // A record of strings, numbers and booleans always serializes; should it ever not, the
    // fields are still written on their own.
    if let Ok(json) = serde_json::to_string(record) {
        entries.push((FILTER_STATE_RECORD.to_owned(), json));
    }
    entries.extend(fields.iter().map(|&field| {
        (
            format!("{FILTER_STATE_PREFIX}{}", field.as_str()),
            record.text_field(field),
        )
    }));
    entries
}

/// How an allowed request's headers are rewritten on a host whose header removal does not
/// reach the upstream (ngx_wasm_module: a removed header is hidden from the filter but
/// `proxy_pass` still forwards it). Only in-place replacement is exact there, and only for a
/// header that came at most once: each header to set is replaced (or added), each header to
/// strip that came is replaced by an empty value. `Err(name)` when a header the gate strips or
/// sets came more than once, or another spelling of a header it sets came (`x_device_id`
/// beside the gate's `x-device-id`): its extra copies could not be kept from the upstream.
///
/// ```
/// use attestgate_filter::plan::replace_in_place;
/// let client = vec![("X-Device-Id".to_owned(), "attacker".to_owned()),
///                   ("approov-token".to_owned(), "eyJ...".to_owned())];
/// let edits = replace_in_place(&client, &["x-device-id".into(), "approov-token".into()],
///                              &[("x-device-id".into(), "device-1".into())]).unwrap();
/// assert_eq!(edits, [("x-device-id".to_owned(), "device-1".to_owned()),
///                    ("approov-token".to_owned(), String::new())]);
/// ```
pub fn replace_in_place(
    current: &[(String, String)],
    remove: &[String],
    set: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let copies = |name: &str| {
        current
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    };
    let mut edits: Vec<(String, String)> = Vec::with_capacity(remove.len() + set.len());
    for (name, value) in set {
        if copies(name) > 1 {
            return Err(name.clone());
        }
        edits.push((name.clone(), value.clone()));
    }
    for name in remove {
        if set.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            continue;
        }
        // `x_device_id` blanked beside the gate's `x-device-id` would still reach an
        // upstream that folds the two as a second, empty copy of the gate's header.
        let folds_into_a_set_header = set.iter().any(|(n, _)| same_header_when_folded(n, name));
        match copies(name) {
            0 => {}
            1 if !folds_into_a_set_header => edits.push((name.clone(), String::new())),
            _ => return Err(name.clone()),
        }
    }
    Ok(edits)
}

/// An allowed request's removals cut to the headers the request brought (in any case): each
/// removal is a call into the host, and one for a header that is not there changes nothing.
/// The request is the one the plan was made from, its headers read whole from the host.
///
/// ```
/// use attestgate_filter::plan::{without_absent_removals, Action};
/// use attestgate_policy::Request;
/// let request = Request::new("GET", "/").with_header("approov-token", "eyJ...");
/// let action = Action::Continue {
///     remove: vec!["x-device-id".into(), "Approov-Token".into()],
///     set: vec![("x-device-id".into(), "device-1".into())],
/// };
/// let Action::Continue { remove, set } = without_absent_removals(action, &request) else { panic!() };
/// assert_eq!(remove, ["Approov-Token"]);
/// assert_eq!(set.len(), 1);
/// ```
pub fn without_absent_removals(action: Action, request: &Request) -> Action {
    match action {
        Action::Continue { remove, set } => Action::Continue {
            remove: remove
                .into_iter()
                .filter(|name| request.header_values(name).next().is_some())
                .collect(),
            set,
        },
        respond => respond,
    }
}

/// The reply for a failure inside the filter itself: fail closed, say little.
pub fn internal_error() -> Action {
    host_refusal(Reason::InternalError, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use attestgate_testkit::SigningKey;

    const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn the_filter_state_is_the_record_whole_and_the_listed_fields_one_by_one() {
        let token = SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .sign(
                serde_json::json!({"exp": NOW + 60, "did": "d-1", "att": {"app": {"version": "3.1"}}})
                    .as_object()
                    .unwrap(),
            )
            .unwrap();
        let request =
            attestgate_policy::Request::new("GET", "/").with_header("approov-token", token);
        let decision = gate("").check(&request, NOW);
        let record = DecisionRecord::of(&decision, CacheOutcome::Miss);
        let entries = filter_state(&record, &RecordField::ALL);
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let mut want = vec![FILTER_STATE_RECORD.to_owned()];
        want.extend(
            DecisionRecord::<&str>::FIELDS
                .iter()
                .map(|f| format!("attestgate.{f}")),
        );
        assert_eq!(keys, want);
        let only = filter_state(&record, &[RecordField::Platform]);
        let keys: Vec<&str> = only.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [FILTER_STATE_RECORD, "attestgate.platform"]);
        let back: DecisionRecord<String> = serde_json::from_str(&entries[0].1).unwrap();
        assert_eq!(back.device.as_deref(), Some("d-1"));
        assert_eq!(back.app_version.as_deref(), Some("3.1"));
        let value = |key: &str| &entries.iter().find(|(k, _)| k == key).unwrap().1;
        assert_eq!(value("attestgate.device"), "d-1");
        assert_eq!(value("attestgate.cache"), "miss");
        assert_eq!(value("attestgate.platform"), "");
    }

    fn gate(extra: &str) -> Gate {
        Gate::from_json(&format!(
            r#"{{"keys":{{"approov_secret":"{SECRET}"}},
                "claim_to_headers":[{{"claim":"did","header":"X-Device-Id"}}]{extra}}}"#
        ))
        .unwrap()
    }

    fn token(exp_in: i64) -> String {
        let claims = serde_json::json!({"exp": NOW + exp_in, "did": "dev-1"});
        SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .sign(claims.as_object().unwrap())
            .unwrap()
    }

    fn headers(token: Option<&str>, path: &str) -> Vec<(String, String)> {
        let mut h = vec![
            (":method".to_owned(), "GET".to_owned()),
            (":path".to_owned(), path.to_owned()),
            (":authority".to_owned(), "api.example.com".to_owned()),
            ("x-device-id".to_owned(), "spoofed".to_owned()),
        ];
        if let Some(t) = token {
            h.push(("approov-token".to_owned(), t.to_owned()));
        }
        h
    }

    #[test]
    fn allowed_requests_lose_the_token_and_spoofed_claims() {
        let (decision, action) = plan(
            &gate(""),
            headers(Some(&token(300)), "/"),
            None,
            NOW,
            &mut Dynamic::default(),
        );
        assert!(decision.allow);
        let Action::Continue { remove, set } = action else {
            panic!("{action:?}")
        };
        assert!(remove.contains(&"approov-token".to_owned()));
        assert!(remove.contains(&"x-device-id".to_owned()));
        assert_eq!(set, vec![("x-device-id".to_owned(), "dev-1".to_owned())]);
        assert_eq!(counters(&gate(""), &decision), ["attestgate.allowed"]);
    }

    #[test]
    fn forward_keeps_the_token() {
        let (_, action) = plan(
            &gate(r#","forward":true"#),
            headers(Some(&token(300)), "/"),
            None,
            NOW,
            &mut Dynamic::default(),
        );
        let Action::Continue { remove, .. } = action else {
            panic!("{action:?}")
        };
        assert!(!remove.contains(&"approov-token".to_owned()));
    }

    #[test]
    fn denials_become_json_replies() {
        let (decision, action) = plan(
            &gate(""),
            headers(Some(&token(-600)), "/"),
            None,
            NOW,
            &mut Dynamic::default(),
        );
        let Action::Respond {
            status,
            headers,
            body,
        } = action
        else {
            panic!("{action:?}")
        };
        assert_eq!(status, 401);
        assert!(headers.contains(&(REASON_HEADER.to_owned(), "token_expired".to_owned())));
        assert!(headers.contains(&("content-type".to_owned(), "application/json".to_owned())));
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "token_expired");
        assert_eq!(
            counters(&gate(""), &decision),
            ["attestgate.denied", "attestgate.denied.token_expired"]
        );
    }

    #[test]
    fn monitor_mode_continues_with_decision_headers() {
        let (decision, action) = plan(
            &gate(r#","mode":"monitor""#),
            headers(None, "/"),
            None,
            NOW,
            &mut Dynamic::default(),
        );
        let Action::Continue { set, .. } = action else {
            panic!("{action:?}")
        };
        assert!(set.contains(&(DECISION_HEADER.to_owned(), "deny".to_owned())));
        assert!(set.contains(&(REASON_HEADER.to_owned(), "token_missing".to_owned())));
        assert_eq!(
            counters(&gate(""), &decision),
            [
                "attestgate.monitored_denied",
                "attestgate.monitored_denied.token_missing"
            ]
        );
    }

    #[test]
    fn request_facts_come_from_pseudo_headers_and_source_address() {
        let r = request_facts(headers(None, "/a?b"), Some(b"203.0.113.7:5100"));
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/a?b"));
        assert_eq!(r.host, "api.example.com");
        assert_eq!(r.source_ip.as_deref(), Some("203.0.113.7"));
        assert!(r.headers.iter().all(|(n, _)| !n.starts_with(':')));
    }

    #[test]
    fn the_cache_answers_like_the_gate_and_counts() {
        let gate = gate("");
        let mut cache = DecisionCache::new(10);
        let t = token(300);
        let (d1, a1, o1) = plan_cached(
            &gate,
            Some(&mut cache),
            headers(Some(&t), "/"),
            None,
            NOW,
            &mut Dynamic::default(),
        );
        let (d2, a2, o2) = plan_cached(
            &gate,
            Some(&mut cache),
            headers(Some(&t), "/"),
            None,
            NOW,
            &mut Dynamic::default(),
        );
        assert_eq!((&d1, &a1), (&d2, &a2));
        assert_eq!(
            plan(
                &gate,
                headers(Some(&t), "/"),
                None,
                NOW,
                &mut Dynamic::default()
            ),
            (Decision::clone(&d1), a1)
        );
        assert_eq!((o1, o2), (CacheOutcome::Miss, CacheOutcome::Hit));
        let all = all_counter_names();
        for outcome in [o1, o2] {
            let name = cache_counter(outcome).unwrap();
            assert!(all.contains(&name), "{name}");
        }
        let (_, _, o) = plan_cached(
            &gate,
            None,
            headers(Some(&t), "/"),
            None,
            NOW,
            &mut Dynamic::default(),
        );
        assert_eq!(cache_counter(o), None);
    }
}
