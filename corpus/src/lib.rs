//! The shared request corpus of attestgate.
//!
//! `corpus/cases/*.yaml` define named gates (gate configs) and request cases that name their
//! gate, say how to mint the token and what to send, and what the gate must decide. Every
//! runner uses the same cases: the native core ([`Gate::check`]), the wasmtime harness, real
//! Envoy, the JavaScript build and the native library in real NGINX. [`load`] parses the files; [`Corpus::materialize`] mints
//! the tokens at a given time and yields plain requests and expectations, which the
//! `attestgate-corpus` binary prints as JSON for runners in other languages.
//!
//! The format is documented in `corpus/README.md`.
//!
//! ```
//! let corpus = attestgate_corpus::load(&attestgate_corpus::cases_dir()).unwrap();
//! let materialized = corpus.materialize(1_700_000_000).unwrap();
//! for gate in &materialized.gates {
//!     let checker = attestgate_policy::Gate::from_json(&gate.config.to_string()).unwrap();
//!     for case in &gate.cases {
//!         let Some(expect) = case.expect_for(attestgate_corpus::Runner::Native) else { continue };
//!         let decision = checker.check(&case.request.to_request(), materialized.now);
//!         assert_eq!(decision.status, expect.status, "{}", case.name);
//!     }
//! }
//! ```

#![warn(missing_docs)]

pub mod fuzzing;
mod spec;
mod token;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use attestgate_policy::capability::Host;
use attestgate_policy::{Gate, Reason, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use spec::{
    CaseSpec, CorpusFile, ExpectOverride, ExpectSpec, FileSpec, Filler, GateSpec, HmacWithPublic,
    KeySpec, PublicForm, RequestSpec, Tamper,
};

/// The directory of the corpus case files: `corpus/cases`.
pub fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cases")
}

/// The test keys the cases sign with and gates trust: `policy-engine/tests/data/keys`.
pub fn keys_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("policy-engine")
        .join("tests")
        .join("data")
        .join("keys")
}

/// Why the corpus could not be loaded or materialized. Every variant names the file, gate or
/// case at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorpusError {
    /// A file could not be read.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// A file is not valid YAML of the case format (serde names the field).
    #[error("{file}: {message}")]
    Parse {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A case is inconsistent, or its token cannot be minted.
    #[error("{file}: case `{case}`: {message}")]
    Case {
        /// The file.
        file: String,
        /// The case name.
        case: String,
        /// What is wrong.
        message: String,
    },
    /// A gate is inconsistent, or the gate refuses its config.
    #[error("gate `{gate}`: {message}")]
    Gate {
        /// The gate, `<file>/<gate>`.
        gate: String,
        /// What is wrong.
        message: String,
    },
}

/// A runner of the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runner {
    /// `Gate::check` in-process (`corpus/tests/native.rs`).
    Native,
    /// The built `.wasm` in the wasmtime proxy-wasm host of `test-harness`.
    Harness,
    /// The built `.wasm` in real Envoy.
    Envoy,
    /// The JavaScript build.
    Js,
    /// The native library (`libattestgate.so`) in real NGINX through LuaJIT's FFI
    /// (`native/tests/nginx.rs`).
    Nginx,
    /// The Cloudflare Worker (`worker/`) in real workerd, over HTTP.
    Workerd,
}

impl Runner {
    /// Every runner, the default of a case.
    pub const ALL: [Runner; 6] = [
        Runner::Native,
        Runner::Harness,
        Runner::Envoy,
        Runner::Js,
        Runner::Nginx,
        Runner::Workerd,
    ];

    /// The hosts this runner loads gates in ([`attestgate_policy::capability::Host`]): none
    /// for `native` (the core itself, every capability given through `check_with`), Envoy and
    /// Kong's ngx_wasm_module for the harness's two profiles.
    ///
    /// ```
    /// use attestgate_corpus::Runner;
    /// use attestgate_policy::capability::Host;
    /// assert_eq!(Runner::Workerd.hosts(), [Host::Worker]);
    /// assert!(Runner::Native.hosts().is_empty());
    /// ```
    pub fn hosts(self) -> &'static [Host] {
        match self {
            Runner::Native => &[],
            Runner::Harness => &[Host::Envoy, Host::KongWasm],
            Runner::Envoy => &[Host::Envoy],
            Runner::Js => &[Host::Js],
            Runner::Nginx => &[Host::Native],
            Runner::Workerd => &[Host::Worker],
        }
    }

    /// The name used in the files: `native`, `harness`, `envoy`, `js`, `nginx`, `workerd`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runner::Native => "native",
            Runner::Harness => "harness",
            Runner::Envoy => "envoy",
            Runner::Js => "js",
            Runner::Nginx => "nginx",
            Runner::Workerd => "workerd",
        }
    }
}

