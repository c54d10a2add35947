//! The configuration model: what operators write, as JSON (the filter) or YAML (the CLI).
//!
//! Every struct rejects unknown fields, so a typo such as `"leway_seconds"` fails the load with
//! serde's message naming the field instead of silently falling back to a default.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole gate configuration. [`crate::Gate::from_config`] turns it into a ready gate.
///
/// ```
/// let config: attestgate_policy::Config = serde_json::from_str(r#"{
///     "keys": { "approov_secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==" },
///     "issuer": "approov.io"
/// }"#).unwrap();
/// assert_eq!(config.token.header, "approov-token");
/// assert_eq!(config.leeway_seconds, 60);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [{ "required": ["keys"] }, { "required": ["host_verification"] }]))]
pub struct Config {
    /// Where the token is found in the request.
    #[serde(default)]
    pub token: TokenConfig,
    /// The keys tokens may be signed with. Leave empty with `host_verification`.
    #[serde(default, skip_serializing_if = "KeysConfig::is_empty")]
    pub keys: KeysConfig,
    /// Hybrid mode: the gateway verified the token's signature before the filter ran (Envoy's
    /// `jwt_authn`, whose BoringSSL is several times faster at ES256/RS256 than verifying in
    /// wasm). The gate then checks everything but the signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_verification: Option<HostVerification>,
    /// Required `iss` claim, when set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values, when set: the token's `aud` must contain one of them.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub audiences: Option<Vec<String>>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u32,
    /// Whether a token without `exp` is refused.
    #[serde(default = "default_true")]
    pub require_exp: bool,
    /// Token binding: the hash of chosen request headers carried in a claim.
    #[serde(default)]
    pub binding: Option<BindingConfig>,
    /// Rego device-trust policy. Without one, a verified token is enough.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Default mode for requests no rule matches (`bypass` only in a rule).
    #[serde(default)]
    #[schemars(extend("enum" = ["enforce", "monitor"]))]
    pub mode: Mode,
    /// Per-route rules, first match wins.
    #[serde(default)]
    pub rules: Vec<RouteRule>,
    /// Whether the token header goes on to the upstream (jwt_authn's `forward`).
    #[serde(default)]
    pub forward: bool,
    /// Verified claims copied into upstream request headers.
    #[serde(default)]
    pub claim_to_headers: Vec<ClaimHeader>,
    /// Install-key request signatures (RFC 9421) for requests no rule configures; off by default.
    #[serde(default, skip_serializing_if = "SignatureConfig::is_default")]
    pub signature: SignatureConfig,
    /// Whether the filter logs every decision as JSON at debug level (for diagnosis and for
    /// `attestgate check --wasm`; off in production, where it costs a serialization per request).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_decisions: bool,
    /// With `log_decisions`: which decisions are logged and which of their fields never are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_log: Option<DecisionLogConfig>,
    /// Devices to refuse (`device_denied`), inline and/or fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denylist: Option<DenylistConfig>,
    /// The per-worker decision cache: on by default, 10 000 entries.
    #[serde(default, skip_serializing_if = "CacheConfig::is_default")]
    pub cache: CacheConfig,
    /// Decision-record fields the host also keeps one by one, beside the whole record, for
    /// matchers and logs that read a single value (Envoy: filter state
    /// `wasm.attestgate.<field>`, which RBAC's `filter_state` principal reads). None by
    /// default: in Envoy each is one more write into the stream's filter state a request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 12))]
    pub record_fields: Vec<RecordField>,
}

/// A field of the decision record, named as in its JSON.
///
/// ```
/// use attestgate_policy::RecordField;
/// let field: RecordField = serde_json::from_str(r#""app_version""#).unwrap();
/// assert_eq!(field.as_str(), "app_version");
/// assert_eq!(RecordField::ALL.len(), 12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordField {
    /// `allow` or `deny`, before monitor mode.
    Verdict,
    /// Whether the request went on.
    Allowed,
    /// The mode that applied.
    Mode,
    /// The HTTP status of the answer (200 when allowed).
    Status,
    /// The decision's reason.
    Reason,
    /// The policy's reasons, joined with `,`.
    PolicyReasons,
    /// How many policy reasons the record left out.
    PolicyReasonsDropped,
    /// The route rule that matched.
    Rule,
    /// The verified device id.
    Device,
    /// The attested platform.
    Platform,
    /// The attested app version.
    AppVersion,
    /// Whether the decision cache answered: `hit`, `miss` or none.
    Cache,
}

