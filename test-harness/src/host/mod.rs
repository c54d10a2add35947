//! A proxy-wasm host on wasmtime that runs the filter `.wasm` exactly as it ships.
//!
//! [`Host`] holds what is built once: the wasmtime `Engine`, the `Linker` with every host
//! function, and the compiled `Module`. Each [`Vm`] is one worker's instance with all of its
//! mutable state (headers, properties, timers, pending http calls, metrics, logs, the local
//! response) in its own `Store`; there are no globals, so tests run in parallel and several
//! VMs can share one [`SharedData`] like Envoy workers do.
//!
//! Two profiles: [`Profile::Envoy`] answers as Envoy does; [`Profile::Kong`] as Kong's
//! ngx_wasm_module (at the commit Kong 3.10 pins) was seen to do in a real host:
//! - calls it stubs trap with "function not yet implemented" (`proxy_get_log_level`,
//!   `proxy_done`, `proxy_close_stream`, `proxy_continue_response`, `proxy_get_status`,
//!   `proxy_resolve_shared_queue`, gRPC); `proxy_continue_stream` of a response is an error;
//! - a removed request header is hidden from the filter but still forwarded by nginx's proxy
//!   module ([`Vm::request_headers_of`] is what it forwards); replace changes a header that came
//!   once in place, and on a repeated one leaves the later copies on the way upstream;
//! - the headers callback always has end_of_stream false; a pause there is never resumed (the
//!   request hangs: [`HttpOutcome::hung`]); the body callback comes once, with the whole body,
//!   only for a non-empty body the headers callback let on;
//! - `on_configure` refusing the config kills the worker (the VM fails for good);
//! - `:authority` is the server's own name and port, the client's Host a header; properties
//!   are strings, `source.address` has no port, and scoped properties fail outside a request;
//! - http calls name `host:port` instead of a cluster; header names keep their case;
//! - a foreign function other than `resolve_lua` traps ("unknown foreign function"): there is
//!   no `verify_signature`. The `envoy` profile answers `verify_signature` as Envoy does
//!   ([`HostOptions::verify_signature`]).
//!
//! ```no_run
//! use attestgate_harness::host::{Host, HostOptions, HttpRequest, Profile};
//!
//! let host = Host::from_file("build/attestgate.wasm", HostOptions::new(Profile::Envoy))?;
//! let mut vm = host.vm(br#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).start()?;
//! let outcome = vm.send(&HttpRequest::get("/v1/shapes"))?;
//! let reply = outcome.local_response.expect("no token: denied");
//! assert_eq!(reply.status, 401);
//! # Ok::<(), anyhow::Error>(())
//! ```

mod abi;
mod cache;
mod foreign;
mod state;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, bail, Context as _, Result};
use rand::SeedableRng;
use wasmtime::{
    Config, Engine, Instance, InstancePre, Linker, Store, StoreLimitsBuilder, TypedFunc,
};

pub use foreign::VerifySignature;
pub use state::SharedData;
use state::{CallResponse, HostState, Stream};

/// Which gateway the host behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// Envoy's proxy-wasm host (V8 or wasmtime runtime).
    Envoy,
    /// Kong 3.4–3.10's ngx_wasm_module.
    Kong,
}

impl Profile {
    /// Both profiles, for tests that must pass under each.
    pub const ALL: [Profile; 2] = [Profile::Envoy, Profile::Kong];

    /// `envoy` or `kong`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Envoy => "envoy",
            Profile::Kong => "kong",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Profile> {
        match s {
            "envoy" => Ok(Profile::Envoy),
            "kong" => Ok(Profile::Kong),
            other => bail!("unknown profile `{other}` (expected envoy or kong)"),
        }
    }
}

/// Limits and behaviour fixed for every VM of a [`Host`].
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The gateway to behave like.
    pub profile: Profile,
    /// Fuel (about one unit per wasm instruction) each call into the guest may burn; a
    /// runaway guest traps with "all fuel consumed" instead of hanging the test.
    pub fuel_per_call: u64,
    /// Upper bound on a VM's linear memory.
    pub max_memory_bytes: usize,
    /// How the `envoy` profile answers the `verify_signature` foreign function (the `kong`
    /// profile traps on every foreign function but `resolve_lua`, as ngx_wasm_module does).
    pub verify_signature: VerifySignature,
}

