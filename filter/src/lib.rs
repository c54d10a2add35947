//! attestgate as a proxy-wasm HTTP filter: glue between the host (Envoy, Kong) and the core.
//!
//! One root context per worker VM parses and compiles the config once in `on_configure` and
//! shares the [`Gate`] with every HTTP context. Per request the filter reads headers, asks
//! [`plan::plan`], and carries out the answer. It never panics into the host: every host call
//! is checked, and a failure denies with `internal_error` instead of trapping the VM.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use attestgate_policy::capability::Host;
use attestgate_policy::record::DecisionRecord;
use attestgate_policy::remote::{Denylist, Dynamic};
use attestgate_policy::{DecisionCache, Gate, KeySet, Reason};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

pub mod crypto;
pub mod held;
pub mod plan;
pub mod remote;

use plan::Action as Plan;

// The entry point the proxy-wasm ABI requires; the SDK's macro exports it.
#[allow(unsafe_code)]
mod entry {
    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
            Box::new(super::AttestRoot::new(context_id))
        });
    }}
}

/// Starts the debug line carrying a decision's JSON when `log_decisions` is on.
pub const DECISION_LOG_PREFIX: &str = "decision ";

fn log(level: LogLevel, message: &str) {
    // Nothing sensible is left to do if logging itself fails.
    let _ = hostcalls::log(level, message);
}

/// What a decision log samples a request by: Envoy's `x-request-id` (so every hop of a request
/// logs it or none does), else the host's clock in nanoseconds.
fn sample_key() -> String {
    match hostcalls::get_map_value(MapType::HttpRequestHeaders, "x-request-id") {
        Ok(Some(id)) if !id.is_empty() => id,
        _ => hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|t| t.as_nanos().to_string())
            .unwrap_or_default(),
    }
}

/// The id kept for a counter the host would not define.
const UNDEFINED: u32 = u32::MAX;

/// Counter ids by name: the fixed ones defined once per VM, a policy's reason counters
/// (`plan::counters`, a set the gate bounds at load) when first counted.
#[derive(Debug, Default)]
struct Metrics {
    ids: RefCell<HashMap<String, u32>>,
}

impl Metrics {
    fn define() -> Metrics {
        let metrics = Metrics::default();
        for name in plan::all_counter_names() {
            let _ = metrics.id(&name);
        }
        metrics
    }

    /// The id of `name`, defined now if it was not yet.
    fn id(&self, name: &str) -> Option<u32> {
        if let Some(id) = self.ids.try_borrow().ok()?.get(name) {
            return (*id != UNDEFINED).then_some(*id);
        }
        let defined = hostcalls::define_metric(MetricType::Counter, name);
        if let Err(status) = defined {
            // Logged once: the name is remembered as undefinable.
            log(
                LogLevel::Warn,
                &format!("cannot define metric {name}: {status:?}"),
            );
        }
        let id = defined.unwrap_or(UNDEFINED);
        self.ids.try_borrow_mut().ok()?.insert(name.to_owned(), id);
        (id != UNDEFINED).then_some(id)
    }

    fn is_empty(&self) -> bool {
        self.ids.try_borrow().map_or(true, |ids| ids.is_empty())
    }