impl RecordField {
    /// Every field, in the record's order.
    pub const ALL: [RecordField; 12] = [
        RecordField::Verdict,
        RecordField::Allowed,
        RecordField::Mode,
        RecordField::Status,
        RecordField::Reason,
        RecordField::PolicyReasons,
        RecordField::PolicyReasonsDropped,
        RecordField::Rule,
        RecordField::Device,
        RecordField::Platform,
        RecordField::AppVersion,
        RecordField::Cache,
    ];

    /// The field's name in the record's JSON.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::RecordField::PolicyReasons.as_str(), "policy_reasons");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordField::Verdict => "verdict",
            RecordField::Allowed => "allowed",
            RecordField::Mode => "mode",
            RecordField::Status => "status",
            RecordField::Reason => "reason",
            RecordField::PolicyReasons => "policy_reasons",
            RecordField::PolicyReasonsDropped => "policy_reasons_dropped",
            RecordField::Rule => "rule",
            RecordField::Device => "device",
            RecordField::Platform => "platform",
            RecordField::AppVersion => "app_version",
            RecordField::Cache => "cache",
        }
    }
}

/// The decision cache's size. `entries: 0` turns it off.
///
/// ```
/// let config: attestgate_policy::Config =
///     serde_json::from_str(r#"{ "keys": {}, "cache": { "entries": 0 } }"#).unwrap();
/// assert_eq!(config.cache.entries, 0); // no cache
/// let default: attestgate_policy::CacheConfig = serde_json::from_str("{}").unwrap();
/// assert_eq!(default.entries, 10_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Most cached verified tokens (and, separately, most cached decisions) per worker.
    #[serde(default = "default_cache_entries")]
    pub entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            entries: default_cache_entries(),
        }
    }
}

impl CacheConfig {
    fn is_default(&self) -> bool {
        *self == CacheConfig::default()
    }
}

fn default_cache_entries() -> usize {
    10_000
}

/// Where to find the token.
///
/// ```
/// let token: attestgate_policy::TokenConfig =
///     serde_json::from_str(r#"{ "header": "authorization", "prefix": "Bearer " }"#).unwrap();
/// assert_eq!(token.prefix.as_deref(), Some("Bearer "));
/// assert_eq!(token.max_bytes, 8192); // the default
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Header name, matched case-insensitively.
    #[serde(default = "default_token_header")]
    #[schemars(pattern(HEADER_NAME_PATTERN))]
    pub header: String,
    /// Prefix before the token, such as `Bearer `, matched case-insensitively.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Longest token accepted, in bytes.
    #[serde(default = "default_max_token_bytes")]
    #[schemars(range(min = 1, max = MAX_TOKEN_BYTES))]
    pub max_bytes: usize,
    /// Deepest JSON nesting accepted in the token header and claims.
    #[serde(default = "default_max_json_depth")]
    #[schemars(range(min = 1, max = MAX_JSON_DEPTH))]
    pub max_json_depth: usize,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            header: default_token_header(),
            prefix: None,
            max_bytes: default_max_token_bytes(),
            max_json_depth: default_max_json_depth(),
        }
    }
}

/// Verification keys: a JWKS plus the Approov-style shared secret.
///
/// ```
/// let keys: attestgate_policy::KeysConfig = serde_json::from_str(r#"{
///     "approov_secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
///     "keys": [{ "kty": "EC", "crv": "P-256", "kid": "k1", "x": "…", "y": "…" }]
/// }"#).unwrap();
/// assert_eq!(keys.keys.len(), 1); // parsed and checked when the gate loads
/// assert!(keys.remote.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    { "required": ["approov_secret"], "properties": { "approov_secret": { "type": "string" } } },
    { "required": ["keys"], "properties": { "keys": { "minItems": 1 } } },
    { "required": ["remote"], "properties": { "remote": { "type": "object" } } },
]))]
pub struct KeysConfig {
    /// Public JWKs (or `oct` secrets), each pinned to one algorithm.
    #[serde(default)]
    #[schemars(schema_with = "jwk_list_schema")]
    pub keys: Vec<serde_json::Map<String, serde_json::Value>>,
    /// An HS256 secret as base64 (standard or url-safe, padded or not), as Approov hands it out.
    #[serde(default)]
    pub approov_secret: Option<String>,
    /// A JWKS fetched from an upstream and refreshed, so keys rotate without a redeploy.
    /// Used beside the local keys; with no local keys, requests are refused with
    /// `keys_unavailable` until the first fetch succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteSource>,
}

