//! What a config needs from its host, and what each host has: the one place that decides
//! whether a host may load a config.
//!
//! Some config features are carried out by the host, not the core: fetching a JWKS or a
//! denylist, keeping rate-limit buckets where every worker sees them, reading the body,
//! reading a gateway verifier's record. A host that lacks one of these would accept the
//! field and silently not enforce it, so [`crate::Gate::for_host`] refuses such a config at
//! load with [`crate::ConfigError::Unsupported`], naming the field and the host. [`NEEDS`]
//! lists every field that needs something of its host; [`Host::has`] says what each host has.
//!
//! ```
//! use attestgate_policy::capability::{Capability, Host};
//! use attestgate_policy::{ConfigError, Gate};
//! let config = r#"{ "keys": { "remote": { "upstream": "keys", "authority": "keys.example.com",
//!                                          "path": "/jwks.json" } } }"#;
//! assert!(Gate::from_json_for(config, Host::Envoy).is_ok()); // Envoy fetches it
//! let error = Gate::from_json_for(config, Host::Js).unwrap_err();
//! assert!(matches!(error, ConfigError::Unsupported { capability: Capability::Fetch, .. }));
//! assert!(error.to_string().contains("`keys.remote`"));
//! assert!(error.to_string().contains("the JavaScript build"));
//! ```

use crate::config::{Config, SignatureConfig, SignatureMode};

/// Something a config feature needs from its host.
///
/// ```
/// use attestgate_policy::capability::Capability;
/// assert_eq!(Capability::Fetch.as_str(), "fetch");
/// assert!(Capability::ALL.iter().all(|c| !c.description().is_empty()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Fetching documents over HTTP in the background, refreshed, keeping the last good one.
    Fetch,
    /// State every worker of the gateway shares and updates atomically (rate-limit buckets).
    SharedState,
    /// The request body, read before deciding (signatures covering `content-digest`).
    Body,
    /// The record a gateway JWT verifier leaves for the request (Envoy's `jwt_authn`
    /// dynamic metadata): hybrid mode.
    VerifierRecord,
    /// A debug log that each decision's JSON can be written to.
    DecisionLog,
    /// A per-request store the host's access log and later filters read each decision's
    /// record from (Envoy's filter state, NGINX variables).
    RecordState,
    /// A decision cache kept between requests. Only a speed-up: a host without one decides
    /// the same, so its absence never refuses a config.
    DecisionCache,
    /// An upstream the allowed request goes on to, with the header plan carried out. A host
    /// without one (the CLI decides and prints) has nothing to forward, so its absence never
    /// refuses a config either.
    Upstream,
}

impl Capability {
    /// Every capability, in a stable order (the docs' columns).
    pub const ALL: [Capability; 8] = [
        Capability::Fetch,
        Capability::SharedState,
        Capability::Body,
        Capability::VerifierRecord,
        Capability::DecisionLog,
        Capability::RecordState,
        Capability::DecisionCache,
        Capability::Upstream,
    ];