    fn increment(&self, name: &str) {
        if let Some(id) = self.id(name) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

/// This worker's remote sources (JWKS, denylist), shared with its HTTP contexts.
#[derive(Debug, Default)]
struct RemoteState {
    sources: Vec<remote::Source>,
    /// Moves whenever a document changes, so cached answers from before are dropped.
    generation: u64,
}

impl RemoteState {
    fn documents(&self) -> (Option<Rc<KeySet>>, Option<Rc<Denylist>>) {
        let (mut keys, mut denylist) = (None, None);
        for source in &self.sources {
            match source.current() {
                Some(remote::Document::Keys(k)) => keys = Some(Rc::clone(k)),
                Some(remote::Document::Denylist(d)) => denylist = Some(Rc::clone(d)),
                None => {}
            }
        }
        (keys, denylist)
    }

    /// Picks up documents another worker stored since this one last looked; says whether
    /// any changed (the decision cache is then dropped).
    fn sync(&mut self) -> bool {
        let mut changed = false;
        for source in &mut self.sources {
            changed |= source.sync();
        }
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// Whether a JWKS has arrived (asked on every request of a gate with fetched keys, so
    /// without the `Rc` clones of [`RemoteState::documents`]).
    fn has_keys(&self) -> bool {
        self.sources
            .iter()
            .any(|s| matches!(s.current(), Some(remote::Document::Keys(_))))
    }

    /// Whether `gate` must wait for this worker's first JWKS: it has no other keys, none
    /// arrived yet, and this worker's fetch is on its way (see [`held`]).
    fn awaiting_first_keys(&self, gate: Option<&Gate>) -> bool {
        gate.is_some_and(Gate::waits_for_fetched_keys)
            && !self.has_keys()
            && self
                .sources
                .iter()
                .any(|s| s.kind() == remote::Kind::Keys && s.fetching())
    }
}

/// The worker's decision cache, and the remote documents' generation it was filled under.
#[derive(Debug)]
struct WorkerCache {
    cache: DecisionCache,
    generation: u64,
}

/// Per-worker state: the loaded gate, its decision cache, the counters and the remote sources.
#[derive(Default)]
struct AttestRoot {
    /// This root context's id, to act as again after acting as a held request.
    id: u32,
    gate: Option<Rc<Gate>>,
    cache: Option<Rc<RefCell<WorkerCache>>>,
    metrics: Rc<Metrics>,
    remote: Rc<RefCell<RemoteState>>,
    /// Why the config did not load, on a host that cannot refuse it (ngx_wasm_module): every
    /// request is then answered 500 `config_invalid`.
    config_error: Option<Rc<str>>,
    /// Which host this is, once known (asked at the first request).
    host: Rc<Cell<Option<HostKind>>>,
    /// The counter of decisions made under the current config (`attestgate.config.<id>`).
    config_counter: Option<u32>,
    /// Requests held for the first JWKS; kept across reconfigures.
    held: Rc<held::HeldRequests>,
}

/// The proxy-wasm hosts differ in what the filter must do for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostKind {
    /// Envoy: header removal is honoured; a pause at the request headers is resumed once the
    /// body is in (with `allow_on_headers_stop_iteration`); a refused config is refused at load.
    Envoy,
    /// ngx_wasm_module (Kong 3.4 to 3.10): removal does not reach `proxy_pass`; a pause at the
    /// request headers is never resumed; a refused config kills the worker.
    Ngx,
}

impl HostKind {
    /// The host as the core's capability model names it.
    fn capabilities(self) -> Host {
        match self {
            HostKind::Envoy => Host::Envoy,
            HostKind::Ngx => Host::KongWasm,
        }
    }

    /// In a request: ngx_wasm_module answers `ngx.*` properties (nginx variables), Envoy has
    /// none.
    fn in_request() -> HostKind {
        match hostcalls::get_property(vec!["ngx", "hostname"]) {
            Ok(Some(_)) => HostKind::Ngx,
            _ => HostKind::Envoy,
        }
    }

    /// On the root context: Envoy answers an unknown property with "not found";
    /// ngx_wasm_module refuses any scoped property outside a request.
    fn at_root() -> HostKind {
        match hostcalls::get_property(vec!["ngx", "hostname"]) {
            Ok(None) => HostKind::Envoy,
            _ => HostKind::Ngx,
        }
    }
}

fn unix_now() -> Option<i64> {
    let now = hostcalls::get_current_time().ok()?;
    i64::try_from(now.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()
}

impl AttestRoot {
    fn new(id: u32) -> AttestRoot {
        AttestRoot {
            id,
            ..AttestRoot::default()
        }
    }

    /// Picks up what other workers fetched and starts a fetch that is due; `first` on a new
    /// config: a source with no document then fetches at once.
    fn refresh_sources(&self, first: bool) {
        let Some(now) = unix_now() else { return };
        if let Ok(mut state) = self.remote.try_borrow_mut() {
            state.sync();
            for source in &mut state.sources {
                if first {
                    source.first_fetch(now);
                }
                source.maybe_fetch(now);
            }
        }
        self.settle_held();
    }

    /// An HTTP context of this worker (also a stand-in to decide a held request as).
    fn http_context(&self, context_id: u32) -> AttestHttp {
        AttestHttp {
            context_id,
            gate: self.gate.clone(),
            cache: self.cache.clone(),
            metrics: Rc::clone(&self.metrics),
            remote: Rc::clone(&self.remote),
            config_error: self.config_error.clone(),
            host: Rc::clone(&self.host),
            config_counter: self.config_counter,
            held: Rc::clone(&self.held),
            pending: None,
        }
    }

    /// Decides the held requests once there is no more reason to hold them: keys arrived,
    /// or no fetch is on its way (it failed or timed out: they get `keys_unavailable`), or
    /// the config changed to one that does not wait for fetched keys.
    fn settle_held(&self) {
        if self.held.is_empty() {
            return;
        }
        let still_waiting = self
            .remote
            .try_borrow()
            .is_ok_and(|state| state.awaiting_first_keys(self.gate.as_deref()));
        if still_waiting {
            return;
        }
        let held = self.held.take_all();
        let count = held.len();
        for request in held {
            // A stream that ended while held is gone; Envoy refuses to act as it.
            if hostcalls::set_effective_context(request.context_id).is_err() {
                continue;
            }
            let http = self.http_context(request.context_id);
            let action = http.decide_request(&request.request);
            if http.conclude(action) == Action::Continue {
                if let Err(status) = hostcalls::resume_http_request() {
                    log(
                        LogLevel::Warn,
                        &format!("cannot resume a held request: {status:?}"),
                    );
                }
            }
        }
        let _ = hostcalls::set_effective_context(self.id);
        log(
            LogLevel::Info,
            &format!("decided {count} request(s) held for the first JWKS"),
        );
    }
}

impl Context for AttestRoot {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(now) = unix_now() else { return };
        let Ok(mut state) = self.remote.try_borrow_mut() else {
            return;
        };
        let mut changed = false;
        for source in &mut state.sources {
            if source.owns(token_id) {
                let outcome = source.on_response(body_size, now);
                changed |= outcome == remote::FetchOutcome::Fetched;
                let name = match outcome {
                    remote::FetchOutcome::Fetched => "fetched",
                    remote::FetchOutcome::Failed => "fetch_failed",
                };
                self.metrics
                    .increment(&format!("attestgate.{}.{name}", source.kind().as_str()));
            }
        }
        if changed {
            state.generation += 1;
        }
        drop(state);
        self.settle_held();
    }
}

impl RootContext for AttestRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let mut config_id = String::new();
        let loaded = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => {
                    config_id = plan::config_id(&text);
                    // What this host cannot carry out (hybrid mode in ngx_wasm_module) is
                    // refused by the core's capability model.
                    Gate::from_json_for(&text, HostKind::at_root().capabilities())
                        .map_err(|err| err.to_string())
                }
                Err(_) => Err("invalid config: not UTF-8".to_owned()),
            },
            Ok(None) => Err("invalid config: no plugin configuration given".to_owned()),
            Err(status) => Err(format!("cannot read plugin configuration: {status:?}")),
        };
        match loaded {
            Ok(mut gate) => {
                self.config_error = None;
                let keys = gate.keys().keys().len();
                // Envoy checks signatures with BoringSSL when asked (its `verify_signature`);
                // ngx_wasm_module traps on a foreign function it lacks, so it is not asked.
                let verifier = match HostKind::at_root() {
                    HostKind::Envoy => {
                        let report = gate.use_host_verifier(Box::new(crypto::EnvoyVerifier));
                        format!("signatures: {report} (Envoy's {})", crypto::FUNCTION)
                    }
                    HostKind::Ngx => "signatures: every signature by the built-in verifier \
                                      (ngx_wasm_module has no verify_signature)"
                        .to_owned(),
                };
                log(LogLevel::Info, &verifier);
                if let Some(policy) = gate.policy_summary() {
                    log(LogLevel::Info, &policy);
                }
                // A new config starts an empty cache: nothing decided under the old one survives.
                let entries = gate.config().cache.entries;
                self.cache = (entries > 0).then(|| {
                    Rc::new(RefCell::new(WorkerCache {
                        cache: DecisionCache::new(entries),
                        generation: 0,
                    }))
                });
                let gate = Rc::new(gate);
                self.gate = Some(Rc::clone(&gate));
                // Once per VM: a reconfigure keeps the counters and their values.
                if self.metrics.is_empty() {
                    self.metrics = Rc::new(Metrics::define());
                }
                let mut sources = Vec::new();
                if let Some(config) = &gate.config().keys.remote {
                    sources.push(remote::Source::new(remote::Kind::Keys, config));
                }
                if let Some(config) = gate
                    .config()
                    .denylist
                    .as_ref()
                    .and_then(|d| d.remote.as_ref())
                {
                    sources.push(remote::Source::new(remote::Kind::Denylist, config));
                }
                let fetching = !sources.is_empty();
                // A reconfigure starts from what other workers already fetched.
                self.remote = Rc::new(RefCell::new(RemoteState {
                    sources,
                    generation: 0,
                }));
                if fetching {
                    if let Err(status) = hostcalls::set_tick_period(Duration::from_secs(1)) {
                        log(
                            LogLevel::Critical,
                            &format!("cannot set a tick: {status:?}"),
                        );
                        return false;
                    }
                    self.refresh_sources(true);
                }
                // Which config answers: a counter per config, and the id in the log.
                let name = format!("attestgate.config.{config_id}");
                self.config_counter = hostcalls::define_metric(MetricType::Counter, &name).ok();
                log(
                    LogLevel::Info,
                    &format!("configured with {keys} key(s) (config {config_id})"),
                );
                true
            }
            Err(err) => {
                let line = if config_id.is_empty() {
                    err.clone()
                } else {
                    format!("{err} (config {config_id})")
                };
                log(LogLevel::Critical, &line);
                if HostKind::at_root() == HostKind::Envoy {
                    // Fail closed: Envoy refuses the config and keeps serving the last good one.
                    return false;
                }
                self.gate = None;
                self.cache = None;
                // ngx_wasm_module kills the worker on a refused config, taking every location
                // down: keep the worker and answer every request of this filter 500 instead.
                self.host.set(Some(HostKind::Ngx));
                if self.metrics.is_empty() {
                    self.metrics = Rc::new(Metrics::define());
                }
                self.config_error = Some(Rc::from(err));
                log(
                    LogLevel::Critical,
                    "every request of this filter is answered 500 config_invalid until the config is fixed",
                );
                true
            }
        }
    }

    fn on_tick(&mut self) {
        self.refresh_sources(false);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(self.http_context(context_id)))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AttestHttp {
    context_id: u32,
    gate: Option<Rc<Gate>>,
    cache: Option<Rc<RefCell<WorkerCache>>>,
    metrics: Rc<Metrics>,
    remote: Rc<RefCell<RemoteState>>,
    config_error: Option<Rc<str>>,
    host: Rc<Cell<Option<HostKind>>>,
    config_counter: Option<u32>,
    held: Rc<held::HeldRequests>,
    /// Request facts waiting for the body: a signature the request carries covers
    /// `content-digest`.
    pending: Option<attestgate_policy::Request>,
}