/// Where the gateway's own JWT verifier records that it verified the request's token: the
/// filter requires that record on every request it decides, and refuses the request without
/// it (`signature_invalid`). Everything else (structure, `exp`/`nbf`, `iss`/`aud`, binding,
/// denylist, policy) the gate still checks itself.
///
/// In Envoy: a `jwt_authn` provider that reads the same header (`from_headers`), keeps it
/// (`forward: true`) and sets `payload_in_metadata` to the name given here.
///
/// ```
/// let host: attestgate_policy::HostVerification =
///     serde_json::from_str(r#"{ "payload_in_metadata": "jwt_payload" }"#).unwrap();
/// assert_eq!(host.filter, "envoy.filters.http.jwt_authn"); // the default
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostVerification {
    /// The dynamic-metadata namespace the verifier writes to.
    #[serde(default = "default_verifier")]
    #[schemars(length(min = 1))]
    pub filter: String,
    /// The key the verified payload is stored under (jwt_authn's `payload_in_metadata`).
    #[schemars(length(min = 1))]
    pub payload_in_metadata: String,
}

fn default_verifier() -> String {
    "envoy.filters.http.jwt_authn".to_owned()
}

impl KeysConfig {
    /// No key, secret or fetched JWKS: what a hybrid-mode config has.
    pub(crate) fn is_empty(&self) -> bool {
        self == &KeysConfig::default()
    }
}

/// A document fetched over HTTP by the gateway (a JWKS or a device denylist).
///
/// ```
/// let remote: attestgate_policy::RemoteSource = serde_json::from_str(
///     r#"{ "upstream": "keyserver", "authority": "keys.example.com", "path": "/jwks.json" }"#,
/// ).unwrap();
/// assert_eq!((remote.refresh_seconds, remote.timeout_ms, remote.max_bytes), (300, 5000, 65536));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteSource {
    /// Where to send the request: an Envoy cluster name, or `host:port` on Kong and NGINX.
    #[schemars(length(min = 1))]
    pub upstream: String,
    /// The request's `:authority`.
    #[schemars(length(min = 1))]
    pub authority: String,
    /// The request's path.
    #[schemars(pattern("^/"))]
    pub path: String,
    /// Seconds between fetches.
    #[serde(default = "default_refresh_seconds")]
    #[schemars(range(min = 1))]
    pub refresh_seconds: u32,
    /// How long a fetch may take.
    #[serde(default = "default_fetch_timeout_ms")]
    #[schemars(range(min = 1))]
    pub timeout_ms: u32,
    /// Largest response body accepted, in bytes.
    #[serde(default = "default_fetch_max_bytes")]
    #[schemars(range(min = 1))]
    pub max_bytes: usize,
}

fn default_refresh_seconds() -> u32 {
    300
}

fn default_fetch_timeout_ms() -> u32 {
    5000
}

fn default_fetch_max_bytes() -> usize {
    64 * 1024
}

/// How decisions are logged with `log_decisions` (after OPA's decision logs): a share of them,
/// and fields never written. The token itself is never part of a decision.
///
/// ```
/// let log: attestgate_policy::DecisionLogConfig =
///     serde_json::from_str(r#"{ "sample_rate": 0.1, "mask": ["claims.did"] }"#).unwrap();
/// assert_eq!(log.sample_rate, 0.1);
/// let all: attestgate_policy::DecisionLogConfig = serde_json::from_str("{}").unwrap();
/// assert_eq!(all.sample_rate, 1.0); // every decision
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// The share of decisions logged, above 0 and at most 1 (all, the default). A request is
    /// sampled by its request id (Envoy's `x-request-id`) where it has one, so every hop of a
    /// request logs it or none does.
    #[serde(default = "default_sample_rate")]
    #[schemars(range(min = 0.000_001, max = 1.0))]
    pub sample_rate: f64,
    /// Fields of the logged decision never written, as dot paths into its JSON
    /// (`claims.did`, `claims.att.device`, `headers`, `detail`): removed, and named in the
    /// line's `erased` list.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub mask: Vec<String>,
}

fn default_sample_rate() -> f64 {
    1.0
}

