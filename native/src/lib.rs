//! attestgate as a native library: the C ABI of `libattestgate.so` (`include/attestgate.h`).
//!
//! A host (NGINX through LuaJIT's FFI, `lua/attestgate.lua`) loads a gate once per worker
//! ([`attestgate_gate_new`]), asks whether a request must wait for its body
//! ([`attestgate_needs_body`]) and decides it ([`attestgate_decide`]). The answer is the
//! core's planned action (`attestgate_policy::plan`), the one the proxy-wasm filter carries
//! out in Envoy and Kong: which request headers to remove and set, or the status, headers and
//! JSON body of the local reply.
//!
//! The boundary never trusts its caller: every pointer is checked for NULL, every length
//! against a cap, and no panic crosses it (the lints deny the constructs that panic, and
//! `catch_unwind` turns any other into [`ATTESTGATE_ERR_INTERNAL`]; build with a profile whose
//! `panic` is `unwind`, such as the workspace's `native` profile, for that last resort to
//! work).
//!
//! Fetched documents (`keys.remote`, `denylist.remote`): the library fetches nothing itself.
//! The host reads where to fetch from ([`attestgate_gate_remote`]), fetches on its own timer
//! (the Lua module: an `ngx.timer` with a cosocket) and hands each body over with
//! [`attestgate_gate_set_document`], which parses it with the core's `parse_jwks` /
//! `Denylist::parse`, keeps the last good document on a refusal, and empties the decision cache
//! when the document changes. Every decision then uses what the gate holds (`Dynamic`).
//!
//! What this host does not have (rate-limit buckets, a gateway verifier's record, a decision
//! log) is refused at load by the core's capability model (`attestgate_policy::capability`,
//! host `native`), so no config silently weakens here.

use std::cell::RefCell;
use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::ThreadId;

use attestgate_policy::capability::Host;
use attestgate_policy::plan::{cache_counter, counters, plan_request, Action};
use attestgate_policy::record::DecisionRecord;
use attestgate_policy::remote::{DocumentKind, Fetched};
use attestgate_policy::verifier::NativeVerifier;
use attestgate_policy::{DecisionCache, Gate, Mode, Request, Verdict};

/// Success.
pub const ATTESTGATE_OK: c_int = 0;
/// A required pointer is NULL, or NULL with a non-zero length.
pub const ATTESTGATE_ERR_NULL: c_int = -1;
/// The config is not UTF-8.
pub const ATTESTGATE_ERR_UTF8: c_int = -2;
/// A length over its cap.
pub const ATTESTGATE_ERR_TOO_LARGE: c_int = -3;
/// The gate refuses the config.
pub const ATTESTGATE_ERR_CONFIG: c_int = -4;
/// The gate was created on another thread.
pub const ATTESTGATE_ERR_THREAD: c_int = -5;
/// A bug inside the library: the host must fail closed.
pub const ATTESTGATE_ERR_INTERNAL: c_int = -6;
/// A fetched document the gate refuses (not a JWKS with a usable key, not a denylist, over
/// the source's `max_bytes`, or a kind the config does not fetch): the last good one is kept.
pub const ATTESTGATE_ERR_DOCUMENT: c_int = -7;

/// A fetched JWKS (`keys.remote`).
pub const ATTESTGATE_DOC_JWKS: c_int = 1;
/// A fetched denylist (`denylist.remote`).
pub const ATTESTGATE_DOC_DENYLIST: c_int = 2;

/// Most config bytes read.
pub const MAX_CONFIG_BYTES: usize = 64 << 20;
/// Most bytes of one method, path, host, client address, header name or value.
pub const MAX_FIELD_BYTES: usize = 16 << 20;
/// Most header fields of one request.
pub const MAX_HEADERS: usize = 16384;
/// Most body bytes a host may hand over (only the route's `max_body_bytes` + 1 are read).
pub const MAX_BODY_BYTES: usize = 256 << 20;
/// Most bytes of a fetched document handed over (the source's `max_bytes` applies first).
pub const MAX_DOCUMENT_BYTES: usize = 64 << 20;