impl Context for AttestHttp {}

impl Drop for AttestHttp {
    fn drop(&mut self) {
        self.held.release(self.context_id);
    }
}

impl HttpContext for AttestHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if let Some(problem) = &self.config_error {
            log(
                LogLevel::Error,
                &format!("config_invalid: the filter's config did not load: {problem}"),
            );
            self.count_denial(Reason::ConfigInvalid);
            return carry_out(plan::host_refusal(Reason::ConfigInvalid, &[]));
        }
        let action = match self.headers_stage(end_of_stream) {
            Ok(Hold::Pause) => return Action::Pause, // Envoy: decided once the body is in
            Ok(Hold::Continue) => return Action::Continue, // ngx: decided at the body
            Ok(Hold::Decided(plan)) => Ok(plan),
            Err(problem) => Err(problem),
        };
        self.conclude(action)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.held.is_held(self.context_id) {
            return Action::Pause; // decided when the keys arrive; the body waits with it
        }
        if self.pending.is_none() {
            return Action::Continue;
        }
        let limit = self.body_cap();
        if body_size > limit {
            // Over the route's cap: decided on the first limit + 1 bytes (the gate refuses
            // them with body_too_large), never buffered further.
            return self.finish(limit.saturating_add(1));
        }
        if !end_of_stream {
            return Action::Pause; // the host buffers until the end of the stream
        }
        self.finish(body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.held.is_held(self.context_id) {
            return Action::Pause;
        }
        // Trailers end the stream without an end-of-stream body callback: decide on the body
        // buffered so far (untested in Envoy: trailer-bearing requests are rare on such routes).
        self.finish(self.body_cap().saturating_add(1))
    }
}