/// Devices refused whatever their token says.
///
/// ```
/// let denylist: attestgate_policy::DenylistConfig =
///     serde_json::from_str(r#"{ "devices": ["stolen-device-7"] }"#).unwrap();
/// assert_eq!(denylist.claim, "did"); // the claim the ids are matched against
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DenylistConfig {
    /// Device ids given inline.
    #[serde(default)]
    pub devices: Vec<String>,
    /// A list fetched and refreshed like a remote JWKS: `{"devices": ["id", ...]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteSource>,
    /// The claim holding the device id.
    #[serde(default = "default_device_claim")]
    #[schemars(length(min = 1))]
    pub claim: String,
}

fn default_device_claim() -> String {
    "did".to_owned()
}

/// A token bucket per device: `requests` may be spent at once, and they come back at
/// `requests` per `per_seconds`.
///
/// ```
/// let rule: attestgate_policy::RouteRule = serde_json::from_str(
///     r#"{ "path": "/v1/login", "rate_limit": { "requests": 5, "per_seconds": 60 } }"#,
/// ).unwrap();
/// let limit = rule.rate_limit.unwrap();
/// assert_eq!((limit.requests, limit.per_seconds), (5, 60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Bucket size, and requests regained per period.
    #[schemars(range(min = 1))]
    pub requests: u32,
    /// The period, in seconds.
    #[schemars(range(min = 1))]
    pub per_seconds: u32,
}

/// The Approov token binding.
///
/// ```
/// let binding: attestgate_policy::BindingConfig =
///     serde_json::from_str(r#"{ "headers": ["authorization"], "required": true }"#).unwrap();
/// assert_eq!(binding.claim, "pay"); // Approov's binding claim
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// Headers whose values, concatenated in this order, are hashed.
    #[schemars(length(min = 1), inner(pattern(HEADER_NAME_PATTERN)))]
    pub headers: Vec<String>,
    /// Claim that carries the base64 SHA-256 of those values.
    #[serde(default = "default_binding_claim")]
    #[schemars(length(min = 1))]
    pub claim: String,
    /// Whether a token without the claim is refused.
    #[serde(default)]
    pub required: bool,
}

/// The Rego policy.
///
/// ```
/// let policy: attestgate_policy::PolicyConfig = serde_json::from_str(r#"{
///     "modules": { "gate.rego": "package attestgate\nimport rego.v1\ndecision := {\"allow\": true}" }
/// }"#).unwrap();
/// assert_eq!(policy.entrypoint, "data.attestgate.decision");
/// assert!(policy.data.as_object().unwrap().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("required" = ["modules"]))]
pub struct PolicyConfig {
    /// Rego v1 modules by file name, inlined: the filter reads no files.
    #[serde(default)]
    #[schemars(extend("minProperties" = 1))]
    pub modules: BTreeMap<String, String>,
    /// Rego files to read. Only the CLI reads files (it moves them into `modules`); the filter
    /// refuses them, and so does the schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 0))]
    pub module_files: Vec<String>,
    /// Rule whose value is the decision.
    #[serde(default = "default_entrypoint")]
    pub entrypoint: String,
    /// Policy data, visible as `data` (the default policy reads `data.device_trust`).
    #[serde(default = "empty_object")]
    #[schemars(extend("type" = "object"))]
    pub data: serde_json::Value,
}

/// What happens to a request.
///
/// ```
/// use attestgate_policy::Mode;
/// let mode: Mode = serde_json::from_str(r#""monitor""#).unwrap();
/// assert_eq!(mode, Mode::Monitor);
/// assert_eq!(Mode::default(), Mode::Enforce);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Deny what fails.
    #[default]
    Enforce,
    /// Decide, report, but let everything through.
    Monitor,
    /// Skip the gate (health checks and the like). Only valid in a rule.
    Bypass,
}

impl Mode {
    /// The name used in config and output.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::Mode::Monitor.as_str(), "monitor");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Monitor => "monitor",
            Mode::Bypass => "bypass",
        }
    }
}

