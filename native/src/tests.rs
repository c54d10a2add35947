//! The C boundary, called as a C host would: raw pointers, lengths, out parameters.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use super::*;
use attestgate_policy::plan::action_for;
use attestgate_testkit::SigningKey;

const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const NOW: i64 = 1_700_000_000;

fn config(extra: &str) -> String {
    format!(
        r#"{{"keys":{{"approov_secret":"{SECRET}"}},
            "claim_to_headers":[{{"claim":"did","header":"X-Device-Id"}}]{extra}}}"#
    )
}

fn token(exp_in: i64) -> String {
    let claims = serde_json::json!({"exp": NOW + exp_in, "did": "dev-1"});
    SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn s(text: &[u8]) -> AttestgateStr {
    AttestgateStr {
        ptr: text.as_ptr().cast(),
        len: text.len(),
    }
}

/// Reads a view the library handed out.
fn read(view: AttestgateStr) -> String {
    if view.len == 0 {
        return String::new();
    }
    // SAFETY: the library hands out views valid for their length while their owner lives.
    let bytes = unsafe { std::slice::from_raw_parts(view.ptr.cast::<u8>(), view.len) };
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Loads a gate, or returns the code and message.
fn new_gate(config: &[u8]) -> Result<*mut AttestgateGate, (c_int, String)> {
    let mut gate = std::ptr::null_mut();
    let mut error = std::ptr::null_mut();
    // SAFETY: valid pointers and lengths.
    let code =
        unsafe { attestgate_gate_new(config.as_ptr().cast(), config.len(), &mut gate, &mut error) };
    if code == ATTESTGATE_OK {
        assert!(!gate.is_null() && error.is_null());
        return Ok(gate);
    }
    assert!(gate.is_null() && !error.is_null());
    // SAFETY: the error came from the library.
    let message = read(unsafe { *error });
    // SAFETY: freed once.
    unsafe { attestgate_string_free(error) };
    Err((code, message))
}

/// A request whose strings live in `headers` and the literals.
struct Owned {
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    views: Vec<AttestgateHeader>,
    body: Option<Vec<u8>>,
}

impl Owned {
    fn new(headers: &[(&str, &str)]) -> Owned {
        Owned::bytes(
            headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    fn bytes(headers: Vec<(Vec<u8>, Vec<u8>)>) -> Owned {
        let views = headers
            .iter()
            .map(|(n, v)| AttestgateHeader {
                name: s(n),
                value: s(v),
            })
            .collect();
        Owned {
            headers,
            views,
            body: None,
        }
    }

    fn request(&self, path: &'static str) -> AttestgateRequest {
        AttestgateRequest {
            method: s(b"POST"),
            path: s(path.as_bytes()),
            host: s(b"api.example.com"),
            headers: self.views.as_ptr(),
            headers_len: self.views.len(),
            client_addr: s(b"127.0.0.1"),
            body: self.body.as_ref().map_or(std::ptr::null(), |b| b.as_ptr()),
            body_len: self.body.as_ref().map_or(0, Vec::len),
            has_body: c_int::from(self.body.is_some()),
            now: NOW,
        }
    }
}

/// What a decision says, copied out, then freed.
#[derive(Debug, PartialEq)]
struct Read {
    allow: bool,
    monitored: bool,
    status: u16,
    reason: String,
    body: String,
    remove: Vec<String>,
    set: Vec<(String, String)>,
    counters: Vec<String>,
    record: serde_json::Value,
    record_fields: Vec<(String, String)>,
}

fn decide(
    gate: *const AttestgateGate,
    request: &AttestgateRequest,
) -> Result<Read, (c_int, String)> {
    let mut out = std::ptr::null_mut();
    let mut error = std::ptr::null_mut();
    // SAFETY: valid pointers.
    let code = unsafe { attestgate_decide(gate, request, &mut out, &mut error) };
    if code != ATTESTGATE_OK {
        assert!(out.is_null());
        let message = if error.is_null() {
            String::new()
        } else {
            // SAFETY: from the library; freed once.
            let message = read(unsafe { *error });
            // SAFETY: freed once.
            unsafe { attestgate_string_free(error) };
            message
        };
        return Err((code, message));
    }
    // SAFETY: a decision from the library.
    let d = unsafe { &*out };
    // SAFETY: the arrays are valid for their lengths while the decision lives.
    let remove = unsafe { std::slice::from_raw_parts(d.remove, d.remove_len) };
    // SAFETY: as above.
    let set = unsafe { std::slice::from_raw_parts(d.set, d.set_len) };
    // SAFETY: as above.
    let counters = unsafe { std::slice::from_raw_parts(d.counters, d.counters_len) };
    // SAFETY: as above.
    let fields = unsafe { std::slice::from_raw_parts(d.record_fields, d.record_fields_len) };
    let read = Read {
        allow: d.allow == 1,
        monitored: d.monitored == 1,
        status: d.status,
        reason: read(d.reason),
        body: read(d.body),
        remove: remove.iter().map(|v| read(*v)).collect(),
        set: set.iter().map(|h| (read(h.name), read(h.value))).collect(),
        counters: counters.iter().map(|v| read(*v)).collect(),
        record: serde_json::from_str(&read(d.record)).expect("the record is JSON"),
        record_fields: fields
            .iter()
            .map(|h| (read(h.name), read(h.value)))
            .collect(),
    };
    // SAFETY: freed once.
    unsafe { attestgate_decision_free(out) };
    Ok(read)
}

#[test]
fn the_version_is_a_c_string() {
    // SAFETY: a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(attestgate_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn an_allowed_request_is_planned_exactly_as_the_core_plans_it() {
    let gate = new_gate(config("").as_bytes()).unwrap();
    let t = token(300);
    let owned = Owned::new(&[("Approov-Token", &t), ("X-Device-Id", "spoofed")]);
    let got = decide(gate, &owned.request("/v1/shapes")).unwrap();
    assert!(got.allow && !got.monitored);
    assert_eq!(
        (got.status, got.reason.as_str(), got.body.as_str()),
        (200, "allowed", "")
    );
    assert!(got.remove.contains(&"approov-token".to_owned()));
    assert!(got.remove.contains(&"x-device-id".to_owned()));
    assert!(got.remove.contains(&"x-attestgate-reason".to_owned()));
    assert_eq!(got.set, [("x-device-id".to_owned(), "dev-1".to_owned())]);

    // The same as the core's own planning for that request.
    let core = Gate::from_json(&config("")).unwrap();
    let request = Request::new("POST", "/v1/shapes")
        .with_host("api.example.com")
        .with_header("approov-token", t.as_str())
        .with_header("x-device-id", "spoofed")
        .with_source_ip("127.0.0.1");
    let decision = core.check(&request, NOW);
    assert_eq!(
        action_for(&core, &decision, &request),
        Action::Continue {
            remove: got.remove.clone(),
            set: got.set.clone()
        }
    );
    // The core's counter names, the verification counted as a cache miss.
    assert_eq!(
        got.counters,
        ["attestgate.allowed", "attestgate.cache.misses"]
    );
    // A second time: from the cache, the same answer, counted as a hit.
    let again = decide(gate, &owned.request("/v1/shapes")).unwrap();
    assert_eq!(
        again.counters,
        ["attestgate.allowed", "attestgate.cache.hits"]
    );
    assert_eq!(
        (&again.record["cache"], &got.record["cache"]),
        (&"hit".into(), &"miss".into())
    );
    assert_eq!(
        Read {
            counters: got.counters.clone(),
            record: got.record.clone(),
            record_fields: got.record_fields.clone(),
            ..again
        },
        got
    );
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}

#[test]
fn a_denial_is_a_json_reply() {
    let gate = new_gate(config("").as_bytes()).unwrap();
    let t = token(-600);
    let owned = Owned::new(&[("approov-token", &t)]);
    let got = decide(gate, &owned.request("/")).unwrap();
    assert!(!got.allow);
    assert_eq!((got.status, got.reason.as_str()), (401, "token_expired"));
    assert_eq!(
        got.counters,
        [
            "attestgate.denied",
            "attestgate.denied.token_expired",
            "attestgate.cache.misses"
        ]
    );
    let body: serde_json::Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["error"], "token_expired");
    assert!(got.remove.is_empty());
    assert!(got
        .set
        .contains(&("content-type".to_owned(), "application/json".to_owned())));
    assert!(got
        .set
        .contains(&("x-attestgate-reason".to_owned(), "token_expired".to_owned())));
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}

#[test]
fn monitor_mode_lets_a_denial_through_with_the_reason() {
    let gate = new_gate(config(r#","mode":"monitor""#).as_bytes()).unwrap();
    let got = decide(gate, &Owned::new(&[]).request("/")).unwrap();
    assert!(got.allow && got.monitored);
    assert_eq!(
        got.counters,
        [
            "attestgate.monitored_denied",
            "attestgate.monitored_denied.token_missing"
        ]
    );
    assert!(got
        .set
        .contains(&("x-attestgate-decision".to_owned(), "deny".to_owned())));
    assert!(got
        .set
        .contains(&("x-attestgate-reason".to_owned(), "token_missing".to_owned())));
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}

/// Each decision comes with the core's record of it (`DecisionRecord::of`): as JSON, and as
/// its text fields in `DecisionRecord::FIELDS` order, the two the same record.
#[test]
fn each_decision_carries_the_cores_record_as_json_and_as_text_fields() {
    use attestgate_policy::record::DecisionRecord;
    use attestgate_policy::CacheOutcome;

    let policy = r#"package attestgate
import rego.v1
reasons contains "old_app" if input.token.claims.att.app.version == "1.0"
reasons contains "rooted" if input.token.claims.att.device.rooted
decision := {"allow": count(reasons) == 0, "reasons": sort([r | some r in reasons])}"#;
    let extra = format!(
        r#","mode":"monitor","policy":{{"modules":{{"p.rego":{}}}}}"#,
        serde_json::to_string(policy).unwrap()
    );
    let gate = new_gate(config(&extra).as_bytes()).unwrap();
    let claims = serde_json::json!({"exp": NOW + 300, "did": "dev-7",
        "att": {"app": {"version": "1.0"}, "device": {"platform": "android", "rooted": true}}});
    let t = SigningKey::hs256_from_base64_secret(SECRET)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap();
    let owned = Owned::new(&[("approov-token", &t), ("x-device-id", "spoofed")]);
    let got = decide(gate, &owned.request("/v1/shapes")).unwrap();
    assert!(got.allow && got.monitored, "{got:?}");

    // Exactly the core's record of the same decision.
    let core = Gate::from_json(&config(&extra)).unwrap();
    let request = Request::new("POST", "/v1/shapes")
        .with_host("api.example.com")
        .with_header("approov-token", t.as_str())
        .with_source_ip("127.0.0.1");
    let expected = DecisionRecord::of(&core.check(&request, NOW), CacheOutcome::Miss);
    assert_eq!(got.record, serde_json::to_value(&expected).unwrap());
    assert_eq!(
        got.record,
        serde_json::json!({"verdict": "deny", "allowed": true, "mode": "monitor", "status": 200,
            "reason": "policy_denied", "policy_reasons": ["old_app", "rooted"],
            "policy_reasons_dropped": 0, "rule": null, "device": "dev-7",
            "platform": "android", "app_version": "1.0", "cache": "miss"})
    );
    let text: Vec<(String, String)> = expected
        .text_fields()
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.clone()))
        .collect();
    assert_eq!(got.record_fields, text);
    assert_eq!(
        got.record_fields[5],
        ("policy_reasons".to_owned(), "old_app,rooted".to_owned())
    );

    // A denial without a verified token: no device, whatever the client sent.
    let denied = decide(
        gate,
        &Owned::new(&[("x-device-id", "spoofed")]).request("/"),
    )
    .unwrap();
    assert_eq!(denied.record["reason"], "token_missing");
    assert_eq!(denied.record["device"], serde_json::Value::Null);
    assert!(denied
        .record_fields
        .iter()
        .all(|(_, v)| !v.contains("spoofed")));
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}

#[test]
fn bad_configs_are_refused_with_a_code_and_a_message() {
    let (code, message) = new_gate(b"{\"keys\":{}, \"modee\": 1}").unwrap_err();
    assert_eq!(code, ATTESTGATE_ERR_CONFIG);
    assert!(message.contains("modee"), "{message}");
    let (code, _) = new_gate(b"not json").unwrap_err();
    assert_eq!(code, ATTESTGATE_ERR_CONFIG);
    let (code, message) = new_gate(b"{\"keys\":{\xff}}").unwrap_err();
    assert_eq!(code, ATTESTGATE_ERR_UTF8, "{message}");
    let (code, _) = new_gate(b"").unwrap_err();
    assert_eq!(code, ATTESTGATE_ERR_CONFIG);
    // What this host cannot do, where doing without would let requests through: refused by
    // the core's capability model, naming the field and this host.
    for (text, field) in [
        (
            config(r#","rules":[{"path_prefix":"/","rate_limit":{"requests":1,"per_seconds":1}}]"#),
            "`rules[0].rate_limit`",
        ),
        (
            r#"{"host_verification":{"filter":"envoy.filters.http.jwt_authn","payload_in_metadata":"approov"}}"#
                .to_owned(),
            "`host_verification`",
        ),
        (config(r#","log_decisions":true"#), "`log_decisions`"),
    ] {
        // The core accepts each of these.
        Gate::from_json(&text).unwrap();
        match new_gate(text.as_bytes()) {
            Err((code, message)) => {
                assert_eq!(code, ATTESTGATE_ERR_CONFIG, "{text}: {message}");
                assert!(
                    message.starts_with(&format!("unsupported {field}"))
                        && message.contains("the native library (NGINX / OpenResty, Kong >= 3.11)"),
                    "{text}: {message}"
                );
            }
            Ok(gate) => {
                // SAFETY: freed once.
                unsafe { attestgate_gate_free(gate) };
                panic!("{text} was accepted");
            }
        }
    }
}

#[test]
fn null_pointers_are_refused_not_read() {
    let mut gate = std::ptr::null_mut();
    let mut error = std::ptr::null_mut();
    // SAFETY: each call passes NULL where the contract allows the library to refuse it.
    unsafe {
        assert_eq!(
            attestgate_gate_new(std::ptr::null(), 5, &mut gate, &mut error),
            ATTESTGATE_ERR_NULL
        );
        assert!(gate.is_null() && !error.is_null());
        attestgate_string_free(error);
        let text = config("");
        assert_eq!(
            attestgate_gate_new(
                text.as_ptr().cast(),
                text.len(),
                std::ptr::null_mut(),
                std::ptr::null_mut()
            ),
            ATTESTGATE_ERR_NULL
        );
        // No error pointer: the code alone.
        assert_eq!(
            attestgate_gate_new(std::ptr::null(), 5, &mut gate, std::ptr::null_mut()),
            ATTESTGATE_ERR_NULL
        );
        attestgate_gate_free(std::ptr::null_mut());
        attestgate_decision_free(std::ptr::null_mut());
        attestgate_string_free(std::ptr::null_mut());
    }
    let gate = new_gate(config("").as_bytes()).unwrap();
    let owned = Owned::new(&[("a", "b")]);
    assert_eq!(
        decide(std::ptr::null(), &owned.request("/")).unwrap_err().0,
        ATTESTGATE_ERR_NULL
    );
    let mut out = std::ptr::null_mut();
    // SAFETY: NULL request and NULL out are refused.
    unsafe {
        assert_eq!(
            attestgate_decide(gate, std::ptr::null(), &mut out, std::ptr::null_mut()),
            ATTESTGATE_ERR_NULL
        );
        assert!(out.is_null());
        assert_eq!(
            attestgate_decide(
                gate,
                &owned.request("/"),
                std::ptr::null_mut(),
                std::ptr::null_mut()
            ),
            ATTESTGATE_ERR_NULL
        );
    }
    let mut request = owned.request("/");
    request.headers = std::ptr::null();
    assert_eq!(decide(gate, &request).unwrap_err().0, ATTESTGATE_ERR_NULL);
    let mut request = owned.request("/");
    request.path = AttestgateStr {
        ptr: std::ptr::null(),
        len: 3,
    };
    assert_eq!(decide(gate, &request).unwrap_err().0, ATTESTGATE_ERR_NULL);
    let mut request = owned.request("/");
    request.has_body = 1;
    request.body_len = 4;
    assert_eq!(decide(gate, &request).unwrap_err().0, ATTESTGATE_ERR_NULL);
    // NULL with length 0 is an empty string.
    let mut request = owned.request("/");
    request.client_addr = AttestgateStr {
        ptr: std::ptr::null(),
        len: 0,
    };
    assert_eq!(decide(gate, &request).unwrap().reason, "token_missing");
    let (mut needs, mut max) = (7, 7);
    // SAFETY: NULL out pointers and a NULL gate are refused.
    unsafe {
        assert_eq!(
            attestgate_needs_body(gate, &owned.request("/"), std::ptr::null_mut(), &mut max),
            ATTESTGATE_ERR_NULL
        );
        assert_eq!(
            attestgate_needs_body(std::ptr::null(), &owned.request("/"), &mut needs, &mut max),
            ATTESTGATE_ERR_NULL
        );
        assert_eq!(
            attestgate_needs_body(gate, std::ptr::null(), &mut needs, &mut max),
            ATTESTGATE_ERR_NULL
        );
        assert_eq!((needs, max), (7, 7));
        attestgate_gate_free(gate);
    }
}

#[test]
fn huge_lengths_are_refused_before_anything_is_read() {
    // The pointers are to a few bytes: reading the claimed lengths would crash the test.
    let tiny = b"{}";
    let mut gate = std::ptr::null_mut();
    // SAFETY: the length is over the cap, so nothing is read.
    let code = unsafe {
        attestgate_gate_new(
            tiny.as_ptr().cast(),
            usize::MAX,
            &mut gate,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(code, ATTESTGATE_ERR_TOO_LARGE);
    let gate = new_gate(config("").as_bytes()).unwrap();
    let owned = Owned::new(&[("a", "b")]);
    let mut request = owned.request("/");
    request.headers_len = usize::MAX;
    assert_eq!(
        decide(gate, &request).unwrap_err().0,
        ATTESTGATE_ERR_TOO_LARGE
    );
    let mut request = owned.request("/");
    request.method.len = MAX_FIELD_BYTES + 1;
    let (code, message) = decide(gate, &request).unwrap_err();
    assert_eq!(code, ATTESTGATE_ERR_TOO_LARGE);
    assert!(message.contains("method"), "{message}");
    let mut request = owned.request("/");
    request.has_body = 1;
    request.body = tiny.as_ptr();
    request.body_len = usize::MAX;
    assert_eq!(
        decide(gate, &request).unwrap_err().0,
        ATTESTGATE_ERR_TOO_LARGE
    );
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}

#[test]
fn bytes_that_are_not_utf8_are_read_lossily_as_the_filter_does() {
    let gate = new_gate(config("").as_bytes()).unwrap();
    let owned = Owned::bytes(vec![(b"approov-token".to_vec(), b"ey\xff.x.y".to_vec())]);
    let got = decide(gate, &owned.request("/")).unwrap();
    assert_eq!((got.status, got.reason.as_str()), (401, "token_malformed"));
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}

#[test]
fn the_body_is_asked_for_and_capped_at_the_routes_limit() {
    let extra = r#","signature":{"mode":"required","max_body_bytes":8}"#;
    let gate = new_gate(config(extra).as_bytes()).unwrap();
    let t = token(300);
    let owned = Owned::new(&[
        ("approov-token", &t),
        ("content-digest", "sha-256=:AAAA:"),
        (
            "signature-input",
            r#"install=("@method" "content-digest");created=1700000000"#,
        ),
        ("signature", "install=:AAAA:"),
    ]);
    let (mut needs, mut max) = (0, 0);
    // SAFETY: valid pointers.
    let code = unsafe { attestgate_needs_body(gate, &owned.request("/"), &mut needs, &mut max) };
    assert_eq!((code, needs, max), (ATTESTGATE_OK, 1, 8));
    let mut with_body = Owned::new(&[]);
    with_body.headers.clone_from(&owned.headers);
    with_body.views.clone_from(&owned.views);
    with_body.body = Some(vec![b'x'; 1000]);
    let got = decide(gate, &with_body.request("/")).unwrap();
    assert_eq!((got.status, got.reason.as_str()), (413, "body_too_large"));
    let plain = Owned::new(&[("approov-token", &t)]);
    // SAFETY: valid pointers.
    let code = unsafe { attestgate_needs_body(gate, &plain.request("/"), &mut needs, &mut max) };
    assert_eq!((code, needs), (ATTESTGATE_OK, 0));
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}

#[test]
fn a_gate_is_refused_on_another_thread() {
    let gate = new_gate(config("").as_bytes()).unwrap() as usize;
    let code = std::thread::spawn(move || {
        let owned = Owned::new(&[]);
        decide(gate as *const AttestgateGate, &owned.request("/"))
            .unwrap_err()
            .0
    })
    .join()
    .unwrap();
    assert_eq!(code, ATTESTGATE_ERR_THREAD);
    // SAFETY: freed once, on its own thread.
    unsafe { attestgate_gate_free(gate as *mut AttestgateGate) };
}

const OTHER: &str = "b3RoZXItc2VjcmV0LW9mLXRoaXJ0eS10d28tYnl0ZXMh";

fn jwks(kid: &str, secret: &str) -> String {
    let k = secret
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_");
    format!(r#"{{"keys":[{{"kty":"oct","alg":"HS256","kid":"{kid}","k":"{k}"}}]}}"#)
}

fn kid_token(kid: &str, secret: &str, did: &str) -> String {
    let claims = serde_json::json!({"exp": NOW + 300, "did": did});
    SigningKey::hs256_from_base64_secret(secret)
        .unwrap()
        .with_kid(Some(kid.to_owned()))
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn set_document(
    gate: *const AttestgateGate,
    kind: c_int,
    body: &[u8],
) -> Result<(), (c_int, String)> {
    let mut error = std::ptr::null_mut();
    // SAFETY: valid pointers and length.
    let code =
        unsafe { attestgate_gate_set_document(gate, kind, body.as_ptr(), body.len(), &mut error) };
    if code == ATTESTGATE_OK {
        assert!(error.is_null());
        return Ok(());
    }
    assert!(!error.is_null());
    // SAFETY: the error came from the library.
    let message = read(unsafe { *error });
    // SAFETY: freed once.
    unsafe { attestgate_string_free(error) };
    Err((code, message))
}

fn remote_config() -> String {
    r#"{"keys":{"remote":{"upstream":"127.0.0.1:9","authority":"keys.example.com","path":"/jwks.json","refresh_seconds":7,"timeout_ms":900,"max_bytes":4096}},
        "denylist":{"remote":{"upstream":"127.0.0.1:9","authority":"lists.example.com","path":"/deny.json"}}}"#
        .to_owned()
}

fn reason_for(gate: *const AttestgateGate, token: &str) -> String {
    let owned = Owned::new(&[("approov-token", token)]);
    decide(gate, &owned.request("/")).unwrap().reason
}

#[test]
fn the_remote_sources_are_read_from_the_config() {
    let gate = new_gate(remote_config().as_bytes()).unwrap();
    let mut source = AttestgateRemoteSource {
        upstream: s(b""),
        authority: s(b""),
        path: s(b""),
        refresh_seconds: 0,
        timeout_ms: 0,
        max_bytes: 0,
    };
    let mut present = -1;
    // SAFETY: valid pointers.
    let code =
        unsafe { attestgate_gate_remote(gate, ATTESTGATE_DOC_JWKS, &mut source, &mut present) };
    assert_eq!(code, ATTESTGATE_OK);
    assert_eq!(present, 1);
    assert_eq!(
        (
            read(source.upstream),
            read(source.authority),
            read(source.path)
        ),
        (
            "127.0.0.1:9".to_owned(),
            "keys.example.com".to_owned(),
            "/jwks.json".to_owned()
        )
    );
    assert_eq!(
        (source.refresh_seconds, source.timeout_ms, source.max_bytes),
        (7, 900, 4096)
    );
    // SAFETY: valid pointers.
    let code =
        unsafe { attestgate_gate_remote(gate, ATTESTGATE_DOC_DENYLIST, &mut source, &mut present) };
    assert_eq!(code, ATTESTGATE_OK);
    assert_eq!(
        (present, read(source.path), source.refresh_seconds),
        (1, "/deny.json".to_owned(), 300)
    );
    // SAFETY: valid pointers; an unknown kind and NULL out-pointers are errors.
    unsafe {
        assert_eq!(
            attestgate_gate_remote(gate, 3, &mut source, &mut present),
            ATTESTGATE_ERR_DOCUMENT
        );
        assert_eq!(
            attestgate_gate_remote(gate, 1, std::ptr::null_mut(), &mut present),
            ATTESTGATE_ERR_NULL
        );
        assert_eq!(
            attestgate_gate_remote(std::ptr::null(), 1, &mut source, &mut present),
            ATTESTGATE_ERR_NULL
        );
    }
    // A gate without sources says so.
    let plain = new_gate(config("").as_bytes()).unwrap();
    // SAFETY: valid pointers.
    let code =
        unsafe { attestgate_gate_remote(plain, ATTESTGATE_DOC_JWKS, &mut source, &mut present) };
    assert_eq!(code, ATTESTGATE_OK);
    assert_eq!(present, 0);
    assert_eq!(
        set_document(plain, ATTESTGATE_DOC_JWKS, jwks("k1", SECRET).as_bytes())
            .unwrap_err()
            .0,
        ATTESTGATE_ERR_DOCUMENT
    );
    // SAFETY: freed once each.
    unsafe {
        attestgate_gate_free(gate);
        attestgate_gate_free(plain);
    }
}

#[test]
fn fetched_keys_rotate_and_a_refused_document_keeps_the_last_good_one() {
    let gate = new_gate(remote_config().as_bytes()).unwrap();
    let old = kid_token("k1", SECRET, "dev-1");
    let new = kid_token("k2", OTHER, "dev-1");
    // Before the first document: no key to check with.
    assert_eq!(reason_for(gate, &old), "keys_unavailable");
    set_document(gate, ATTESTGATE_DOC_JWKS, jwks("k1", SECRET).as_bytes()).unwrap();
    assert_eq!(reason_for(gate, &old), "allowed");
    // Cached now; a rotation must not be answered from the cache.
    assert_eq!(reason_for(gate, &old), "allowed");
    assert_eq!(reason_for(gate, &new), "key_not_found");
    set_document(gate, ATTESTGATE_DOC_JWKS, jwks("k2", OTHER).as_bytes()).unwrap();
    assert_eq!(reason_for(gate, &new), "allowed");
    assert_eq!(reason_for(gate, &old), "key_not_found");
    // Garbage, no usable key, a denylist, oversized: refused, the last good keys kept.
    let big = format!("{}{}", jwks("k3", SECRET), " ".repeat(4096));
    for bad in [
        &b"<html>502</html>"[..],
        br#"{"keys":[]}"#,
        br#"{"devices":[]}"#,
        b"",
        big.as_bytes(),
    ] {
        let (code, message) = set_document(gate, ATTESTGATE_DOC_JWKS, bad).unwrap_err();
        assert_eq!(code, ATTESTGATE_ERR_DOCUMENT, "{message}");
        assert!(!message.is_empty());
        assert_eq!(reason_for(gate, &new), "allowed");
        assert_eq!(reason_for(gate, &old), "key_not_found");
    }
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}

#[test]
fn a_fetched_denylist_refuses_listed_devices_and_keeps_the_last_good_list() {
    let gate = new_gate(remote_config().as_bytes()).unwrap();
    set_document(gate, ATTESTGATE_DOC_JWKS, jwks("k1", SECRET).as_bytes()).unwrap();
    let lost = kid_token("k1", SECRET, "lost");
    let good = kid_token("k1", SECRET, "good");
    assert_eq!(reason_for(gate, &lost), "allowed");
    set_document(gate, ATTESTGATE_DOC_DENYLIST, br#"{"devices":["lost"]}"#).unwrap();
    assert_eq!(reason_for(gate, &lost), "device_denied");
    assert_eq!(reason_for(gate, &good), "allowed");
    for bad in [&b"[]"[..], br#"{"devices":[1]}"#, b"not json"] {
        assert_eq!(
            set_document(gate, ATTESTGATE_DOC_DENYLIST, bad)
                .unwrap_err()
                .0,
            ATTESTGATE_ERR_DOCUMENT
        );
        assert_eq!(reason_for(gate, &lost), "device_denied");
    }
    set_document(gate, ATTESTGATE_DOC_DENYLIST, br#"{"devices":[]}"#).unwrap();
    assert_eq!(reason_for(gate, &lost), "allowed");
    // NULL with a length, another thread: errors, never a crash.
    let mut error = std::ptr::null_mut();
    // SAFETY: the NULL body is the point.
    let code = unsafe {
        attestgate_gate_set_document(
            gate,
            ATTESTGATE_DOC_DENYLIST,
            std::ptr::null(),
            3,
            &mut error,
        )
    };
    assert_eq!(code, ATTESTGATE_ERR_NULL);
    // SAFETY: freed once.
    unsafe { attestgate_string_free(error) };
    let address = gate as usize;
    let code = std::thread::spawn(move || {
        let body = br#"{"devices":[]}"#;
        // SAFETY: the gate lives; the library refuses the other thread.
        unsafe {
            attestgate_gate_set_document(
                address as *const AttestgateGate,
                ATTESTGATE_DOC_DENYLIST,
                body.as_ptr(),
                body.len(),
                std::ptr::null_mut(),
            )
        }
    })
    .join()
    .unwrap();
    assert_eq!(code, ATTESTGATE_ERR_THREAD);
    // SAFETY: freed once.
    unsafe { attestgate_gate_free(gate) };
}