impl AttestHttp {
    /// Carries out a plan; a failure inside the filter fails closed with `internal_error`.
    fn conclude(&self, action: Result<Plan, String>) -> Action {
        let action = match action {
            Ok(action) => action,
            Err(problem) => {
                log(LogLevel::Error, &format!("internal error: {problem}"));
                self.metrics.increment(plan::ERRORS);
                plan::internal_error()
            }
        };
        match (self.host(), action) {
            (HostKind::Ngx, Plan::Continue { remove, set }) => self.replace_headers(&remove, &set),
            (_, action) => carry_out(action),
        }
    }

    /// ngx_wasm_module: an allowed request's headers replaced in place (removal does not reach
    /// nginx's proxy module); refused before anything is changed when a gate header came more
    /// than once, since its extra copies would reach the upstream.
    fn replace_headers(&self, remove: &[String], set: &[(String, String)]) -> Action {
        let current = match request_headers() {
            Ok(headers) => headers,
            Err(problem) => return fail_closed(&problem),
        };
        let edits = match plan::replace_in_place(&current, remove, set) {
            Ok(edits) => edits,
            Err(name) => {
                self.report_host_refusal(Reason::DuplicateHeader);
                log(
                    LogLevel::Info,
                    &format!("header `{name}` came more than once: refused (duplicate_header)"),
                );
                return carry_out(plan::host_refusal(
                    Reason::DuplicateHeader,
                    &["a header the gateway sets came more than once"],
                ));
            }
        };
        for (name, value) in &edits {
            if let Err(status) =
                hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
            {
                return fail_closed(&format!("replacing header {name}: {status:?}"));
            }
        }
        Action::Continue
    }