/// A per-route rule. All given conditions must hold.
///
/// ```
/// let rule: attestgate_policy::RouteRule =
///     serde_json::from_str(r#"{ "name": "health", "path": "/health", "mode": "bypass" }"#).unwrap();
/// assert_eq!(rule.mode, Some(attestgate_policy::Mode::Bypass));
/// assert!(rule.methods.is_empty()); // any method
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("not" = {
    "description": "path and path_prefix together",
    "required": ["path", "path_prefix"],
    "properties": { "path": { "type": "string" }, "path_prefix": { "type": "string" } },
}))]
pub struct RouteRule {
    /// Name reported in decisions and given to the policy as `input.rule`.
    #[serde(default)]
    pub name: Option<String>,
    /// Exact path (query string ignored).
    #[serde(default)]
    pub path: Option<String>,
    /// Path prefix, matched on segment boundaries unless `prefix_match` says `string`:
    /// `/beta` matches `/beta` and `/beta/…`, not `/betamax`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// How `path_prefix` matches: `segment` (default, like Envoy's `path_separated_prefix`)
    /// or `string` (any path that starts with the prefix's characters).
    #[serde(default, skip_serializing_if = "PrefixMatch::is_default")]
    pub prefix_match: PrefixMatch,
    /// Methods; empty matches any.
    #[serde(default)]
    #[schemars(inner(pattern(HEADER_NAME_PATTERN)))]
    pub methods: Vec<String>,
    /// Mode for matching requests; the top-level mode when absent.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Another policy entrypoint for matching requests.
    #[serde(default)]
    pub entrypoint: Option<String>,
    /// Per-device rate limit for matching requests (by source IP when the token has no
    /// device id), shared by the gateway's workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Request signatures for matching requests, replacing the top-level `signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureConfig>,
}

/// How a rule's `path_prefix` matches a path.
///
/// ```
/// let rule: attestgate_policy::RouteRule =
///     serde_json::from_str(r#"{ "path_prefix": "/beta", "prefix_match": "string" }"#).unwrap();
/// assert_eq!(rule.prefix_match, attestgate_policy::PrefixMatch::String);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMatch {
    /// The prefix is the path or ends where a segment ends: `/beta` matches `/beta`,
    /// `/beta/` and `/beta/x`, not `/betamax`.
    #[default]
    Segment,
    /// The path starts with the prefix's characters: `/beta` also matches `/betamax`.
    String,
}

impl PrefixMatch {
    fn is_default(&self) -> bool {
        *self == PrefixMatch::default()
    }

    /// Whether `path` (a resolved reading) falls under `prefix`.
    ///
    /// ```
    /// use attestgate_policy::PrefixMatch;
    /// assert!(PrefixMatch::Segment.matches("/beta", "/beta/x"));
    /// assert!(!PrefixMatch::Segment.matches("/beta", "/betamax"));
    /// assert!(PrefixMatch::String.matches("/beta", "/betamax"));
    /// ```
    pub fn matches(self, prefix: &str, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(prefix) else {
            return false;
        };
        match self {
            PrefixMatch::String => true,
            PrefixMatch::Segment => {
                rest.is_empty() || rest.starts_with('/') || prefix.ends_with('/')
            }
        }
    }
}

/// Copies a verified claim into an upstream header.
///
/// ```
/// let mapping: attestgate_policy::ClaimHeader =
///     serde_json::from_str(r#"{ "claim": "att.device.platform", "header": "x-device-platform" }"#)
///         .unwrap();
/// assert_eq!(mapping.header, "x-device-platform");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimHeader {
    /// Claim name; nested claims by dotted path, e.g. `att.device.platform`.
    #[schemars(length(min = 1))]
    pub claim: String,
    /// Header to set.
    #[schemars(pattern(HEADER_NAME_PATTERN))]
    pub header: String,
}

fn default_leeway() -> u32 {
    60
}
fn default_true() -> bool {
    true
}
fn default_token_header() -> String {
    "approov-token".to_owned()
}
fn default_max_token_bytes() -> usize {
    8 * 1024
}
fn default_max_json_depth() -> usize {
    16
}
fn default_binding_claim() -> String {
    "pay".to_owned()
}
fn default_entrypoint() -> String {
    "data.attestgate.decision".to_owned()
}
fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// Whether a route checks request signatures.
///
/// ```
/// use attestgate_policy::signature::SignatureMode;
/// let mode: SignatureMode = serde_json::from_str(r#""required""#).unwrap();
/// assert_eq!(mode, SignatureMode::Required);
/// assert_eq!(SignatureMode::default(), SignatureMode::Off);
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SignatureMode {
    /// Not checked; `input.signature.valid` is always false.
    #[default]
    Off,
    /// Checked when the request is signed and the token names a key: a signature that is
    /// present but fails is refused; an unsigned request (or a token without the key claim,
    /// as fail-over tokens may be) goes on with `input.signature.valid` false.
    Optional,
    /// Every request must carry the accepted signature(s), valid.
    Required,
}