/// A byte string; `ptr` may be NULL only when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AttestgateStr {
    /// The bytes.
    pub ptr: *const c_char,
    /// How many.
    pub len: usize,
}

impl AttestgateStr {
    /// A view of `text`, valid while `text` is neither dropped nor changed.
    fn of(text: &str) -> AttestgateStr {
        AttestgateStr {
            ptr: text.as_ptr().cast(),
            len: text.len(),
        }
    }
}

/// One header field.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AttestgateHeader {
    /// Its name.
    pub name: AttestgateStr,
    /// Its value.
    pub value: AttestgateStr,
}

/// One request as the host read it (`attestgate_request` in the header).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AttestgateRequest {
    /// `GET`.
    pub method: AttestgateStr,
    /// The request target as received, query included.
    pub path: AttestgateStr,
    /// `Host` / `:authority`; a `host` header among `headers` overrides it.
    pub host: AttestgateStr,
    /// The header fields in arrival order.
    pub headers: *const AttestgateHeader,
    /// How many.
    pub headers_len: usize,
    /// The client address, with or without a port; empty: none.
    pub client_addr: AttestgateStr,
    /// The body, when `has_body` is 1.
    pub body: *const u8,
    /// Its length.
    pub body_len: usize,
    /// 1: `body` is the complete body.
    pub has_body: c_int,
    /// Unix seconds.
    pub now: i64,
}

/// The answer (`attestgate_decision`), read-only for the host.
#[repr(C)]
#[derive(Debug)]
pub struct AttestgateDecision {
    /// 1: go on upstream; 0: answer locally.
    pub allow: c_int,
    /// 1: monitor mode let a denial through.
    pub monitored: c_int,
    /// 200 when allowed; the reply status otherwise.
    pub status: u16,
    /// The stable reason code.
    pub reason: AttestgateStr,
    /// The JSON reply body of a denial; empty when allowed.
    pub body: AttestgateStr,
    /// Allowed: request headers to remove.
    pub remove: *const AttestgateStr,
    /// How many.
    pub remove_len: usize,
    /// Allowed: request headers to set after removing; denied: the reply's headers.
    pub set: *const AttestgateHeader,
    /// How many.
    pub set_len: usize,
    /// The counters this decision increments (`attestgate.allowed`, `attestgate.denied` and
    /// `attestgate.denied.<reason>`, `attestgate.cache.hits`, ...): the names the Envoy filter
    /// counts, for the host to add up.
    pub counters: *const AttestgateStr,
    /// How many.
    pub counters_len: usize,
    /// The decision record (`attestgate_policy::record::DecisionRecord`) as one JSON object:
    /// what a host writes to its log (NGINX's `$attestgate_record`, Kong's serialized log).
    pub record: AttestgateStr,
    /// The record's fields as text, in `DecisionRecord::FIELDS` order (name, value): absent
    /// values empty, booleans `true` / `false`, policy reasons joined with `,`.
    pub record_fields: *const AttestgateHeader,
    /// How many.
    pub record_fields_len: usize,
}

/// A decision with the storage its views point into. `repr(C)` with the public part first, so
/// a pointer to the box is a pointer to the public part and back.
#[repr(C)]
struct DecisionBox {
    public: AttestgateDecision,
    // Heap storage that never moves while the box lives: the views above point into it.
    _reason: String,
    _body: String,
    _remove: Vec<String>,
    _remove_views: Vec<AttestgateStr>,
    _set: Vec<(String, String)>,
    _set_views: Vec<AttestgateHeader>,
    _counters: Vec<String>,
    _counter_views: Vec<AttestgateStr>,
    _record: String,
    _record_fields: Vec<(&'static str, String)>,
    _record_views: Vec<AttestgateHeader>,
}

/// An error message with its text (`repr(C)`, the view first).
#[repr(C)]
struct ErrorBox {
    public: AttestgateStr,
    _text: String,
}

/// Where a fetched document comes from (`attestgate_remote_source`), as the config says:
/// views into the gate, valid while it lives.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct AttestgateRemoteSource {
    /// `upstream`: `host:port` in NGINX and Kong.
    pub upstream: AttestgateStr,
    /// `authority`: the request's `Host`.
    pub authority: AttestgateStr,
    /// `path`: the request target.
    pub path: AttestgateStr,
    /// Seconds between fetches.
    pub refresh_seconds: u32,
    /// How long one fetch may take.
    pub timeout_ms: u32,
    /// The largest body accepted.
    pub max_bytes: usize,
}