impl HostOptions {
    /// Defaults for `profile`: 20 billion fuel per call (seconds of work), 512 MiB of memory.
    pub fn new(profile: Profile) -> HostOptions {
        HostOptions {
            profile,
            fuel_per_call: 20_000_000_000,
            max_memory_bytes: 512 << 20,
            verify_signature: VerifySignature::Checks,
        }
    }
}

/// A proxy-wasm log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// trace
    Trace = 0,
    /// debug
    Debug = 1,
    /// info
    Info = 2,
    /// warn
    Warn = 3,
    /// error
    Error = 4,
    /// critical
    Critical = 5,
}

impl LogLevel {
    fn from_i32(level: i32) -> LogLevel {
        match level {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => LogLevel::Critical,
        }
    }
}

/// One line the guest logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level.
    pub level: LogLevel,
    /// The context it was logged for.
    pub context: u32,
    /// The text.
    pub message: String,
}

/// A reply the filter sent instead of letting the request through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status.
    pub status: u32,
    /// Envoy's response code details.
    pub details: String,
    /// Reply headers.
    pub headers: Vec<(String, String)>,
    /// Reply body.
    pub body: Vec<u8>,
    /// gRPC status, -1 for none.
    pub grpc_status: i32,
}

impl LocalResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// An http call the guest dispatched and the test has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingHttpCall {
    /// The token the guest got back.
    pub token: u32,
    /// The context that made the call.
    pub context: u32,
    /// Cluster name (Envoy) or `host:port` (Kong).
    pub upstream: String,
    /// Request headers, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: Vec<(String, String)>,
    /// The guest's timeout.
    pub timeout_ms: u32,
}

/// The answer to give a pending http call.
#[derive(Debug, Clone, Default)]
pub struct HttpCallResponse {
    /// Response headers; include `:status`.
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// Response trailers.
    pub trailers: Vec<(String, String)>,
}

impl HttpCallResponse {
    /// A response with this status and body.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> HttpCallResponse {
        HttpCallResponse {
            headers: vec![(":status".to_owned(), status.to_string())],
            body: body.into(),
            trailers: Vec::new(),
        }
    }
}

/// What the guest answered to a callback that returns an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Go on with the stream.
    Continue,
    /// Stop iteration (a local reply was sent, or the filter waits for something).
    Pause,
}

/// A downstream request to script through the filter.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `:method`
    pub method: String,
    /// `:path`, query included.
    pub path: String,
    /// `:authority`
    pub authority: String,
    /// `:scheme`
    pub scheme: String,
    /// Headers in order; names as the client sent them.
    pub headers: Vec<(String, String)>,
    /// Body; empty means the headers end the stream.
    pub body: Vec<u8>,
    /// Client address with port, the `source.address` property (`None`: the host offers none).
    pub source_address: Option<String>,
    /// Extra properties by path.
    pub properties: Vec<(Vec<String>, Vec<u8>)>,
}