/// Which signatures satisfy a route: Approov's SDK signs with the install key where the
/// device has secure hardware and with the account key always (either may be missing).
///
/// ```
/// use attestgate_policy::signature::{Accept, SignatureConfig};
/// let config: SignatureConfig =
///     serde_json::from_str(r#"{ "mode": "required", "accept": "both" }"#).unwrap();
/// assert_eq!(config.accept, Some(Accept::Both));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Accept {
    /// The install signature (the default without an `account_secret`).
    Install,
    /// The account signature.
    Account,
    /// Either one (the default with an `account_secret`).
    Either,
    /// Both.
    Both,
}

impl Accept {
    /// Whether install signatures count.
    pub(crate) fn covers_install(self) -> bool {
        matches!(self, Accept::Install | Accept::Either | Accept::Both)
    }

    /// Whether account signatures count.
    pub(crate) fn covers_account(self) -> bool {
        matches!(self, Accept::Account | Accept::Either | Accept::Both)
    }
}

/// The `signature` config block, top level or per rule (a rule's block replaces the top
/// level one).
///
/// ```
/// use attestgate_policy::signature::{SignatureConfig, SignatureMode};
/// let config: SignatureConfig = serde_json::from_str(r#"{ "mode": "optional" }"#).unwrap();
/// assert_eq!(config.mode, SignatureMode::Optional);
/// assert_eq!(config.components, ["@method", "@target-uri"]); // the default
/// assert_eq!(config.max_body_bytes, 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// `off` (default), `optional` or `required`.
    #[serde(default)]
    pub mode: SignatureMode,
    /// The install signature's label.
    #[serde(default = "default_label")]
    #[schemars(pattern(LABEL_PATTERN))]
    pub label: String,
    /// Components every accepted signature must cover (it may cover more).
    #[serde(default = "default_components")]
    #[schemars(inner(pattern(COMPONENT_PATTERN)))]
    pub components: Vec<String>,
    /// Maximum seconds since `created`; 0 for no limit.
    #[serde(default = "default_max_age")]
    pub max_age_seconds: u32,
    /// Allowed clock difference on `created` and `expires`.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u32,
    /// The token claim holding the install key (base64 DER SubjectPublicKeyInfo, P-256).
    #[serde(default = "default_key_claim")]
    #[schemars(length(min = 1))]
    pub key_claim: String,
    /// The scheme `@scheme` and `@target-uri` use (the gate sits behind TLS termination).
    #[serde(default = "default_scheme")]
    #[schemars(extend("enum" = ["https", "http"]))]
    pub scheme: String,
    /// Which signatures count: `install`, `account`, `either` or `both`. Default: `either`
    /// with an `account_secret`, else `install`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Accept>,
    /// The account message-signing key for `hmac-sha256` signatures: base64, like
    /// `approov_secret`; at least 32 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_secret: Option<String>,
    /// The account signature's label.
    #[serde(default = "default_account_label")]
    #[schemars(pattern(LABEL_PATTERN))]
    pub account_label: String,
    /// Most body bytes read when a received signature covers `content-digest`; a longer body
    /// is refused with 413 `body_too_large`.
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1, max = MAX_MAX_BODY_BYTES))]
    pub max_body_bytes: usize,
}

/// The install signature's label unless configured otherwise.
pub const DEFAULT_LABEL: &str = "install";

/// The account signature's label unless configured otherwise.
pub const DEFAULT_ACCOUNT_LABEL: &str = "account";

fn default_label() -> String {
    DEFAULT_LABEL.to_owned()
}
fn default_account_label() -> String {
    DEFAULT_ACCOUNT_LABEL.to_owned()
}
fn default_components() -> Vec<String> {
    vec!["@method".to_owned(), "@target-uri".to_owned()]
}
fn default_max_age() -> u32 {
    300
}
fn default_skew() -> u32 {
    30
}
fn default_key_claim() -> String {
    "ipk".to_owned()
}
fn default_scheme() -> String {
    "https".to_owned()
}
/// The default `max_body_bytes`: 1 MiB, Envoy's default connection buffer.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The largest `max_body_bytes` accepted.
pub(crate) const MAX_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