    /// Decides a held request once its body is complete.
    fn finish(&mut self, body_size: usize) -> Action {
        let Some(mut request) = self.pending.take() else {
            return Action::Continue;
        };
        let action = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size) {
            Ok(None) if body_size > 0 => Err(format!(
                "the host holds a {body_size}-byte body the filter cannot read (nginx: raise \
                 client_body_buffer_size to at least max_body_bytes, so it is not buffered to a file)"
            )),
            Ok(body) => {
                request.body = Some(body.unwrap_or_default());
                let Some(request) = self.hold_for_keys(request) else {
                    return Action::Pause;
                };
                self.decide_request(&request)
            }
            Err(status) => Err(format!("reading the request body: {status:?}")),
        };
        self.conclude(action)
    }

    /// Most body bytes the held request's route reads (0 with nothing held).
    fn body_cap(&self) -> usize {
        match (&self.gate, &self.pending) {
            (Some(gate), Some(request)) => gate.max_body_bytes(request),
            _ => 0,
        }
    }

    /// Which host this is: asked once per worker, at its first request.
    fn host(&self) -> HostKind {
        match self.host.get() {
            Some(kind) => kind,
            None => {
                let kind = HostKind::in_request();
                self.host.set(Some(kind));
                kind
            }
        }
    }

    /// Decides at the request headers, or holds the request when it must be decided on its
    /// body: a signature it carries covers `content-digest` on a route that checks signatures.
    /// Envoy holds it paused there; ngx_wasm_module never resumes a pause at the headers, so
    /// there the request goes on to its body callback (which nginx runs before it connects to
    /// the upstream), and only a request with a `Content-Length` can be held: the callback
    /// never comes for an empty chunked body.
    fn headers_stage(&mut self, end_of_stream: bool) -> Result<Hold, String> {
        let gate = Rc::clone(self.gate.as_ref().ok_or("no gate configured")?);
        let headers = request_headers()?;
        let mut request = plan::request_facts(headers, source_address(&gate).as_deref());
        if gate.needs_body(&request) {
            match self.host() {
                HostKind::Envoy if !end_of_stream => {
                    self.pending = Some(request);
                    return Ok(Hold::Pause);
                }
                HostKind::Envoy => request.body = Some(Vec::new()),
                HostKind::Ngx => match body_length(&request) {
                    BodyLength::Known(0) | BodyLength::None => request.body = Some(Vec::new()),
                    BodyLength::Known(_) => {
                        self.pending = Some(request);
                        return Ok(Hold::Continue);
                    }
                    BodyLength::Unknown => {
                        self.report_host_refusal(Reason::LengthRequired);
                        return Ok(Hold::Decided(plan::host_refusal(
                            Reason::LengthRequired,
                            &["a signed body needs a content-length on this gateway"],
                        )));
                    }
                },
            }
        }
        let Some(request) = self.hold_for_keys(request) else {
            return Ok(Hold::Pause);
        };
        self.decide_facts(&gate, &request, now()?)
            .map(Hold::Decided)
    }

    /// Holds the request for the worker's first JWKS when it must wait (Envoy only, see
    /// [`held`]); gives it back to be decided now otherwise, or when the worker holds its
    /// most already.
    fn hold_for_keys(
        &self,
        request: attestgate_policy::Request,
    ) -> Option<attestgate_policy::Request> {
        let gate = self.gate.as_deref();
        let must_wait = self.remote.try_borrow_mut().is_ok_and(|mut state| {
            if !gate.is_some_and(Gate::waits_for_fetched_keys) || state.has_keys() {
                return false;
            }
            // Another worker's fetch may have landed since this worker's last tick.
            state.sync();
            state.awaiting_first_keys(gate)
        });
        if must_wait && self.host() == HostKind::Envoy {
            return self.held.hold(self.context_id, request);
        }
        Some(request)
    }

    /// The denial counters of a refusal the filter makes itself.
    fn count_denial(&self, reason: Reason) {
        for name in plan::refusal_counters(reason) {
            self.metrics.increment(&name);
        }
    }

    fn report_host_refusal(&self, reason: Reason) {
        self.count_denial(reason);
        log(
            LogLevel::Debug,
            &format!("deny {} reason={reason}", reason.default_status()),
        );
    }

    /// Decides request facts gathered with the body.
    fn decide_request(&self, request: &attestgate_policy::Request) -> Result<Plan, String> {
        let gate = self.gate.as_ref().ok_or("no gate configured")?;
        self.decide_facts(gate, request, now()?)
    }

    /// Decides with what this worker holds: fetched keys and denylist, shared rate-limit
    /// buckets, and the decision cache (emptied when a fetched document changed).
    fn decide_facts(
        &self,
        gate: &Gate,
        request: &attestgate_policy::Request,
        now: i64,
    ) -> Result<Plan, String> {
        let (keys, denylist, generation) = match self.remote.try_borrow() {
            Ok(state) => {
                let (keys, denylist) = state.documents();
                (keys, denylist, state.generation)
            }
            Err(_) => return Err("remote state busy".to_owned()),
        };
        let mut limiter = remote::SharedLimiter::default();
        let host_verified = gate
            .config()
            .host_verification
            .as_ref()
            .and_then(host_record);
        let mut dynamic = Dynamic {
            remote_keys: keys.as_deref(),
            denylist: denylist.as_deref(),
            limiter: Some(&mut limiter),
            host_verified,
        };
        // The cache is shared by this worker's requests, one at a time; should it ever be
        // borrowed already, decide without it rather than panic.
        let mut cache = self.cache.as_ref().and_then(|c| c.try_borrow_mut().ok());
        if let Some(worker) = cache.as_deref_mut() {
            if worker.generation != generation {
                worker.cache.clear();
                worker.generation = generation;
            }
        }
        let (decision, action, outcome) = plan::plan_request(
            gate,
            cache.as_deref_mut().map(|worker| &mut worker.cache),
            request,
            now,
            &mut dynamic,
        );
        drop(cache);
        let action = plan::without_absent_removals(action, request);
        if decision.reason == attestgate_policy::Reason::KeyNotFound {
            if let Ok(state) = self.remote.try_borrow() {
                for source in &state.sources {
                    if source.kind() == remote::Kind::Keys {
                        source.request_early_fetch(now);
                    }
                }
            }
        }
        self.report(gate, &decision, outcome);
        if let Some(id) = self.config_counter {
            let _ = hostcalls::increment_metric(id, 1);
        }
        Ok(action)
    }

    /// Counters, logs and (in Envoy) the stream's filter state for a decision.
    fn report(
        &self,
        gate: &Gate,
        decision: &attestgate_policy::Decision,
        outcome: attestgate_policy::CacheOutcome,
    ) {
        for name in plan::counters(gate, decision)
            .into_iter()
            .chain(plan::cache_counter(outcome))
        {
            self.metrics.increment(&name);
        }
        if self.host() == HostKind::Envoy {
            write_filter_state(
                &DecisionRecord::of(decision, outcome),
                &gate.config().record_fields,
            );
        }
        if gate.config().log_decisions {
            if let Some(json) = plan::decision_log_line(gate.config(), decision, &sample_key()) {
                log(LogLevel::Debug, &format!("{DECISION_LOG_PREFIX}{json}"));
            }
        }
        if !decision.allow || decision.verdict == attestgate_policy::Verdict::Deny {
            let mut line = format!(
                "{} {} reason={} mode={}",
                if decision.allow {
                    "monitored-deny"
                } else {
                    "deny"
                },
                decision.status,
                decision.reason,
                decision.mode.as_str(),
            );
            if let Some(detail) = &decision.detail {
                line.push_str(&format!(" detail={detail}"));
            }
            log(LogLevel::Debug, &line);
        }
    }
}