    /// A short stable name: `fetch`, `shared_state`, `body`, `verifier_record`,
    /// `decision_log`, `record_state`, `decision_cache`, `upstream`.
    ///
    /// ```
    /// use attestgate_policy::capability::Capability;
    /// assert_eq!(Capability::SharedState.as_str(), "shared_state");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Fetch => "fetch",
            Capability::SharedState => "shared_state",
            Capability::Body => "body",
            Capability::VerifierRecord => "verifier_record",
            Capability::DecisionLog => "decision_log",
            Capability::RecordState => "record_state",
            Capability::DecisionCache => "decision_cache",
            Capability::Upstream => "upstream",
        }
    }

    /// What it is, as a phrase for messages and the docs.
    ///
    /// ```
    /// use attestgate_policy::capability::Capability;
    /// assert!(Capability::Fetch.description().contains("fetch"));
    /// ```
    pub fn description(self) -> &'static str {
        match self {
            Capability::Fetch => "fetching documents in the background (refreshed, last good kept)",
            Capability::SharedState => "state shared by all the gateway's workers",
            Capability::Body => "the request body",
            Capability::VerifierRecord => {
                "a gateway JWT verifier's record (Envoy jwt_authn metadata)"
            }
            Capability::DecisionLog => "a debug log for each decision's JSON",
            Capability::RecordState => {
                "a per-request store of the decision's record for the access log and later filters"
            }
            Capability::DecisionCache => "a decision cache kept between requests",
            Capability::Upstream => "an upstream that allowed requests go on to",
        }
    }

    /// Whether a host without it must refuse a config that uses it. Only the decision cache
    /// and the upstream may be missing: without a cache every decision is the uncached one, and
    /// without an upstream nothing is forwarded to be wrong.
    ///
    /// ```
    /// use attestgate_policy::capability::Capability;
    /// assert!(Capability::Fetch.refuses_without());
    /// assert!(!Capability::DecisionCache.refuses_without());
    /// ```
    pub fn refuses_without(self) -> bool {
        !matches!(self, Capability::DecisionCache | Capability::Upstream)
    }
}

/// A host that loads gate configs.
///
/// ```
/// use attestgate_policy::capability::{Capability, Host};
/// assert!(Host::Envoy.has(Capability::VerifierRecord));
/// assert!(!Host::Native.has(Capability::SharedState));
/// assert_eq!("worker".parse::<Host>(), Ok(Host::Worker));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Host {
    /// The proxy-wasm filter in Envoy.
    Envoy,
    /// The proxy-wasm filter in ngx_wasm_module (Kong 3.4 to 3.10).
    KongWasm,
    /// The native library, `libattestgate.so`: NGINX / OpenResty (LuaJIT) and the Kong ≥ 3.11
    /// plugin over it.
    Native,
    /// The JavaScript build (wasm-bindgen; Node, browsers, the playground).
    Js,
    /// The Cloudflare Worker over the JavaScript build.
    Worker,
    /// The `attestgate` CLI (`check`, deciding one request offline).
    Cli,
}

impl Host {
    /// Every host, in a stable order (the docs' columns).
    pub const ALL: [Host; 6] = [
        Host::Envoy,
        Host::KongWasm,
        Host::Native,
        Host::Js,
        Host::Worker,
        Host::Cli,
    ];