/// A loaded gate with this worker's decision cache and fetched documents (`attestgate_gate`).
#[derive(Debug)]
pub struct AttestgateGate {
    gate: Gate,
    /// The load log line about its policy ([`attestgate_gate_policy_summary`]).
    policy_summary: String,
    cache: RefCell<DecisionCache>,
    /// The last good fetched JWKS and denylist.
    fetched: RefCell<Fetched>,
    thread: ThreadId,
}

/// What went wrong, for the caller.
#[derive(Debug)]
struct Failure {
    code: c_int,
    message: String,
}

impl Failure {
    fn new(code: c_int, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// The library's version, a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn attestgate_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Loads a gate from its JSON config: `*out` is the gate (free with [`attestgate_gate_free`]),
/// or NULL with an error code and, when `error` is not NULL, a message in `*error`.
///
/// # Safety
///
/// `config` points to `config_len` readable bytes (or is NULL with 0); `out` and `error`, when
/// not NULL, point to writable pointers.
#[no_mangle]
pub unsafe extern "C" fn attestgate_gate_new(
    config: *const c_char,
    config_len: usize,
    out: *mut *mut AttestgateGate,
    error: *mut *mut AttestgateStr,
) -> c_int {
    // SAFETY: the caller passes `error` NULL or writable (this function's contract).
    unsafe { clear_error(error) };
    if out.is_null() {
        // SAFETY: as above.
        return unsafe { fail(error, Failure::new(ATTESTGATE_ERR_NULL, "out is NULL")) };
    }
    // SAFETY: `out` is not NULL and the caller passes it writable.
    unsafe { out.write(std::ptr::null_mut()) };
    let result = guarded(|| {
        // SAFETY: the caller passes `config` valid for `config_len` bytes.
        let bytes = unsafe { bytes_of(config.cast(), config_len, MAX_CONFIG_BYTES, "config") }?;
        let text = std::str::from_utf8(bytes)
            .map_err(|err| Failure::new(ATTESTGATE_ERR_UTF8, format!("config: {err}")))?;
        // What this host cannot carry out is refused here, by the core's capability model.
        let mut gate = Gate::from_json_for(text, Host::Native)
            .map_err(|err| Failure::new(ATTESTGATE_ERR_CONFIG, err.to_string()))?;
        // ring's optimized arithmetic for ES256 and RS*: it passes the known answers like any
        // host verifier, so a report is not needed here.
        gate.use_host_verifier(Box::new(NativeVerifier));
        let entries = gate.config().cache.entries;
        let policy_summary = gate.policy_summary().unwrap_or_default();
        Ok(Box::new(AttestgateGate {
            policy_summary,
            gate,
            cache: RefCell::new(DecisionCache::new(entries)),
            fetched: RefCell::default(),
            thread: std::thread::current().id(),
        }))
    });
    match result {
        Ok(gate) => {
            // SAFETY: `out` is not NULL and writable (checked above).
            unsafe { out.write(Box::into_raw(gate)) };
            ATTESTGATE_OK
        }
        // SAFETY: `error` is NULL or writable.
        Err(failure) => unsafe { fail(error, failure) },
    }
}

/// The gate's load log line about its policy: which entrypoints run as a compiled plan and
/// which stay interpreted, with the construct and file:line that kept them so. Empty without a
/// policy (or for a NULL gate). The bytes live as long as the gate.
///
/// # Safety
///
/// `gate` is NULL or a live gate from [`attestgate_gate_new`].
#[no_mangle]
pub unsafe extern "C" fn attestgate_gate_policy_summary(
    gate: *const AttestgateGate,
) -> AttestgateStr {
    // SAFETY: the caller passes NULL or a live gate.
    match unsafe { gate.as_ref() } {
        Some(gate) => AttestgateStr::of(&gate.policy_summary),
        None => AttestgateStr::of(""),
    }
}

/// Frees a gate; NULL is fine.
///
/// # Safety
///
/// `gate` is NULL or came from [`attestgate_gate_new`] and is not used again.
#[no_mangle]
pub unsafe extern "C" fn attestgate_gate_free(gate: *mut AttestgateGate) {
    if gate.is_null() {
        return;
    }
    // SAFETY: `gate` came from `Box::into_raw` in `attestgate_gate_new` and is freed once.
    let gate = unsafe { Box::from_raw(gate) };
    // A destructor that panicked must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(gate)));
}

/// Whether the request must be decided on its body, and the most body bytes its route reads.
///
/// # Safety
///
/// `gate` is NULL or a live gate; `request` is NULL or points to a request whose strings and
/// header array are valid for their lengths; `needs_body` and `max_body_bytes` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn attestgate_needs_body(
    gate: *const AttestgateGate,
    request: *const AttestgateRequest,
    needs_body: *mut c_int,
    max_body_bytes: *mut usize,
) -> c_int {
    if needs_body.is_null() || max_body_bytes.is_null() {
        return ATTESTGATE_ERR_NULL;
    }
    let result = guarded(|| {
        // SAFETY: the caller passes `gate` NULL or live.
        let handle = unsafe { gate_of(gate) }?;
        // SAFETY: the caller passes `request` NULL or valid.
        let request = unsafe { request.as_ref() }
            .ok_or(Failure::new(ATTESTGATE_ERR_NULL, "request is NULL"))?;
        // SAFETY: the caller passes the request's strings and headers valid.
        let facts = unsafe { request_of(request) }?;
        Ok((
            handle.gate.needs_body(&facts),
            handle.gate.max_body_bytes(&facts),
        ))
    });
    match result {
        Ok((needs, max)) => {
            // SAFETY: both out pointers are not NULL (checked above) and writable.
            unsafe {
                needs_body.write(c_int::from(needs));
                max_body_bytes.write(max);
            }
            ATTESTGATE_OK
        }
        Err(failure) => failure.code,
    }
}

/// Decides a request through the gate's decision cache: `*out` is the decision (free with
/// [`attestgate_decision_free`]), or NULL with an error code (and message): the host must then
/// refuse the request.
///
/// # Safety
///
/// `gate` is NULL or a live gate; `request` is NULL or points to a request whose strings,
/// header array and (with `has_body`) body are valid for their lengths; `out` and `error` are
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn attestgate_decide(
    gate: *const AttestgateGate,
    request: *const AttestgateRequest,
    out: *mut *mut AttestgateDecision,
    error: *mut *mut AttestgateStr,
) -> c_int {
    // SAFETY: the caller passes `error` NULL or writable.
    unsafe { clear_error(error) };
    if out.is_null() {
        // SAFETY: as above.
        return unsafe { fail(error, Failure::new(ATTESTGATE_ERR_NULL, "out is NULL")) };
    }
    // SAFETY: `out` is not NULL and writable.
    unsafe { out.write(std::ptr::null_mut()) };
    let result = guarded(|| {
        // SAFETY: the caller passes `gate` NULL or live.
        let handle = unsafe { gate_of(gate) }?;
        // SAFETY: the caller passes `request` NULL or valid.
        let request = unsafe { request.as_ref() }
            .ok_or(Failure::new(ATTESTGATE_ERR_NULL, "request is NULL"))?;
        // SAFETY: the caller passes the request's strings and headers valid.
        let mut facts = unsafe { request_of(request) }?;
        if request.has_body != 0 {
            if request.body_len > MAX_BODY_BYTES {
                return Err(Failure::new(
                    ATTESTGATE_ERR_TOO_LARGE,
                    format!(
                        "body: {} bytes, over the cap of {MAX_BODY_BYTES}",
                        request.body_len
                    ),
                ));
            }
            // Only the route's cap and one byte more are read: enough to refuse a longer
            // body with body_too_large, as the filter decides it.
            let keep = request
                .body_len
                .min(handle.gate.max_body_bytes(&facts).saturating_add(1));
            // SAFETY: the caller passes `body` valid for `body_len` bytes, and `keep` is at
            // most that.
            let body = unsafe { bytes_of(request.body, keep, MAX_BODY_BYTES, "body") }?;
            facts.body = Some(body.to_vec());
        }
        let now = request.now;
        let mut cache = handle.cache.try_borrow_mut().map_err(|_| {
            Failure::new(
                ATTESTGATE_ERR_INTERNAL,
                "the gate is already deciding (re-entered)",
            )
        })?;
        let cache = cache.enabled().then_some(&mut *cache);
        let fetched = handle.fetched.try_borrow().map_err(|_| busy())?;
        let mut dynamic = fetched.dynamic();
        let (decision, action, outcome) =
            plan_request(&handle.gate, cache, &facts, now, &mut dynamic);
        let counters = counters(&handle.gate, &decision)
            .into_iter()
            .chain(cache_counter(outcome))
            .collect();
        let monitored =
            decision.allow && decision.mode == Mode::Monitor && decision.verdict == Verdict::Deny;
        let record = DecisionRecord::of(&decision, outcome);
        let record_json = serde_json::to_string(&record).map_err(|err| {
            Failure::new(
                ATTESTGATE_ERR_INTERNAL,
                format!("cannot write the decision record: {err}"),
            )
        })?;
        Ok(decision_box(
            Outcome {
                allow: decision.allow,
                monitored,
                status: decision.status,
                reason: decision.reason.as_str(),
            },
            action,
            counters,
            (record_json, record.text_fields().into()),
        ))
    });
    match result {
        Ok(decision) => {
            // SAFETY: `out` is not NULL and writable (checked above).
            unsafe { out.write(Box::into_raw(decision).cast::<AttestgateDecision>()) };
            ATTESTGATE_OK
        }
        // SAFETY: `error` is NULL or writable.
        Err(failure) => unsafe { fail(error, failure) },
    }
}

fn busy() -> Failure {
    Failure::new(
        ATTESTGATE_ERR_INTERNAL,
        "the gate is already in use (re-entered)",
    )
}

/// The document kind a C caller names.
fn kind_of(kind: c_int) -> Result<DocumentKind, Failure> {
    match kind {
        ATTESTGATE_DOC_JWKS => Ok(DocumentKind::Jwks),
        ATTESTGATE_DOC_DENYLIST => Ok(DocumentKind::Denylist),
        other => Err(Failure::new(
            ATTESTGATE_ERR_DOCUMENT,
            format!("unknown document kind {other} (1: JWKS, 2: denylist)"),
        )),
    }
}

/// Where the gate's document of `kind` (`ATTESTGATE_DOC_JWKS`, `ATTESTGATE_DOC_DENYLIST`) is
/// fetched from: `*present` is 1 and `*out` the source when the config has one, else
/// `*present` is 0. The strings point into the gate and live as long as it.
///
/// # Safety
///
/// `gate` is NULL or a live gate; `out` and `present` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn attestgate_gate_remote(
    gate: *const AttestgateGate,
    kind: c_int,
    out: *mut AttestgateRemoteSource,
    present: *mut c_int,
) -> c_int {
    if out.is_null() || present.is_null() {
        return ATTESTGATE_ERR_NULL;
    }
    let result = guarded(|| {
        // SAFETY: the caller passes `gate` NULL or live.
        let handle = unsafe { gate_of(gate) }?;
        Ok(kind_of(kind)?
            .source(handle.gate.config())
            .map(|source| AttestgateRemoteSource {
                upstream: AttestgateStr::of(&source.upstream),
                authority: AttestgateStr::of(&source.authority),
                path: AttestgateStr::of(&source.path),
                refresh_seconds: source.refresh_seconds,
                timeout_ms: source.timeout_ms,
                max_bytes: source.max_bytes,
            }))
    });
    match result {
        Ok(source) => {
            // SAFETY: both out pointers are not NULL (checked above) and writable.
            unsafe {
                present.write(c_int::from(source.is_some()));
                if let Some(source) = source {
                    out.write(source);
                }
            }
            ATTESTGATE_OK
        }
        Err(failure) => failure.code,
    }
}