impl fmt::Display for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every case file of a directory, parsed and checked for consistency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Corpus {
    /// The files, sorted by name.
    pub files: Vec<CorpusFile>,
    /// Where the keys named by `key` and `keys_from` are.
    pub keys_dir: PathBuf,
}

/// The corpus with tokens minted at `now`: what runners execute.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct Materialized {
    /// The time the tokens were minted for; runners with an injectable clock use it.
    pub now: i64,
    /// Gates with their cases, in file order then gate name order.
    pub gates: Vec<MaterializedGate>,
}

impl Materialized {
    /// Keeps only the cases whose native outcome is the same at `now` and `now + seconds`,
    /// for runners whose clock moves while they run (a load test of a minute). Returns the
    /// names of the cases dropped. A case whose outcome already differs at `now` is kept: that
    /// is for the runner to report.
    pub fn retain_stable(&mut self, seconds: i64) -> Result<Vec<String>, CorpusError> {
        let later = self.now.saturating_add(seconds);
        let now = self.now;
        let mut dropped = Vec::new();
        for gate in &mut self.gates {
            let checker =
                Gate::from_json(&gate.config.to_string()).map_err(|err| CorpusError::Gate {
                    gate: gate.name.clone(),
                    message: err.to_string(),
                })?;
            gate.cases.retain(|case| {
                let request = case.request.to_request();
                let (a, b) = (checker.check(&request, now), checker.check(&request, later));
                let stable = (a.allow, a.reason, a.status, a.verdict)
                    == (b.allow, b.reason, b.status, b.verdict);
                if !stable {
                    dropped.push(case.name.clone());
                }
                stable
            });
        }
        Ok(dropped)
    }
}

/// One gate config and the cases it decides.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct MaterializedGate {
    /// `<file stem>/<gate name>`, unique.
    pub name: String,
    /// The filter JSON config, what `Gate::from_json` takes (keys and Rego inlined).
    pub config: Value,
    /// The cases, in file order.
    pub cases: Vec<MaterializedCase>,
    /// The runners whose host refuses this config at load (it needs what the host lacks:
    /// [`attestgate_policy::capability`]), with the refusal's message. Such a runner runs
    /// none of the gate's cases; it shows the refusal instead.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<Runner, String>,
}

impl MaterializedGate {
    /// What `runner` must see for `case`, or `None` when the case does not run there: not
    /// one of its runners, or the runner's host refuses this gate.
    pub fn expect_for(&self, case: &MaterializedCase, runner: Runner) -> Option<Expect> {
        if self.refused.contains_key(&runner) {
            return None;
        }
        case.expect_for(runner)
    }
}

/// One request and what each runner must see.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct MaterializedCase {
    /// Unique across the corpus.
    pub name: String,
    /// The request to send.
    pub request: CaseRequest,
    /// The expected outcome.
    pub expect: Expect,
    /// The runners the case runs on.
    pub runners: Vec<Runner>,
    /// Per-runner expectations that differ from `expect` (already merged).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<Runner, Expect>,
    /// Why `runners` or `overrides` is not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl MaterializedCase {
    /// What `runner` must see, or `None` when the case does not run there.
    pub fn expect_for(&self, runner: Runner) -> Option<Expect> {
        if !self.runners.contains(&runner) {
            return None;
        }
        Some(
            self.overrides
                .get(&runner)
                .cloned()
                .unwrap_or_else(|| self.expect.clone()),
        )
    }
}

/// A request as plain data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CaseRequest {
    /// `:method`.
    pub method: String,
    /// `:path`, with any query, as sent.
    pub path: String,
    /// `:authority` / `Host`.
    pub authority: String,
    /// Headers in order, names lower-case (the token, if any, among them).
    pub headers: Vec<(String, String)>,
}

impl CaseRequest {
    /// The core's request type.
    pub fn to_request(&self) -> Request {
        let mut request = Request::new(self.method.as_str(), self.path.as_str())
            .with_host(self.authority.as_str());
        request.headers.clone_from(&self.headers);
        request
    }
}

/// An expected outcome.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// Whether the request reaches the upstream.
    pub allow: bool,
    /// The reason code, e.g. `token_expired` (the `x-attestgate-reason` of a denial); `""`
    /// when the reply does not come from the gate (an override for a host's own answer).
    pub reason: String,
    /// The HTTP status the client gets (200 when allowed).
    pub status: u16,
    /// `allow` or `deny` when the case checks the verdict (monitor mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