    /// The short name (`envoy`, `kong-wasm`, `native`, `js`, `worker`, `cli`), as the CLI's
    /// `--host` and the JavaScript build take it.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::capability::Host::KongWasm.as_str(), "kong-wasm");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Host::Envoy => "envoy",
            Host::KongWasm => "kong-wasm",
            Host::Native => "native",
            Host::Js => "js",
            Host::Worker => "worker",
            Host::Cli => "cli",
        }
    }

    /// The host as messages and the docs name it.
    ///
    /// ```
    /// use attestgate_policy::capability::Host;
    /// assert_eq!(Host::Worker.name(), "the Cloudflare Worker");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Host::Envoy => "the proxy-wasm filter in Envoy",
            Host::KongWasm => "the proxy-wasm filter in Kong 3.4-3.10 (ngx_wasm_module)",
            Host::Native => "the native library (NGINX / OpenResty, Kong >= 3.11)",
            Host::Js => "the JavaScript build",
            Host::Worker => "the Cloudflare Worker",
            Host::Cli => "the attestgate CLI",
        }
    }

    /// Whether this host has `capability`.
    ///
    /// ```
    /// use attestgate_policy::capability::{Capability, Host};
    /// assert!(Host::KongWasm.has(Capability::Fetch));
    /// assert!(!Host::KongWasm.has(Capability::VerifierRecord)); // no jwt_authn there
    /// assert!(Host::Worker.has(Capability::SharedState)); // a Durable Object
    /// assert!(!Host::Js.has(Capability::SharedState));
    /// ```
    pub fn has(self, capability: Capability) -> bool {
        use Capability as C;
        match self {
            // dispatch_http_call on the root's tick, shared data with CAS, the body, jwt_authn's
            // dynamic metadata, the proxy-wasm log, a per-worker cache.
            Host::Envoy => true,
            // The same filter; ngx_wasm_module has no dynamic metadata from a JWT verifier, and
            // no filter state (its set_property takes nginx variables the filter does not write).
            Host::KongWasm => !matches!(capability, C::VerifierRecord | C::RecordState),
            // A per-worker library called from Lua, whose module fetches remote documents on
            // an ngx.timer with a cosocket (attestgate_gate_set_document); no state shared
            // between NGINX workers for buckets, no verifier; it returns decisions and logs
            // nothing. The Lua module leaves every record field in an nginx variable
            // ($attestgate_<field>).
            Host::Native => matches!(
                capability,
                C::Fetch | C::Body | C::RecordState | C::DecisionCache | C::Upstream
            ),
            // Request in, decision and header plan out: no background, no shared state, no
            // cache.
            Host::Js => matches!(capability, C::Body | C::Upstream),
            // The same, and the Worker fetches remote documents itself (fetch() and the Cache
            // API, refreshed in ctx.waitUntil, the last good copy kept in the isolate) and keeps
            // rate-limit buckets in a Durable Object that every isolate asks (the
            // `ATTESTGATE_LIMITER` binding, worker/README.md).
            Host::Worker => matches!(
                capability,
                C::Fetch | C::Body | C::SharedState | C::Upstream
            ),
            // One request decided offline; the decision is printed (`check` prints it whole).
            Host::Cli => matches!(capability, C::Body | C::DecisionLog),
        }
    }

    /// The hosts that have `capability`, for messages (`Envoy, Kong 3.4-3.10`).
    fn with(capability: Capability) -> impl Iterator<Item = Host> {
        Host::ALL
            .into_iter()
            .filter(move |host| host.has(capability))
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A host name that is not one of [`Host::ALL`]'s.
///
/// ```
/// let error = "nginx-plus".parse::<attestgate_policy::capability::Host>().unwrap_err();
/// assert!(error.to_string().contains("nginx-plus"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown host `{0}` (expected envoy, kong-wasm, native, js, worker or cli)")]
pub struct UnknownHost(pub String);

impl std::str::FromStr for Host {
    type Err = UnknownHost;
    fn from_str(text: &str) -> Result<Host, UnknownHost> {
        Host::ALL
            .into_iter()
            .find(|host| host.as_str() == text)
            .ok_or_else(|| UnknownHost(text.to_owned()))
    }
}

/// A config field that needs something of its host.
///
/// ```
/// use attestgate_policy::capability::{Capability, NEEDS};
/// let rate = NEEDS.iter().find(|n| n.field == "rules[].rate_limit").unwrap();
/// assert_eq!(rate.capability, Capability::SharedState);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// The field, as a schema path: `keys.remote`, `rules[].rate_limit`.
    pub field: &'static str,
    /// What it needs.
    pub capability: Capability,
    /// What the field is, for messages and the docs.
    pub what: &'static str,
    /// When it needs it, for the docs (`set`, `mode` other than `off`, ...).
    pub when: &'static str,
}