/// Envoy: the decision's record into the stream's filter state (`wasm.attestgate.*`, see
/// [`plan::filter_state`]), for the access log and later filters (RBAC). Written before the
/// filter answers or lets the request on, so a denial's local reply carries it too. A value
/// the host refuses is skipped: the record is for the operators, the decision stands.
/// ngx_wasm_module has no such store (its `set_property` takes nginx variables and its own
/// `wasmx.` namespace only), so the filter does not write it there.
fn write_filter_state(record: &DecisionRecord, fields: &[attestgate_policy::RecordField]) {
    for (key, value) in plan::filter_state(record, fields) {
        if let Err(status) = hostcalls::set_property(vec![key.as_str()], Some(value.as_bytes())) {
            log(
                LogLevel::Debug,
                &format!("cannot set filter state {key}: {status:?}"),
            );
        }
    }
}

/// The request headers. Values as bytes: HTTP/1 lets a value carry any byte but NUL, CR and
/// LF, and `get_map` panics on one that is not UTF-8, which takes the worker's VM down for
/// every later request. Such a value is decoded lossily: it then matches no token, binding or
/// policy string, so it can only lead to a denial. A valid value keeps its bytes (lossy
/// decoding walks a value byte by byte: a quarter of a cached request's work in wasm).
fn request_headers() -> Result<Vec<(String, String)>, String> {
    Ok(hostcalls::get_map_bytes(MapType::HttpRequestHeaders)
        .map_err(|status| format!("reading request headers: {status:?}"))?
        .into_iter()
        .map(|(name, value)| {
            let value = String::from_utf8(value)
                .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned());
            (name, value)
        })
        .collect())
}