impl HttpRequest {
    /// A request with no headers from 127.0.0.1.
    pub fn new(method: &str, path: &str) -> HttpRequest {
        HttpRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            authority: "api.example.com".to_owned(),
            scheme: "https".to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            source_address: Some("127.0.0.1:50000".to_owned()),
            properties: Vec::new(),
        }
    }

    /// A GET request.
    pub fn get(path: &str) -> HttpRequest {
        HttpRequest::new("GET", path)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> HttpRequest {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> HttpRequest {
        self.body = body.into();
        self
    }

    /// Sets `:authority`.
    pub fn authority(mut self, authority: &str) -> HttpRequest {
        self.authority = authority.to_owned();
        self
    }

    /// Adds the record Envoy's `jwt_authn` leaves in the stream's dynamic metadata when it
    /// verified a token with `payload_in_metadata: <payload_key>`: here the payload's `exp`,
    /// as Envoy hands a number leaf over (the 8 little-endian bytes of an f64).
    pub fn jwt_authn_record(mut self, payload_key: &str, exp: f64) -> HttpRequest {
        let path = [
            "metadata",
            "filter_metadata",
            "envoy.filters.http.jwt_authn",
            payload_key,
            "exp",
        ];
        self.properties.push((
            path.iter().map(|p| (*p).to_owned()).collect(),
            exp.to_le_bytes().to_vec(),
        ));
        self
    }

    /// Sets the client address (`ip:port`).
    pub fn source(mut self, address: &str) -> HttpRequest {
        self.source_address = Some(address.to_owned());
        self
    }
}

/// What came of one request.
#[derive(Debug, Clone)]
pub struct HttpOutcome {
    /// The filter's answer to the request headers (or to the body, if it had one).
    pub action: Action,
    /// The reply the filter sent, if it answered locally.
    pub local_response: Option<LocalResponse>,
    /// The request headers as they would go upstream, after the filter's changes.
    pub upstream_headers: Vec<(String, String)>,
    /// Lines logged while the request ran.
    pub logs: Vec<LogLine>,
    /// Envoy: the stream's filter state the filter wrote (`set_property`), by the key Envoy
    /// files it under (`wasm.` + the property path), as the access log's `%FILTER_STATE%` and
    /// RBAC's `filter_state` matcher read it. Empty under the Kong profile.
    pub filter_state: BTreeMap<String, Vec<u8>>,
    /// Kong: the filter paused the request and the host never resumes it (the client times
    /// out).
    pub hung: bool,
}

impl HttpOutcome {
    /// True if the request would reach the upstream.
    pub fn reached_upstream(&self) -> bool {
        !self.hung && self.action == Action::Continue && self.local_response.is_none()
    }

    /// The first upstream header value by case-insensitive name.
    pub fn upstream_header(&self, name: &str) -> Option<&str> {
        find_header(&self.upstream_headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The engine, linker and compiled module: built once, shared by every VM.
#[derive(Clone)]
pub struct Host {
    engine: Engine,
    pre: InstancePre<HostState>,
    options: HostOptions,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Compiles a filter module. Fails if it imports a function this host does not provide,
    /// naming it.
    pub fn new(wasm: &[u8], options: HostOptions) -> Result<Host> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| anyhow!(e))?;
        let module = cache::compile(&engine, wasm)
            .map_err(|e| anyhow!(e))
            .context("compiling the filter")?;
        let mut linker = Linker::new(&engine);
        abi::define(&mut linker).map_err(|e| anyhow!(e))?;
        // Resolving every import now makes an unknown one fail here, with its name, and
        // makes each VM's instantiation cheap.
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| anyhow!(e))
            .context("linking the filter's imports")?;
        Ok(Host {
            engine,
            pre,
            options,
        })
    }

    /// Reads and compiles a filter file.
    pub fn from_file(path: impl AsRef<Path>, options: HostOptions) -> Result<Host> {
        let path = path.as_ref();
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Host::new(&wasm, options).with_context(|| format!("loading {}", path.display()))
    }

    /// The host's profile.
    pub fn profile(&self) -> Profile {
        self.options.profile
    }

    /// Starts describing a VM whose plugin configuration is `config`.
    pub fn vm(&self, config: &[u8]) -> VmBuilder<'_> {
        VmBuilder {
            host: self,
            plugin_config: config.to_vec(),
            vm_config: Vec::new(),
            clock: SystemTime::now(),
            shared: SharedData::new(),
            clusters: Vec::new(),
            log_level: LogLevel::Info,
        }
    }
}

/// A VM about to start: set the clock, shared data and known upstreams, then [`start`](Self::start).
#[derive(Debug)]
pub struct VmBuilder<'h> {
    host: &'h Host,
    plugin_config: Vec<u8>,
    vm_config: Vec<u8>,
    clock: SystemTime,
    shared: SharedData,
    clusters: Vec<String>,
    log_level: LogLevel,
}