/// Every field that needs something of its host. A field not listed here (or under one of
/// these) is carried out by the core alone, the same in every host.
pub const NEEDS: &[Need] = &[
    Need {
        field: "keys.remote",
        capability: Capability::Fetch,
        what: "a fetched JWKS",
        when: "set",
    },
    Need {
        field: "denylist.remote",
        capability: Capability::Fetch,
        what: "a fetched denylist",
        when: "set",
    },
    Need {
        field: "rules[].rate_limit",
        capability: Capability::SharedState,
        what: "per-device rate limits",
        when: "set",
    },
    Need {
        field: "host_verification",
        capability: Capability::VerifierRecord,
        what: "hybrid mode",
        when: "set",
    },
    Need {
        field: "signature",
        capability: Capability::Body,
        what: "request signatures (a signed body is read)",
        when: "`mode` not `off`",
    },
    Need {
        field: "rules[].signature",
        capability: Capability::Body,
        what: "request signatures (a signed body is read)",
        when: "`mode` not `off`",
    },
    Need {
        field: "log_decisions",
        capability: Capability::DecisionLog,
        what: "decision logging",
        when: "`true`",
    },
    Need {
        field: "decision_log",
        capability: Capability::DecisionLog,
        what: "decision-log sampling and masks",
        when: "set",
    },
    Need {
        field: "record_fields",
        capability: Capability::RecordState,
        what: "decision-record fields kept one by one",
        when: "not empty",
    },
    Need {
        field: "cache",
        capability: Capability::DecisionCache,
        what: "the decision cache",
        when: "`entries` above 0",
    },
    Need {
        field: "forward",
        capability: Capability::Upstream,
        what: "the token header passed upstream",
        when: "`true`",
    },
];

/// One field of a config that needs something of its host: the field as it appears in this
/// config (`rules[2].rate_limit`) and the [`Need`] it falls under.
///
/// ```
/// use attestgate_policy::capability::demands;
/// let config: attestgate_policy::Config = serde_json::from_str(r#"{ "keys": {}, "cache": {"entries": 0},
///     "rules": [{ "path": "/a" }, { "path": "/login", "rate_limit": { "requests": 5, "per_seconds": 60 } }] }"#).unwrap();
/// let found: Vec<String> = demands(&config).iter().map(|d| d.field.clone()).collect();
/// assert_eq!(found, ["rules[1].rate_limit"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    /// The field in this config.
    pub field: String,
    /// The need it falls under.
    pub need: &'static Need,
}

/// The entry of [`NEEDS`] for `field` (a schema path).
fn need(field: &str) -> Option<&'static Need> {
    NEEDS.iter().find(|need| need.field == field)
}

/// Every field of `config` that needs something of its host, in [`NEEDS`] order, rules in
/// their order.
///
/// ```
/// let config: attestgate_policy::Config =
///     serde_json::from_str(r#"{ "keys": {}, "log_decisions": true }"#).unwrap();
/// let fields: Vec<String> =
///     attestgate_policy::capability::demands(&config).into_iter().map(|d| d.field).collect();
/// assert_eq!(fields, ["log_decisions", "cache"]); // the cache is on by default
/// ```
pub fn demands(config: &Config) -> Vec<Demand> {
    let signs = |signature: &SignatureConfig| signature.mode != SignatureMode::Off;
    let mut found = Vec::new();
    let mut add = |schema_path: &str, field: String| {
        if let Some(need) = need(schema_path) {
            found.push(Demand { field, need });
        }
    };
    if config.keys.remote.is_some() {
        add("keys.remote", "keys.remote".to_owned());
    }
    if config.denylist.as_ref().is_some_and(|d| d.remote.is_some()) {
        add("denylist.remote", "denylist.remote".to_owned());
    }
    for (index, rule) in config.rules.iter().enumerate() {
        if rule.rate_limit.is_some() {
            add("rules[].rate_limit", format!("rules[{index}].rate_limit"));
        }
    }
    if config.host_verification.is_some() {
        add("host_verification", "host_verification".to_owned());
    }
    if signs(&config.signature) {
        add("signature", "signature".to_owned());
    }
    for (index, rule) in config.rules.iter().enumerate() {
        if rule.signature.as_ref().is_some_and(signs) {
            add("rules[].signature", format!("rules[{index}].signature"));
        }
    }
    // The block before the switch, so a refusal names what it was given most precisely.
    if config.decision_log.is_some() {
        add("decision_log", "decision_log".to_owned());
    }
    if config.log_decisions {
        add("log_decisions", "log_decisions".to_owned());
    }
    if !config.record_fields.is_empty() {
        add("record_fields", "record_fields".to_owned());
    }
    if config.cache.entries > 0 {
        add("cache", "cache".to_owned());
    }
    if config.forward {
        add("forward", "forward".to_owned());
    }
    found
}