impl Default for SignatureConfig {
    fn default() -> SignatureConfig {
        SignatureConfig {
            mode: SignatureMode::Off,
            label: default_label(),
            components: default_components(),
            max_age_seconds: default_max_age(),
            clock_skew_seconds: default_skew(),
            key_claim: default_key_claim(),
            scheme: default_scheme(),
            accept: None,
            account_secret: None,
            account_label: default_account_label(),
            max_body_bytes: default_max_body_bytes(),
        }
    }
}

impl SignatureConfig {
    /// Whether this is the default (for `skip_serializing_if`).
    pub(crate) fn is_default(&self) -> bool {
        *self == SignatureConfig::default()
    }

    /// Which signatures count, with the default resolved.
    pub(crate) fn acceptance(&self) -> Accept {
        self.accept.unwrap_or(if self.account_secret.is_some() {
            Accept::Either
        } else {
            Accept::Install
        })
    }
}

/// An HTTP field name (RFC 9110 `token`), as [`crate::Request`]'s header predicates accept it.
const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// A signature label: an RFC 8941 key.
const LABEL_PATTERN: &str = "^[a-z*][a-z0-9_.*-]*$";
/// A covered component: a supported derived component, or a lower-case field name.
const COMPONENT_PATTERN: &str =
    "^(@(method|scheme|authority|path|query|request-target|target-uri)|[!#$%&'*+.^_`|~0-9a-z-]+)$";
/// The largest `token.max_bytes` accepted.
pub(crate) const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// The largest `token.max_json_depth` accepted.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// What `keys.keys` holds: public JWKs (or `oct` secrets) that the keys module parses from
/// JSON objects itself; this is their schema.
fn jwk_list_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "description": "A public JWK (or an oct secret), pinned to one algorithm. Private members (d, p, q, dp, dq, qi, oth) are refused: configure the public key only.",
            "additionalProperties": false,
            "required": ["kty"],
            "properties": {
                "kty": { "type": "string", "enum": JWK_KEY_TYPES, "description": "Key type." },
                "alg": {
                    "type": "string",
                    "enum": JWK_ALGORITHMS,
                    "description": "The one algorithm this key verifies. Without it: HS256 for oct, ES256 for EC P-256, RS256 for RSA, EdDSA for OKP Ed25519 (PS256 must be named)."
                },
                "kid": { "type": "string", "description": "Key id, matched against the token's kid; unique across keys." },
                "use": { "type": "string", "enum": ["sig"], "description": "Only signature keys are accepted." },
                "key_ops": {
                    "type": "array",
                    "items": { "type": "string" },
                    "not": { "items": { "not": { "enum": ["verify"] } } },
                    "description": "When present, must include \"verify\"."
                },
                "crv": { "type": "string", "enum": ["P-256", "Ed25519"], "description": "P-256 for EC keys, Ed25519 for OKP keys." },
                "x": { "type": "string", "description": "EC or OKP public key, base64url." },
                "y": { "type": "string", "description": "EC public key y coordinate, base64url." },
                "n": { "type": "string", "description": "RSA modulus, base64url; at least 2048 bits." },
                "e": { "type": "string", "description": "RSA public exponent, base64url." },
                "k": { "type": "string", "description": "oct secret, base64url; at least 32 bytes (48 for HS384, 64 for HS512)." },
                "x5u": { "type": "string", "description": "Accepted and ignored." },
                "x5c": { "type": "array", "items": { "type": "string" }, "description": "Accepted and ignored." },
                "x5t": { "type": "string", "description": "Accepted and ignored." },
                "x5t#S256": { "type": "string", "description": "Accepted and ignored." },
                "ext": { "type": "boolean", "description": "Accepted and ignored." }
            }
        },
        "default": [],
    })
}

/// The JWK key types a key may have (the keys module's unit tests hold it to the parser).
pub(crate) const JWK_KEY_TYPES: [&str; 4] = ["oct", "EC", "RSA", "OKP"];
/// The JOSE algorithms a key may be pinned to (likewise held to the parser).
pub(crate) const JWK_ALGORITHMS: [&str; 11] = [
    "HS256", "HS384", "HS512", "ES256", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "EdDSA",
];