impl VmBuilder<'_> {
    /// The wall clock the guest sees, in unix seconds (default: now). It only moves when the
    /// test calls [`Vm::advance`].
    pub fn now(mut self, unix_seconds: i64) -> Self {
        self.clock = unix_time(unix_seconds);
        self
    }

    /// Shares key/value data and queues with other VMs given the same handle.
    pub fn shared(mut self, shared: &SharedData) -> Self {
        self.shared = shared.clone();
        self
    }

    /// An Envoy cluster the guest may dispatch http calls to.
    pub fn cluster(mut self, name: &str) -> Self {
        self.clusters.push(name.to_owned());
        self
    }

    /// The VM configuration buffer.
    pub fn vm_config(mut self, config: &[u8]) -> Self {
        self.vm_config = config.to_vec();
        self
    }

    /// The level `proxy_get_log_level` reports (Envoy profile).
    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// Instantiates the module, creates the root context and runs `on_vm_start` and
    /// `on_configure`. A configuration the filter refuses is an error carrying its logs.
    pub fn start(self) -> Result<Vm> {
        match self.start_checked()? {
            (vm, true) => Ok(vm),
            (vm, false) => bail!("the filter refused its configuration: {}", vm.log_text()),
        }
    }

    /// Like [`start`](Self::start), but a VM that refuses to start or refuses its
    /// configuration is returned (with its logs) with `false` instead of an error.
    pub fn start_checked(self) -> Result<(Vm, bool)> {
        let mut vm = self.instantiate()?;
        let root = vm.root_id();
        vm.call("proxy_on_context_create", |vm| {
            vm.exports
                .on_context_create
                .call(&mut vm.store, (root as i32, 0))
        })?;
        let vm_config_size = vm.store.data().vm_config.len() as i32;
        let started = vm.call("proxy_on_vm_start", |vm| {
            vm.exports
                .on_vm_start
                .call(&mut vm.store, (root as i32, vm_config_size))
        })?;
        if started == 0 {
            return Ok((vm, false));
        }
        let configured = vm.configure_current()?;
        Ok((vm, configured))
    }

    fn instantiate(self) -> Result<Vm> {
        let host = self.host;
        let limits = StoreLimitsBuilder::new()
            .memory_size(host.options.max_memory_bytes)
            .instances(1)
            .build();
        let state = HostState {
            profile: host.options.profile,
            verify_signature: host.options.verify_signature,
            foreign_calls: 0,
            host_calls: 0,
            limits,
            vm_config: self.vm_config,
            plugin_config: self.plugin_config,
            clock: self.clock,
            monotonic: Duration::ZERO,
            rng: rand::rngs::StdRng::seed_from_u64(0x5eed),
            root_id: 1,
            current: 1,
            streams: BTreeMap::new(),
            root_properties: root_properties(host.options.profile),
            tick_period: None,
            next_tick: None,
            metrics: Vec::new(),
            logs: Vec::new(),
            stdout: Vec::new(),
            shared: self.shared,
            clusters: self.clusters,
            next_token: 0,
            pending_calls: BTreeMap::new(),
            call_response: None,
            log_level: self.log_level,
        };
        let mut store = Store::new(&host.engine, state);
        store.limiter(|state| &mut state.limits);
        store.call_hook(|mut cx, hook| {
            if matches!(hook, wasmtime::CallHook::CallingHost) {
                cx.data_mut().host_calls += 1;
            }
            Ok(())
        });
        store
            .set_fuel(host.options.fuel_per_call)
            .map_err(|e| anyhow!(e))?;
        let instance = host
            .pre
            .instantiate(&mut store)
            .map_err(|e| anyhow!(e))
            .context("instantiating the filter")?;
        let exports = Exports::find(&instance, &mut store)?;
        let mut vm = Vm {
            store,
            instance,
            exports,
            fuel_per_call: host.options.fuel_per_call,
            fuel_used: 0,
            next_context: 2,
            failed: None,
        };
        if let Some(init) = vm.exports.initialize.clone() {
            vm.call("_initialize", |vm| init.call(&mut vm.store, ()))?;
        }
        Ok(vm)
    }
}

fn unix_time(seconds: i64) -> SystemTime {
    if seconds >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

fn path(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// What ngx_wasm_module answers `:authority` with: the server's name and port.
const KONG_SERVER_AUTHORITY: &str = "localhost:8000";

fn root_properties(profile: Profile) -> BTreeMap<Vec<String>, Vec<u8>> {
    let mut props = BTreeMap::new();
    props.insert(path(&["plugin_name"]), b"attestgate".to_vec());
    props.insert(path(&["plugin_root_id"]), b"attestgate".to_vec());
    if profile == Profile::Envoy {
        // ngx_wasm_module: "NYI - plugin_vm_id property" (not found).
        props.insert(path(&["plugin_vm_id"]), Vec::new());
    }
    props
}

/// The per-request properties a host offers, encoded as each profile does: Envoy passes
/// integers as 8 little-endian bytes, Kong passes every property as a string.
fn stream_properties(profile: Profile, request: &HttpRequest) -> BTreeMap<Vec<String>, Vec<u8>> {
    let mut props = BTreeMap::new();
    if profile == Profile::Kong {
        // nginx variables, readable in a request only.
        props.insert(path(&["ngx", "hostname"]), b"localhost".to_vec());
    }
    if let Some(address) = &request.source_address {
        let (host, port) = match address.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u64>().unwrap_or(0)),
            None => (address.as_str(), 0),
        };
        // Envoy: `ip:port`; ngx_wasm_module: the address alone.
        let shown = match profile {
            Profile::Envoy => address.as_str(),
            Profile::Kong => host,
        };
        props.insert(path(&["source", "address"]), shown.as_bytes().to_vec());
        let port = match profile {
            Profile::Envoy => port.to_le_bytes().to_vec(),
            Profile::Kong => port.to_string().into_bytes(),
        };
        props.insert(path(&["source", "port"]), port);
    }
    props.insert(path(&["request", "path"]), request.path.as_bytes().to_vec());
    props.insert(
        path(&["request", "method"]),
        request.method.as_bytes().to_vec(),
    );
    props.insert(
        path(&["request", "host"]),
        request.authority.as_bytes().to_vec(),
    );
    props.insert(
        path(&["request", "scheme"]),
        request.scheme.as_bytes().to_vec(),
    );
    for (key, value) in &request.properties {
        props.insert(key.clone(), value.clone());
    }
    props
}