/// The first field of `config` that `host` cannot carry out and must refuse, if any.
///
/// ```
/// use attestgate_policy::capability::{refused, Host};
/// let config: attestgate_policy::Config = serde_json::from_str(
///     r#"{ "keys": {}, "rules": [{ "rate_limit": { "requests": 1, "per_seconds": 600 } }] }"#,
/// ).unwrap();
/// assert_eq!(refused(&config, Host::Js).unwrap().field, "rules[0].rate_limit");
/// assert!(refused(&config, Host::Envoy).is_none());
/// assert!(refused(&config, Host::Worker).is_none());
/// ```
pub fn refused(config: &Config, host: Host) -> Option<Demand> {
    demands(config).into_iter().find(|demand| {
        demand.need.capability.refuses_without() && !host.has(demand.need.capability)
    })
}

/// The hosts that have `capability`, by their short names, for a refusal's message.
pub(crate) fn hosts_with(capability: Capability) -> String {
    let names: Vec<&str> = Host::with(capability).map(Host::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    /// Each need is found by `demands` in a config that uses it, and only there.
    #[test]
    fn every_need_is_found_where_it_is_used() {
        let remote = r#"{"upstream":"u","authority":"a","path":"/x"}"#;
        let samples = [
            (
                "keys.remote",
                format!(r#"{{"keys":{{"remote":{remote}}}}}"#),
            ),
            (
                "denylist.remote",
                format!(r#"{{"keys":{{}},"denylist":{{"remote":{remote}}}}}"#),
            ),
            (
                "rules[].rate_limit",
                r#"{"keys":{},"rules":[{"rate_limit":{"requests":1,"per_seconds":1}}]}"#.into(),
            ),
            (
                "host_verification",
                r#"{"host_verification":{"payload_in_metadata":"p"}}"#.into(),
            ),
            (
                "signature",
                r#"{"keys":{},"signature":{"mode":"optional"}}"#.into(),
            ),
            (
                "rules[].signature",
                r#"{"keys":{},"rules":[{"signature":{"mode":"required"}}]}"#.into(),
            ),
            (
                "log_decisions",
                r#"{"keys":{},"log_decisions":true}"#.into(),
            ),
            (
                "decision_log",
                r#"{"keys":{},"log_decisions":true,"decision_log":{}}"#.into(),
            ),
            (
                "record_fields",
                r#"{"keys":{},"record_fields":["platform"]}"#.into(),
            ),
            ("cache", r#"{"keys":{}}"#.into()),
            ("forward", r#"{"keys":{},"forward":true}"#.into()),
        ];
        assert_eq!(samples.len(), NEEDS.len());
        for (field, json) in &samples {
            let mut config = config(json);
            if *field != "cache" {
                config.cache.entries = 0;
            }
            let found: Vec<&str> = demands(&config).iter().map(|d| d.need.field).collect();
            // A decision_log block only comes with log_decisions (the gate refuses it alone).
            let want = match *field {
                "decision_log" => vec!["decision_log", "log_decisions"],
                other => vec![other],
            };
            assert_eq!(found, want, "{json}");
        }
        let quiet = config(r#"{"keys":{},"cache":{"entries":0},"signature":{"mode":"off"}}"#);
        assert!(demands(&quiet).is_empty());
    }

    #[test]
    fn host_names_round_trip_and_every_capability_has_a_host() {
        for host in Host::ALL {
            assert_eq!(host.as_str().parse::<Host>(), Ok(host));
        }
        for capability in Capability::ALL {
            assert!(Host::with(capability).next().is_some(), "{capability:?}");
            assert_ne!(hosts_with(capability), "none");
        }
    }
}