/// Hybrid mode: what the gateway's verifier (Envoy's jwt_authn) recorded in the stream's
/// dynamic metadata for this request, read as `metadata.filter_metadata.<filter>.<key>`.
/// `None` when it recorded nothing. Envoy hands a number leaf over as 8 little-endian bytes of
/// an f64 (a string leaf as its text).
fn host_record(
    config: &attestgate_policy::HostVerification,
) -> Option<attestgate_policy::remote::HostVerified> {
    let payload = [
        "metadata",
        "filter_metadata",
        config.filter.as_str(),
        config.payload_in_metadata.as_str(),
    ];
    let leaf = |path: Vec<&str>| hostcalls::get_property(path).ok().flatten();
    let exp = leaf([payload.as_slice(), &["exp"]].concat()).and_then(|bytes| {
        match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(raw) => Some(f64::from_le_bytes(raw)),
            Err(_) => std::str::from_utf8(&bytes).ok()?.trim().parse().ok(),
        }
    });
    if exp.is_some() {
        return Some(attestgate_policy::remote::HostVerified { exp });
    }
    let present = leaf(payload.to_vec()).is_some_and(|bytes| !bytes.is_empty());
    present.then_some(attestgate_policy::remote::HostVerified { exp: None })
}

/// The client's address (`source.address`), when a decision can depend on it: in Envoy the
/// property costs about as much as reading all the request headers.
fn source_address(gate: &Gate) -> Option<Vec<u8>> {
    if !gate.needs_source_ip() {
        return None;
    }
    hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
}