/// Hands the gate a fetched document of `kind`: the body of a good response (status 200) to
/// the fetch its config describes. A JWKS with at least one usable key, or a denylist
/// `{"devices": [...]}`, replaces what the gate held, and the decision cache is emptied when
/// it differs from it; anything else (garbage, no usable key, more than the source's
/// `max_bytes`) is refused with `ATTESTGATE_ERR_DOCUMENT` and a message, and the gate keeps
/// its last good document. Keys a JWKS holds that this gate cannot use are skipped.
///
/// # Safety
///
/// `gate` is NULL or a live gate; `body` points to `body_len` readable bytes (or is NULL with
/// 0); `error` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn attestgate_gate_set_document(
    gate: *const AttestgateGate,
    kind: c_int,
    body: *const u8,
    body_len: usize,
    error: *mut *mut AttestgateStr,
) -> c_int {
    // SAFETY: the caller passes `error` NULL or writable.
    unsafe { clear_error(error) };
    let result = guarded(|| {
        // SAFETY: the caller passes `gate` NULL or live.
        let handle = unsafe { gate_of(gate) }?;
        let kind = kind_of(kind)?;
        // The source's max_bytes is checked by the core; MAX_DOCUMENT_BYTES caps the read.
        // SAFETY: the caller passes `body` valid for `body_len` bytes.
        let bytes = unsafe { bytes_of(body, body_len, MAX_DOCUMENT_BYTES, "document") }?;
        let mut fetched = handle.fetched.try_borrow_mut().map_err(|_| busy())?;
        let changed = fetched
            .accept(handle.gate.config(), kind, bytes)
            .map_err(|error| Failure::new(ATTESTGATE_ERR_DOCUMENT, error.to_string()))?
            .changed;
        if changed {
            // Nothing decided under the old document may be served under the new one.
            handle.cache.try_borrow_mut().map_err(|_| busy())?.clear();
        }
        Ok(())
    });
    match result {
        Ok(()) => ATTESTGATE_OK,
        // SAFETY: `error` is NULL or writable.
        Err(failure) => unsafe { fail(error, failure) },
    }
}