#[derive(Clone)]
struct Exports {
    initialize: Option<TypedFunc<(), ()>>,
    on_context_create: TypedFunc<(i32, i32), ()>,
    on_vm_start: TypedFunc<(i32, i32), i32>,
    on_configure: TypedFunc<(i32, i32), i32>,
    on_request_headers: TypedFunc<(i32, i32, i32), i32>,
    on_request_body: TypedFunc<(i32, i32, i32), i32>,
    on_done: TypedFunc<i32, i32>,
    on_log: TypedFunc<i32, ()>,
    on_delete: TypedFunc<i32, ()>,
    on_tick: TypedFunc<i32, ()>,
    on_http_call_response: TypedFunc<(i32, i32, i32, i32, i32), ()>,
}

impl Exports {
    fn find(instance: &Instance, store: &mut Store<HostState>) -> Result<Exports> {
        macro_rules! export {
            ($name:literal) => {
                instance
                    .get_typed_func(&mut *store, $name)
                    .map_err(|e| anyhow!(e))
                    .with_context(|| format!("the filter's export `{}`", $name))?
            };
        }
        Ok(Exports {
            initialize: instance.get_typed_func(&mut *store, "_initialize").ok(),
            on_context_create: export!("proxy_on_context_create"),
            on_vm_start: export!("proxy_on_vm_start"),
            on_configure: export!("proxy_on_configure"),
            on_request_headers: export!("proxy_on_request_headers"),
            on_request_body: export!("proxy_on_request_body"),
            on_done: export!("proxy_on_done"),
            on_log: export!("proxy_on_log"),
            on_delete: export!("proxy_on_delete"),
            on_tick: export!("proxy_on_tick"),
            on_http_call_response: export!("proxy_on_http_call_response"),
        })
    }
}

/// One running filter instance (a worker's VM) with its root context.
pub struct Vm {
    store: Store<HostState>,
    instance: Instance,
    exports: Exports,
    fuel_per_call: u64,
    /// Fuel the guest burned over every call so far (about one unit per wasm operator).
    fuel_used: u64,
    next_context: u32,
    failed: Option<String>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("profile", &self.store.data().profile)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// What the guest has done in a VM ([`Vm::guest_work`]); subtract two readings for one
/// request's share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestWork {
    /// Fuel burned: about one unit per wasm operator executed.
    pub fuel: u64,
    /// Calls into host functions.
    pub host_calls: u64,
}

impl std::ops::Sub for GuestWork {
    type Output = GuestWork;
    fn sub(self, earlier: GuestWork) -> GuestWork {
        GuestWork {
            fuel: self.fuel.saturating_sub(earlier.fuel),
            host_calls: self.host_calls.saturating_sub(earlier.host_calls),
        }
    }
}

/// A stream (HTTP context) opened with [`Vm::open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(u32);

impl Vm {
    fn root_id(&self) -> u32 {
        self.store.data().root_id
    }

    /// Runs one call into the guest with a fresh fuel budget. After a trap the VM is dead,
    /// as in Envoy: every later call fails with the first trap's message.
    fn call<T>(&mut self, what: &str, f: impl FnOnce(&mut Vm) -> wasmtime::Result<T>) -> Result<T> {
        if let Some(trap) = &self.failed {
            bail!("the VM failed earlier: {trap}");
        }
        self.store
            .set_fuel(self.fuel_per_call)
            .map_err(|e| anyhow!(e))?;
        let result = f(self);
        let left = self.store.get_fuel().unwrap_or(0);
        self.fuel_used = self
            .fuel_used
            .saturating_add(self.fuel_per_call.saturating_sub(left));
        match result {
            Ok(value) => Ok(value),
            Err(err) => {
                let message = format!("{what} trapped: {err:?}");
                self.failed = Some(message.clone());
                Err(anyhow!(message))
            }
        }
    }