/// Reads every `*.yaml` in `dir`, sorted by file name, and checks the cases are consistent.
pub fn load(dir: &Path) -> Result<Corpus, CorpusError> {
    let io = |path: &Path, err: std::io::Error| CorpusError::Io {
        path: path.display().to_string(),
        message: err.to_string(),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|err| io(dir, err))? {
        let path = entry.map_err(|err| io(dir, err))?.path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut files = Vec::new();
    let mut case_names = BTreeSet::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|err| io(&path, err))?;
        let file = path.display().to_string();
        let spec: FileSpec = serde_yaml::from_str(&text).map_err(|err| CorpusError::Parse {
            file: file.clone(),
            message: err.to_string(),
        })?;
        for case in &spec.cases {
            check_case(case, &spec)
                .and_then(|()| {
                    if case_names.insert(case.name.clone()) {
                        Ok(())
                    } else {
                        Err("the name is used twice".to_owned())
                    }
                })
                .map_err(|message| CorpusError::Case {
                    file: file.clone(),
                    case: case.name.clone(),
                    message,
                })?;
        }
        let name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        for gate in spec.gates.keys() {
            if !spec.cases.iter().any(|case| &case.gate == gate) {
                return Err(CorpusError::Gate {
                    gate: format!("{name}/{gate}"),
                    message: "no case uses it".into(),
                });
            }
        }
        files.push(CorpusFile {
            name,
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            spec,
        });
    }
    Ok(Corpus {
        files,
        keys_dir: keys_dir(),
    })
}

fn check_case(case: &CaseSpec, file: &FileSpec) -> Result<(), String> {
    let name_ok = !case.name.is_empty()
        && case
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if !name_ok {
        return Err("names use letters, digits, `_`, `-` and `.` only".into());
    }
    if !file.gates.contains_key(&case.gate) {
        return Err(format!("no gate `{}` in this file", case.gate));
    }
    let exceptional = case.runners.is_some() || !case.overrides.is_empty();
    match (&case.why, exceptional) {
        (None, true) => return Err("`runners` and `overrides` need a `why`".into()),
        (Some(_), false) => return Err("`why` without `runners` or `overrides`".into()),
        (Some(why), true) if why.trim().is_empty() => return Err("`why` is empty".into()),
        _ => {}
    }
    let runners = case.runners.clone().unwrap_or_else(|| Runner::ALL.to_vec());
    let distinct: BTreeSet<_> = runners.iter().collect();
    if runners.is_empty() || distinct.len() != runners.len() {
        return Err("`runners` must list distinct runners".into());
    }
    for (runner, over) in &case.overrides {
        if !runners.contains(runner) {
            return Err(format!(
                "override for `{runner}`, which does not run the case"
            ));
        }
        if let Some(reason) = &over.reason {
            if !reason.is_empty() && parse_reason(reason).is_none() {
                return Err(format!("override reason `{reason}` is not a reason code"));
            }
        }
    }
    let minted_only = [
        ("key", case.key.is_some()),
        ("header", case.header.is_some()),
        ("header_merge", case.header_merge.is_some()),
        ("claims", !case.claims.is_empty()),
        ("claims_at", !case.claims_at.is_empty()),
        ("pad_claims", case.pad_claims.is_some()),
        ("nest_claims", case.nest_claims.is_some()),
        ("raw_segments", case.raw_segments.is_some()),
        ("encoded_segments", case.encoded_segments.is_some()),
        ("signature_hex", case.signature_hex.is_some()),
        ("tamper", case.tamper.is_some()),
    ];
    if case.token.is_some() {
        if let Some((field, _)) = minted_only.iter().find(|(_, set)| *set) {
            return Err(format!("`token` is literal, so `{field}` means nothing"));
        }
        if case.token == Some(None) && case.append.is_some() {
            return Err("`append` to no token".into());
        }
    } else if case.key.is_none() {
        return Err("needs `key` (to mint a token) or `token`".into());
    }
    let json_fields = case.header.is_some()
        || case.header_merge.is_some()
        || !case.claims.is_empty()
        || !case.claims_at.is_empty()
        || case.pad_claims.is_some()
        || case.nest_claims.is_some();
    if (case.raw_segments.is_some() || case.encoded_segments.is_some()) && json_fields {
        return Err("`raw_segments`/`encoded_segments` replace header and claims".into());
    }
    if case.raw_segments.is_some() && case.encoded_segments.is_some() {
        return Err("`raw_segments` or `encoded_segments`, not both".into());
    }
    Ok(())
}

fn parse_reason(code: &str) -> Option<Reason> {
    serde_json::from_value(Value::String(code.to_owned())).ok()
}