/// Frees a decision; NULL is fine.
///
/// # Safety
///
/// `decision` is NULL or came from [`attestgate_decide`] and is not used again.
#[no_mangle]
pub unsafe extern "C" fn attestgate_decision_free(decision: *mut AttestgateDecision) {
    if decision.is_null() {
        return;
    }
    // SAFETY: every decision handed out is a `Box<DecisionBox>` whose first field (repr(C))
    // is the public part, so the pointer is the box's; it is freed once.
    let decision = unsafe { Box::from_raw(decision.cast::<DecisionBox>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(decision)));
}

/// Frees an error message; NULL is fine.
///
/// # Safety
///
/// `string` is NULL or an error message from this library, not used again.
#[no_mangle]
pub unsafe extern "C" fn attestgate_string_free(string: *mut AttestgateStr) {
    if string.is_null() {
        return;
    }
    // SAFETY: every message handed out is a `Box<ErrorBox>` whose first field (repr(C)) is
    // the view, so the pointer is the box's; it is freed once.
    let string = unsafe { Box::from_raw(string.cast::<ErrorBox>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(string)));
}

/// Runs `body`, turning a panic into [`ATTESTGATE_ERR_INTERNAL`].
fn guarded<T>(body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        Err(Failure::new(
            ATTESTGATE_ERR_INTERNAL,
            "internal error in libattestgate (a panic was caught)",
        ))
    })
}