    fn configure_current(&mut self) -> Result<bool> {
        let root = self.root_id();
        self.store.data_mut().current = root;
        let size = self.store.data().plugin_config.len() as i32;
        let configured = self.call("proxy_on_configure", |vm| {
            vm.exports
                .on_configure
                .call(&mut vm.store, (root as i32, size))
        })?;
        if configured == 0 && self.store.data().profile == Profile::Kong {
            // ngx_wasm_module: "failed initializing filter (on_configure failure)", then the
            // worker "exited with fatal code 2 and cannot be respawned": every location of
            // that worker hangs from then on.
            self.failed = Some(
                "worker process exited with fatal code 2 and cannot be respawned \
                 (on_configure failure)"
                    .to_owned(),
            );
        }
        Ok(configured != 0)
    }

    /// Hands the root context a new plugin configuration, as a config reload does. Returns
    /// whether the filter accepted it.
    pub fn configure(&mut self, config: &[u8]) -> Result<bool> {
        self.store.data_mut().plugin_config = config.to_vec();
        self.configure_current()
    }

    /// The message of the trap that killed this VM, if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Creates an HTTP context for `request` (headers and properties set, nothing called yet
    /// beyond `proxy_on_context_create`).
    pub fn open(&mut self, request: &HttpRequest) -> Result<StreamId> {
        let id = self.next_context;
        self.next_context += 1;
        let profile = self.store.data().profile;
        let mut headers = match profile {
            Profile::Envoy => vec![
                (":method".to_owned(), request.method.clone()),
                (":path".to_owned(), request.path.clone()),
                (":authority".to_owned(), request.authority.clone()),
                (":scheme".to_owned(), request.scheme.clone()),
            ],
            // ngx_wasm_module: `:authority` is the server's own name and port, `:scheme` the
            // listener's; the client's Host is a header, as sent.
            Profile::Kong => vec![
                (":path".to_owned(), request.path.clone()),
                (":method".to_owned(), request.method.clone()),
                (":scheme".to_owned(), "http".to_owned()),
                (":authority".to_owned(), KONG_SERVER_AUTHORITY.to_owned()),
                ("Host".to_owned(), request.authority.clone()),
            ],
        };
        for (name, value) in &request.headers {
            let name = match profile {
                Profile::Envoy => name.to_ascii_lowercase(),
                Profile::Kong => name.clone(),
            };
            headers.push((name, value.clone()));
        }
        // An HTTP/1 request with a body says how long it is: the host's map has the length.
        let says_length = request.headers.iter().any(|(n, _)| {
            n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
        });
        if !request.body.is_empty() && !says_length {
            let name = match profile {
                Profile::Envoy => "content-length",
                Profile::Kong => "Content-Length",
            };
            headers.push((name.to_owned(), request.body.len().to_string()));
        }
        let upstream_headers = (profile == Profile::Kong).then(|| {
            headers
                .iter()
                .filter(|(name, _)| !name.starts_with(':'))
                .cloned()
                .collect()
        });
        let stream = Stream {
            request_headers: headers,
            upstream_headers,
            request_body: request.body.clone(),
            properties: stream_properties(profile, request),
            ..Stream::default()
        };
        self.store.data_mut().streams.insert(id, stream);
        let root = self.root_id();
        self.with_context(id, "proxy_on_context_create", |vm| {
            vm.exports
                .on_context_create
                .call(&mut vm.store, (id as i32, root as i32))
        })?;
        Ok(StreamId(id))
    }

    fn with_context<T>(
        &mut self,
        context: u32,
        what: &str,
        f: impl FnOnce(&mut Vm) -> wasmtime::Result<T>,
    ) -> Result<T> {
        self.store.data_mut().current = context;
        let result = self.call(what, f);
        self.store.data_mut().current = self.root_id();
        result
    }

    /// Calls `proxy_on_request_headers`.
    pub fn request_headers(&mut self, stream: StreamId, end_of_stream: bool) -> Result<Action> {
        let count = self
            .stream(stream)
            .map(|s| s.request_headers.len())
            .ok_or_else(|| anyhow!("no stream {}", stream.0))? as i32;
        let action = self.with_context(stream.0, "proxy_on_request_headers", |vm| {
            vm.exports.on_request_headers.call(
                &mut vm.store,
                (stream.0 as i32, count, i32::from(end_of_stream)),
            )
        })?;
        Ok(action_of(action))
    }