/// The host's clock, unix seconds.
fn now() -> Result<i64, String> {
    let now = hostcalls::get_current_time()
        .map_err(|status| format!("reading the clock: {status:?}"))?
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "clock before 1970".to_owned())?
        .as_secs();
    i64::try_from(now).map_err(|_| "clock out of range".to_owned())
}

/// What the headers callback does with a request.
enum Hold {
    /// Decided: carry this out.
    Decided(Plan),
    /// Envoy: paused at the headers until the body is in.
    Pause,
    /// ngx_wasm_module: let the request on to its body callback, which decides.
    Continue,
}

/// What the request says of its body.
enum BodyLength {
    /// `Content-Length: N`.
    Known(u64),
    /// Neither `Content-Length` nor `Transfer-Encoding`: no body.
    None,
    /// `Transfer-Encoding` without `Content-Length` (or an unreadable length).
    Unknown,
}

fn body_length(request: &attestgate_policy::Request) -> BodyLength {
    let mut lengths = request.header_values("content-length");
    match (lengths.next(), lengths.next()) {
        (Some(length), None) => match length.trim().parse() {
            Ok(length) => BodyLength::Known(length),
            Err(_) => BodyLength::Unknown,
        },
        (Some(_), Some(_)) => BodyLength::Unknown,
        (None, _) if request.header_values("transfer-encoding").next().is_some() => {
            BodyLength::Unknown
        }
        (None, _) => BodyLength::None,
    }
}

fn carry_out(action: Plan) -> Action {
    match action {
        Plan::Continue { remove, set } => {
            for name in &remove {
                if let Err(status) = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
                {
                    return fail_closed(&format!("removing header {name}: {status:?}"));
                }
            }
            for (name, value) in &set {
                if let Err(status) =
                    hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value))
                {
                    return fail_closed(&format!("setting header {name}: {status:?}"));
                }
            }
            Action::Continue
        }
        Plan::Respond {
            status,
            headers,
            body,
        } => {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            if let Err(err) = hostcalls::send_http_response(status, headers, Some(body.as_bytes()))
            {
                log(LogLevel::Error, &format!("cannot send the reply: {err:?}"));
            }
            Action::Pause
        }
    }
}

/// A header we must strip or set could not be: the request must not go on half-processed.
fn fail_closed(problem: &str) -> Action {
    log(LogLevel::Error, &format!("internal error: {problem}"));
    carry_out(plan::internal_error())
}