/// What was decided, for [`decision_box`].
struct Outcome<'a> {
    allow: bool,
    monitored: bool,
    status: u16,
    reason: &'a str,
}

/// Builds the decision the host reads; `record` is the decision record as JSON and as its
/// text fields.
fn decision_box(
    Outcome {
        allow,
        monitored,
        status,
        reason,
    }: Outcome<'_>,
    action: Action,
    counters: Vec<String>,
    record: (String, Vec<(&'static str, String)>),
) -> Box<DecisionBox> {
    let (record, record_fields) = record;
    let (status, body, remove, set) = match action {
        Action::Continue { remove, set } => (status, String::new(), remove, set),
        Action::Respond {
            status: reply,
            headers,
            body,
        } => (
            u16::try_from(reply).unwrap_or(500),
            body,
            Vec::new(),
            headers,
        ),
    };
    let reason = reason.to_owned();
    let remove_views: Vec<AttestgateStr> =
        remove.iter().map(|name| AttestgateStr::of(name)).collect();
    let set_views: Vec<AttestgateHeader> = set
        .iter()
        .map(|(name, value)| AttestgateHeader {
            name: AttestgateStr::of(name),
            value: AttestgateStr::of(value),
        })
        .collect();
    let counter_views: Vec<AttestgateStr> = counters
        .iter()
        .map(|name| AttestgateStr::of(name))
        .collect();
    let record_views: Vec<AttestgateHeader> = record_fields
        .iter()
        .map(|(name, value)| AttestgateHeader {
            name: AttestgateStr::of(name),
            value: AttestgateStr::of(value),
        })
        .collect();
    // The views point into heap buffers that moving the Strings and Vecs into the box does
    // not move.
    Box::new(DecisionBox {
        public: AttestgateDecision {
            allow: c_int::from(allow),
            monitored: c_int::from(monitored),
            status,
            reason: AttestgateStr::of(&reason),
            body: AttestgateStr::of(&body),
            remove: remove_views.as_ptr(),
            remove_len: remove_views.len(),
            set: set_views.as_ptr(),
            set_len: set_views.len(),
            counters: counter_views.as_ptr(),
            counters_len: counter_views.len(),
            record: AttestgateStr::of(&record),
            record_fields: record_views.as_ptr(),
            record_fields_len: record_views.len(),
        },
        _reason: reason,
        _body: body,
        _remove: remove,
        _remove_views: remove_views,
        _set: set,
        _set_views: set_views,
        _counters: counters,
        _counter_views: counter_views,
        _record: record,
        _record_fields: record_fields,
        _record_views: record_views,
    })
}

/// Sets `*error` to NULL.
///
/// # Safety
///
/// `error` is NULL or writable.
unsafe fn clear_error(error: *mut *mut AttestgateStr) {
    if !error.is_null() {
        // SAFETY: not NULL, and writable by this function's contract.
        unsafe { error.write(std::ptr::null_mut()) };
    }
}

/// Hands `failure`'s message out through `error` (when not NULL) and returns its code.
///
/// # Safety
///
/// `error` is NULL or writable.
unsafe fn fail(error: *mut *mut AttestgateStr, failure: Failure) -> c_int {
    if !error.is_null() {
        let text = failure.message;
        let boxed = Box::new(ErrorBox {
            public: AttestgateStr::of(&text),
            _text: text,
        });
        // SAFETY: not NULL, and writable by this function's contract.
        unsafe { error.write(Box::into_raw(boxed).cast::<AttestgateStr>()) };
    }
    failure.code
}

/// The gate behind a handle, on the thread that created it.
///
/// # Safety
///
/// `gate` is NULL or a live gate from [`attestgate_gate_new`].
unsafe fn gate_of<'g>(gate: *const AttestgateGate) -> Result<&'g AttestgateGate, Failure> {
    // SAFETY: NULL or live, by this function's contract.
    let handle =
        unsafe { gate.as_ref() }.ok_or(Failure::new(ATTESTGATE_ERR_NULL, "gate is NULL"))?;
    if handle.thread != std::thread::current().id() {
        return Err(Failure::new(
            ATTESTGATE_ERR_THREAD,
            "the gate was created on another thread: create one per thread (per worker)",
        ));
    }
    Ok(handle)
}

/// `len` bytes at `ptr`, at most `cap`.
///
/// # Safety
///
/// `ptr` is NULL or valid for `len` bytes that do not change while the slice lives.
unsafe fn bytes_of<'a>(
    ptr: *const u8,
    len: usize,
    cap: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::new(
            ATTESTGATE_ERR_NULL,
            format!("{what} is NULL with length {len}"),
        ));
    }
    if len > cap {
        return Err(Failure::new(
            ATTESTGATE_ERR_TOO_LARGE,
            format!("{what}: {len} bytes, over the cap of {cap}"),
        ));
    }
    // SAFETY: not NULL, valid for `len` bytes by this function's contract, and `len` is at
    // most `cap`, far below isize::MAX.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A field as text: lossy, as the proxy-wasm filter reads header bytes.