    /// Calls `proxy_on_request_body` with the whole body buffered.
    pub fn request_body(&mut self, stream: StreamId, end_of_stream: bool) -> Result<Action> {
        let size = self
            .stream(stream)
            .map(|s| s.request_body.len())
            .ok_or_else(|| anyhow!("no stream {}", stream.0))? as i32;
        let action = self.with_context(stream.0, "proxy_on_request_body", |vm| {
            vm.exports.on_request_body.call(
                &mut vm.store,
                (stream.0 as i32, size, i32::from(end_of_stream)),
            )
        })?;
        Ok(action_of(action))
    }

    /// Ends a stream: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn close(&mut self, stream: StreamId) -> Result<()> {
        let id = stream.0 as i32;
        self.with_context(stream.0, "proxy_on_done", |vm| {
            vm.exports.on_done.call(&mut vm.store, id)
        })?;
        self.with_context(stream.0, "proxy_on_log", |vm| {
            vm.exports.on_log.call(&mut vm.store, id)
        })?;
        self.with_context(stream.0, "proxy_on_delete", |vm| {
            vm.exports.on_delete.call(&mut vm.store, id)
        })?;
        self.store.data_mut().streams.remove(&stream.0);
        Ok(())
    }

    fn stream(&self, stream: StreamId) -> Option<&Stream> {
        self.store.data().streams.get(&stream.0)
    }

    /// The local reply the filter sent on this stream, if any.
    pub fn local_response(&self, stream: StreamId) -> Option<LocalResponse> {
        self.stream(stream).and_then(|s| s.local_response.clone())
    }

    /// How many times the filter resumed the stream's request (`proxy_continue_stream`), for
    /// a request it held and then let on from another context.
    pub fn resumed(&self, stream: StreamId) -> u32 {
        self.stream(stream).map_or(0, |s| s.continued)
    }

    /// The stream's request headers as they stand now.
    ///
    /// On Kong this is what nginx's proxy module would forward, which is not the map the filter
    /// sees: a header the filter removed is still forwarded there.
    pub fn request_headers_of(&self, stream: StreamId) -> Vec<(String, String)> {
        self.stream(stream)
            .map(|s| {
                s.upstream_headers
                    .clone()
                    .unwrap_or_else(|| s.request_headers.clone())
            })
            .unwrap_or_default()
    }

    /// Scripts a whole request: opens a stream, runs the request headers (and the body, if
    /// there is one and the filter has not answered), closes the stream and reports what
    /// happened.
    pub fn send(&mut self, request: &HttpRequest) -> Result<HttpOutcome> {
        let logs_before = self.store.data().logs.len();
        let stream = self.open(request)?;
        let kong = self.store.data().profile == Profile::Kong;
        // ngx_wasm_module calls the headers callback with end_of_stream false even for a GET.
        let mut action = self.request_headers(stream, !kong && request.body.is_empty())?;
        let mut hung = false;
        if kong {
            // ngx_wasm_module never resumes a pause at the request headers: the request hangs
            // until the client gives up. The body callback comes once, with the whole body,
            // only for a non-empty body, and only after the headers callback let it on.
            if action == Action::Pause && self.local_response(stream).is_none() {
                hung = true;
            } else if action == Action::Continue && !request.body.is_empty() {
                action = self.request_body(stream, true)?;
            }
        } else if !request.body.is_empty() && self.local_response(stream).is_none() {
            // The body follows unless the filter already answered: a filter that paused at the
            // headers (to see the body first) gets it too, as Envoy buffers it for the filter.
            action = self.request_body(stream, true)?;
        }
        let local_response = self.local_response(stream);
        let upstream_headers = self.request_headers_of(stream);
        let filter_state = self
            .stream(stream)
            .map(|s| s.filter_state.clone())
            .unwrap_or_default();
        self.close(stream)?;
        let logs = self
            .store
            .data()
            .logs
            .get(logs_before..)
            .map(<[LogLine]>::to_vec)
            .unwrap_or_default();
        Ok(HttpOutcome {
            action,
            local_response,
            upstream_headers,
            logs,
            filter_state,
            hung,
        })
    }

    /// Moves the clock forward and fires `proxy_on_tick` for every tick period that elapsed.
    /// Returns how many ticks fired.
    pub fn advance(&mut self, by: Duration) -> Result<u32> {
        let target = self.store.data().monotonic + by;
        let mut fired = 0;
        loop {
            let next = self.store.data().next_tick;
            match (next, self.store.data().tick_period) {
                (Some(at), Some(period)) if at <= target => {
                    let state = self.store.data_mut();
                    let step = at.saturating_sub(state.monotonic);
                    state.clock += step;
                    state.monotonic = at;
                    state.next_tick = Some(at + period);
                    let root = self.root_id() as i32;
                    self.call("proxy_on_tick", |vm| {
                        vm.exports.on_tick.call(&mut vm.store, root)
                    })?;
                    fired += 1;
                }
                _ => break,
            }
        }
        let state = self.store.data_mut();
        let step = target.saturating_sub(state.monotonic);
        state.clock += step;
        state.monotonic = target;
        Ok(fired)
    }

    /// The tick period the filter asked for, if any.
    pub fn tick_period(&self) -> Option<Duration> {
        self.store.data().tick_period
    }

    /// The wall clock the guest sees.
    pub fn now(&self) -> SystemTime {
        self.store.data().clock
    }

    /// Http calls the guest dispatched and nobody answered yet, oldest first.
    pub fn pending_http_calls(&self) -> Vec<PendingHttpCall> {
        self.store.data().pending_calls.values().cloned().collect()
    }

    /// Answers a pending http call: `proxy_on_http_call_response` runs with the response
    /// readable through the call-response header map and body buffer.
    pub fn respond_http_call(&mut self, token: u32, response: HttpCallResponse) -> Result<()> {
        self.deliver(token, Some(response))
    }

    /// Fails a pending http call (reset, timeout): the callback sees no headers and no body,
    /// as Envoy reports it.
    pub fn fail_http_call(&mut self, token: u32) -> Result<()> {
        self.deliver(token, None)
    }

    fn deliver(&mut self, token: u32, response: Option<HttpCallResponse>) -> Result<()> {
        let call = self
            .store
            .data_mut()
            .pending_calls
            .remove(&token)
            .ok_or_else(|| anyhow!("no pending http call {token}"))?;
        let (headers, body, trailers) = match &response {
            Some(r) => (r.headers.len(), r.body.len(), r.trailers.len()),
            None => (0, 0, 0),
        };
        self.store.data_mut().call_response = response.map(|r| CallResponse {
            headers: r.headers,
            body: r.body,
            trailers: r.trailers,
        });
        let result = self.with_context(call.context, "proxy_on_http_call_response", |vm| {
            vm.exports.on_http_call_response.call(
                &mut vm.store,
                (
                    call.context as i32,
                    token as i32,
                    headers as i32,
                    body as i32,
                    trailers as i32,
                ),
            )
        });
        self.store.data_mut().call_response = None;
        result
    }

    /// Every metric the guest defined, by name, with its value.
    pub fn metrics(&self) -> BTreeMap<String, u64> {
        self.store
            .data()
            .metrics
            .iter()
            .map(|m| (m.name.clone(), m.value))
            .collect()
    }

    /// One metric's value, if defined.
    pub fn metric(&self, name: &str) -> Option<u64> {
        self.store
            .data()
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// How many `verify_signature` calls the host answered (the `envoy` profile's host crypto).
    pub fn verify_signature_calls(&self) -> u64 {
        self.store.data().foreign_calls
    }

    /// The guest's work so far: fuel burned (about one unit per wasm operator executed, so a
    /// count that does not depend on the machine's load) and calls into the host.
    pub fn guest_work(&self) -> GuestWork {
        GuestWork {
            fuel: self.fuel_used,
            host_calls: self.store.data().host_calls,
        }
    }

    /// Every line logged so far.
    pub fn logs(&self) -> &[LogLine] {
        &self.store.data().logs
    }

    fn log_text(&self) -> String {
        let lines: Vec<&str> = self.logs().iter().map(|l| l.message.as_str()).collect();
        if lines.is_empty() {
            "(no log lines)".to_owned()
        } else {
            lines.join(" | ")
        }
    }

    /// What the guest wrote to stdout/stderr through WASI.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.store.data().stdout).into_owned()
    }

    /// The shared data handle this VM uses.
    pub fn shared(&self) -> SharedData {
        self.store.data().shared.clone()
    }

    /// Bytes of linear memory the guest has now.
    pub fn memory_bytes(&mut self) -> usize {
        self.instance
            .get_memory(&mut self.store, "memory")
            .map(|memory| memory.data_size(&self.store))
            .unwrap_or(0)
    }
}

fn action_of(raw: i32) -> Action {
    if raw == 0 {
        Action::Continue
    } else {
        Action::Pause
    }
}