impl Corpus {
    /// Mints every token at `now` and builds every request. Each gate config is loaded once
    /// with [`Gate::from_json`], so a config the gate refuses is an error here.
    pub fn materialize(&self, now: i64) -> Result<Materialized, CorpusError> {
        let mut gates = Vec::new();
        for file in &self.files {
            for (gate_name, spec) in &file.spec.gates {
                let name = format!("{}/{gate_name}", file.name);
                let gate_error = |message: String| CorpusError::Gate {
                    gate: name.clone(),
                    message,
                };
                let config = self.gate_config(file, spec).map_err(gate_error)?;
                let gate = Gate::from_json(&config.to_string())
                    .map_err(|err| gate_error(format!("the gate refuses the config: {err}")))?;
                let mut cases = Vec::new();
                for case in file.spec.cases.iter().filter(|c| &c.gate == gate_name) {
                    let materialized =
                        self.case(case, &gate, now)
                            .map_err(|message| CorpusError::Case {
                                file: file.name.clone(),
                                case: case.name.clone(),
                                message,
                            })?;
                    cases.push(materialized);
                }
                let mut refused = BTreeMap::new();
                for runner in Runner::ALL {
                    for host in runner.hosts() {
                        if let Err(err) = Gate::from_json_for(&config.to_string(), *host) {
                            refused.insert(runner, err.to_string());
                        }
                    }
                }
                gates.push(MaterializedGate {
                    name,
                    config,
                    cases,
                    refused,
                });
            }
        }
        Ok(Materialized { now, gates })
    }

    /// The gate's JSON config: `keys_from` appended to `keys.keys`, module files inlined.
    fn gate_config(&self, file: &CorpusFile, spec: &GateSpec) -> Result<Value, String> {
        let mut config = spec.config.clone();
        if !spec.keys_from.is_empty() {
            let keys = config
                .entry("keys")
                .or_insert_with(|| Value::Object(Map::new()));
            let list = keys
                .as_object_mut()
                .ok_or("`keys` is not an object")?
                .entry("keys")
                .or_insert_with(|| Value::Array(Vec::new()))
                .as_array_mut()
                .ok_or("`keys.keys` is not a list")?;
            for name in &spec.keys_from {
                list.extend(token::public_jwks(&self.keys_dir, name)?);
            }
        }
        if let Some(Value::Object(policy)) = config.get_mut("policy") {
            if let Some(files) = policy.remove("module_files") {
                let files: Vec<String> = serde_json::from_value(files)
                    .map_err(|err| format!("policy.module_files: {err}"))?;
                let modules = policy
                    .entry("modules")
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .ok_or("`policy.modules` is not an object")?;
                for relative in files {
                    let path = file.dir.join(&relative);
                    let text = std::fs::read_to_string(&path)
                        .map_err(|err| format!("{}: {err}", path.display()))?;
                    let key = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or(relative);
                    modules.insert(key, Value::String(text));
                }
            }
        }
        Ok(Value::Object(config))
    }

    fn case(&self, case: &CaseSpec, gate: &Gate, now: i64) -> Result<MaterializedCase, String> {
        let token = token::token_for(case, &self.keys_dir, now)?;
        let spec = &case.request;
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut placed = false;
        for (name, value) in &spec.headers {
            let value = match (&token, value.contains("{token}")) {
                (Some(token), true) => {
                    placed = true;
                    value.replace("{token}", token)
                }
                (None, true) => return Err("`{token}` in a header, but no token".into()),
                (_, false) => value.clone(),
            };
            headers.push((name.to_ascii_lowercase(), value));
        }
        if let Some(filler) = spec.filler {
            for i in 0..filler.count {
                headers.push((format!("x-filler-{i}"), "f".repeat(filler.bytes)));
            }
        }
        if let (Some(token), false) = (&token, placed) {
            let config = &gate.config().token;
            let prefix = config.prefix.as_deref().unwrap_or("");
            headers.push((
                config.header.to_ascii_lowercase(),
                format!("{prefix}{token}"),
            ));
        }
        let request = CaseRequest {
            method: spec.method.clone().unwrap_or_else(|| "GET".into()),
            path: spec.path.clone().unwrap_or_else(|| "/".into()),
            authority: spec
                .authority
                .clone()
                .unwrap_or_else(|| "api.example.com".into()),
            headers,
        };
        let expect = Expect {
            allow: case.expect.allow,
            reason: case.expect.reason.as_str().to_owned(),
            status: case.expect.status,
            verdict: case.expect.verdict.map(|verdict| {
                match verdict {
                    attestgate_policy::Verdict::Allow => "allow",
                    attestgate_policy::Verdict::Deny => "deny",
                }
                .to_owned()
            }),
        };
        let overrides = case
            .overrides
            .iter()
            .map(|(runner, over)| {
                let mut merged = expect.clone();
                if let Some(allow) = over.allow {
                    merged.allow = allow;
                }
                if let Some(reason) = &over.reason {
                    merged.reason.clone_from(reason);
                }
                if let Some(status) = over.status {
                    merged.status = status;
                }
                (*runner, merged)
            })
            .collect();
        Ok(MaterializedCase {
            name: case.name.clone(),
            request,
            expect,
            runners: case.runners.clone().unwrap_or_else(|| Runner::ALL.to_vec()),
            overrides,
            why: case.why.clone(),
        })
    }
}