///
/// # Safety
///
/// As [`bytes_of`].
unsafe fn text_of(field: AttestgateStr, what: &str) -> Result<String, Failure> {
    // SAFETY: as this function's contract.
    let bytes = unsafe { bytes_of(field.ptr.cast(), field.len, MAX_FIELD_BYTES, what) }?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// The core's request from the host's (without the body), built by the same planning code
/// the filter uses (`request_facts`: pseudo-headers, a `host` header over the host, the port
/// stripped).
///
/// # Safety
///
/// The request's strings and header array are valid for their lengths.
unsafe fn request_of(request: &AttestgateRequest) -> Result<Request, Failure> {
    if request.headers_len > MAX_HEADERS {
        return Err(Failure::new(
            ATTESTGATE_ERR_TOO_LARGE,
            format!(
                "{} header fields, over the cap of {MAX_HEADERS}",
                request.headers_len
            ),
        ));
    }
    let fields: &[AttestgateHeader] = if request.headers_len == 0 {
        &[]
    } else if request.headers.is_null() {
        return Err(Failure::new(
            ATTESTGATE_ERR_NULL,
            "headers is NULL with a length",
        ));
    } else {
        // SAFETY: not NULL, valid for `headers_len` elements by the contract, and the count
        // is capped far below isize::MAX bytes.
        unsafe { std::slice::from_raw_parts(request.headers, request.headers_len) }
    };
    let mut headers = Vec::with_capacity(fields.len().saturating_add(3));
    // SAFETY: the request's strings are valid for their lengths by the contract.
    let method = unsafe { text_of(request.method, "method") }?;
    // SAFETY: as above.
    let path = unsafe { text_of(request.path, "path") }?;
    // SAFETY: as above.
    let host = unsafe { text_of(request.host, "host") }?;
    headers.push((":method".to_owned(), method));
    headers.push((":path".to_owned(), path));
    headers.push((":authority".to_owned(), host));
    for field in fields {
        // SAFETY: as above.
        let name = unsafe { text_of(field.name, "header name") }?;
        if name.starts_with(':') {
            // The host's pseudo-headers are the fields above, never a header's.
            continue;
        }
        // SAFETY: as above.
        let value = unsafe { text_of(field.value, "header value") }?;
        headers.push((name.to_ascii_lowercase(), value));
    }
    // SAFETY: as above.
    let address = unsafe {
        bytes_of(
            request.client_addr.ptr.cast(),
            request.client_addr.len,
            MAX_FIELD_BYTES,
            "client_addr",
        )
    }?;
    Ok(attestgate_policy::plan::request_facts(
        headers,
        (!address.is_empty()).then_some(address),
    ))
}

pub mod kong;

#[cfg(test)]
mod tests;