/// The JSON Schema (Draft 4, the draft Kong reads) of the config the filter takes, generated
/// from this model: field names, types, defaults and descriptions come from the structs above,
/// bounds and patterns from their `schemars` attributes. What a schema cannot say (key
/// material, Rego, most cross-field rules) [`crate::Gate::from_config`] still checks.
///
/// ```
/// let schema = attestgate_policy::config_schema();
/// assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
/// assert_eq!(schema["properties"]["token"]["properties"]["max_bytes"]["maximum"], 65536);
/// assert_eq!(schema["properties"]["leeway_seconds"]["default"], 60);
/// ```
pub fn config_schema() -> serde_json::Value {
    let mut settings = schemars::generate::SchemaSettings::draft07();
    settings.inline_subschemas = true;
    settings.meta_schema = Some("http://json-schema.org/draft-04/schema#".into());
    let mut schema = settings.into_generator().into_root_schema_for::<Config>();
    schemars::transform::Transform::transform(&mut Draft4, &mut schema);
    let mut value = schema.to_value();
    if let Some(root) = value.as_object_mut() {
        root.insert("title".into(), "attestgate gate config".into());
        root.insert(
            "description".into(),
            "The attestgate filter's configuration: the same JSON the filter gets in Envoy. \
             Kong passes it to the filter as a JSON string, which on_configure parses and loads; \
             the filter still checks what a schema cannot (key material, Rego, cross-field rules)."
                .into(),
        );
    }
    value
}

/// Rewrites what schemars writes for later drafts into Draft 4: `const` becomes a one-value
/// `enum`; the integer `format`s Draft 4 does not define become the bounds they stand for.
/// Descriptions (doc comments) become prose: see [`prose`].
#[derive(Debug, Clone, Copy)]
struct Draft4;

impl schemars::transform::Transform for Draft4 {
    fn transform(&mut self, schema: &mut schemars::Schema) {
        if let Some(value) = schema.remove("const") {
            schema.insert("enum".into(), serde_json::Value::Array(vec![value]));
        }
        if let Some(format) = schema.remove("format") {
            let maximum = match format.as_str() {
                Some("uint8") => Some(u64::from(u8::MAX)),
                Some("uint16") => Some(u64::from(u16::MAX)),
                Some("uint32") => Some(u64::from(u32::MAX)),
                _ => None,
            };
            if let (Some(maximum), None) = (maximum, schema.get("maximum")) {
                schema.insert("maximum".into(), maximum.into());
            }
        }
        if let Some(serde_json::Value::String(text)) = schema.get_mut("description") {
            *text = prose(text);
        }
        schemars::transform::transform_subschemas(self, schema);
    }
}

/// A doc comment as a schema description: its code blocks (doc tests) dropped, the line
/// breaks of wrapped lines turned into spaces, paragraphs kept.
fn prose(doc: &str) -> String {
    let (mut paragraphs, mut current, mut in_code) = (Vec::new(), Vec::new(), false);
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if in_code {
        } else if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(current.join(" "));
                current.clear();
            }
        } else {
            current.push(line.trim());
        }
    }
    if !current.is_empty() {
        paragraphs.push(current.join(" "));
    }
    paragraphs.join("\n\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_prose_without_doc_tests() {
        let doc =
            "Copies a claim\ninto a header.\n\n```\nlet x = 1;\n\nassert_eq!(x, 1);\n```\nAfter.";
        assert_eq!(prose(doc), "Copies a claim into a header.\n\nAfter.");
        let schema = config_schema().to_string();
        assert!(
            !schema.contains("```") && !schema.contains("assert"),
            "{schema}"
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = serde_json::from_str::<Config>(r#"{"keys":{},"leway_seconds":5}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `leway_seconds`"),
            "{err}"
        );
        let err =
            serde_json::from_str::<Config>(r#"{"keys":{},"token":{"heder":"x"}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `heder`"), "{err}");
    }

    #[test]
    fn defaults_match_the_documentation() {
        let c: Config = serde_json::from_str(r#"{"keys":{}}"#).unwrap();
        assert_eq!(c.token, TokenConfig::default());
        assert_eq!(c.token.max_bytes, 8192);
        assert_eq!(c.leeway_seconds, 60);
        assert!(c.require_exp);
        assert_eq!(c.mode, Mode::Enforce);
        assert!(!c.forward);
    }

    #[test]
    fn modes_parse_in_snake_case() {
        let r: RouteRule =
            serde_json::from_str(r#"{"path_prefix":"/beta","mode":"monitor"}"#).unwrap();
        assert_eq!(r.mode, Some(Mode::Monitor));
        assert!(serde_json::from_str::<RouteRule>(r#"{"mode":"Monitor"}"#).is_err());
    }
}
