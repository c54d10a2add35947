//! The JavaScript API in plain Rust: JSON in, JSON out, errors as text. `lib.rs` only converts
//! between these and JavaScript values, so everything here is tested natively too.

use std::collections::BTreeMap;

use attestgate_policy::capability::Host;
use attestgate_policy::plan::{host_refusal, plan_request, Action};
use attestgate_policy::record::DecisionRecord;
use attestgate_policy::remote::{Bucket, DocumentError, DocumentKind, Fetched, RateLimiter};
use attestgate_policy::{
    binding_hash, Config, Decision, Explanation, Gate, RateLimit, Reason, Request,
};
use attestgate_testkit::{claims_with_expiry, SigningKey};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The host this build runs as: `js` (the default: Node, browsers, the playground) or
/// `worker` (the Cloudflare Worker over it). Any other name is refused: this build is no other
/// host, and loading as one would accept what it does not carry out.
pub fn host(name: Option<&str>) -> Result<Host, String> {
    match name.unwrap_or("js").parse::<Host>() {
        Ok(host @ (Host::Js | Host::Worker)) => Ok(host),
        Ok(other) => Err(format!(
            "the JavaScript build runs as host `js` or `worker`, not `{}`",
            other.as_str()
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// Loads a gate from its JSON config for `host` (the core refuses what that host cannot carry
/// out: fetched keys and denylists, hybrid mode, decision logging, and in `js` rate limits).
/// The error is the core's message.
pub fn load(config: &str, host: Host) -> Result<Gate, String> {
    Gate::from_json_for(config, host).map_err(|err| err.to_string())
}

/// `{ok: true, keys: [{kid, alg}], rules, policy: {entrypoints}}` when the config loads in
/// `host`, `{ok: false, error}` when it does not.
pub fn check_config(config: &str, host: Host) -> Value {
    let gate = match load(config, host) {
        Ok(gate) => gate,
        Err(error) => return json!({ "ok": false, "error": error }),
    };
    let config = gate.config();
    let keys: Vec<Value> = gate
        .keys()
        .keys()
        .iter()
        .map(|key| json!({ "kid": key.kid(), "alg": key.algorithm().name() }))
        .collect();
    let mut entrypoints: Vec<&str> = config
        .policy
        .iter()
        .map(|p| p.entrypoint.as_str())
        .collect();
    for rule in &config.rules {
        if let Some(entrypoint) = rule.entrypoint.as_deref() {
            if !entrypoints.contains(&entrypoint) {
                entrypoints.push(entrypoint);
            }
        }
    }
    json!({
        "ok": true,
        "keys": keys,
        "rules": config.rules.len(),
        "mode": config.mode.as_str(),
        "token_header": config.token.header,
        "entrypoints": entrypoints,
    })
}

/// A request as JavaScript describes it. Every field is optional; the defaults are the CLI's
/// (`GET /`, host `localhost`). Unknown fields are refused, so a typo is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// `GET` by default.
    #[serde(default)]
    pub method: Option<String>,
    /// `/` by default; may carry a query string.
    #[serde(default)]
    pub path: Option<String>,
    /// `localhost` by default.
    #[serde(default, alias = "authority")]
    pub host: Option<String>,
    /// `[[name, value], ...]` in arrival order, or `{name: value}`.
    #[serde(default)]
    pub headers: Headers,
    /// The client address.
    #[serde(default)]
    pub source_ip: Option<String>,
}

/// Request headers: pairs keep order and repeats; an object is the short form.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Headers {
    /// `[[name, value], ...]`.
    Pairs(Vec<(String, String)>),
    /// `{name: value}`.
    Object(BTreeMap<String, String>),
}

impl Default for Headers {
    fn default() -> Self {
        Headers::Pairs(Vec::new())
    }
}

/// Parses a request description; `null` means `GET /`.
pub fn request_spec(value: Value) -> Result<RequestSpec, String> {
    if value.is_null() {
        return Ok(RequestSpec::default());
    }
    serde_json::from_value(value).map_err(|err| format!("invalid request: {err}"))
}

/// Builds the request as `attestgate check` does: the spec's headers, then the token (if any)
/// in the configured header with the configured prefix.
pub fn build_request(gate: &Gate, token: Option<&str>, spec: RequestSpec) -> Request {
    let mut request = Request::new(
        spec.method.unwrap_or_else(|| "GET".to_owned()),
        spec.path.unwrap_or_else(|| "/".to_owned()),
    )
    .with_host(spec.host.unwrap_or_else(|| "localhost".to_owned()));
    if let Some(ip) = spec.source_ip {
        request = request.with_source_ip(ip);
    }
    request.headers = match spec.headers {
        Headers::Pairs(pairs) => pairs,
        Headers::Object(map) => map.into_iter().collect(),
    };
    if let Some(token) = token {
        let config = &gate.config().token;
        let value = format!("{}{}", config.prefix.as_deref().unwrap_or(""), token.trim());
        request = request.with_header(&config.header, value);
    }
    request
}

/// The decision, exactly as `attestgate check` prints it.
pub fn check(
    gate: &Gate,
    token: Option<&str>,
    request: Value,
    now: i64,
) -> Result<Decision, String> {
    let request = build_request(gate, token, request_spec(request)?);
    Ok(gate.check(&request, now))
}

/// The decision with its working ([`Gate::explain`]).
pub fn explain(
    gate: &Gate,
    token: Option<&str>,
    request: Value,
    now: i64,
) -> Result<Explanation, String> {
    let request = build_request(gate, token, request_spec(request)?);
    Ok(gate.explain(&request, now))
}

/// Most body bytes the request's route reads when the gate needs its body (a signed
/// `content-digest`), `None` when it does not: a host then decides on the first `limit + 1`
/// bytes at most (a longer body is refused with `body_too_large`), as the filter does.
pub fn body_limit(gate: &Gate, request: Value) -> Result<Option<usize>, String> {
    let request = build_request(gate, None, request_spec(request)?);
    Ok(gate
        .needs_body(&request)
        .then(|| gate.max_body_bytes(&request)))
}

/// Decides a request and returns what a host must do, from the core's header plan
/// (`attestgate_policy::plan`, which the proxy-wasm filter and the native library carry out
/// too), so every host rewrites headers the same way:
/// `{decision, action, record}` where `record` is the core's decision record
/// (`attestgate_policy::record::DecisionRecord`, what a host logs of the decision) and `action` is `{forward: true, remove: [name, ...], set: [[name,
/// value], ...], path}` (remove these request headers, then set these, then forward; `path`
/// is the RFC 3986 reading of the path the gate decided on, with the query, for a host whose
/// client resolves paths itself) or `{forward: false, status, headers: [[name, value], ...],
/// body}` (answer locally; nothing goes on). `body` is the request body when [`body_limit`]
/// asked for it.
/// `fetched` is what the host fetched for the gate ([`set_document`]).
///
/// Rate limits: this build keeps no buckets; the host does (the Worker in a Durable Object).
/// When the pipeline reaches a rule's `rate_limit`, the result also has `rate_limit: {bucket,
/// requests, per_seconds}`, the bucket the host must take one request from at the same `now`
/// (the step counted as taken). When the host's bucket refuses, it plans again with `limited`
/// naming that bucket and its retry-after: the core decides the same request at the same
/// `now` alike, so the second plan is the rate-limited decision (429 with `retry-after`, or
/// the monitor report).
pub fn plan(
    gate: &Gate,
    fetched: &Fetched,
    request: Value,
    body: Option<Vec<u8>>,
    now: i64,
    limited: Option<&Limited>,
) -> Result<Value, String> {
    let mut request = build_request(gate, None, request_spec(request)?);
    request.body = body;
    let mut limiter = Recording::new(limited);
    let mut dynamic = fetched.dynamic();
    dynamic.limiter = Some(&mut limiter);
    let (decision, action, outcome) = plan_request(gate, None, &request, now, &mut dynamic);
    let record = serde_json::to_value(DecisionRecord::of(&decision, outcome))
        .map_err(|err| err.to_string())?;
    let decision = serde_json::to_value(&*decision).map_err(|err| err.to_string())?;
    let mut action = action_json(action);
    if let Some(forward) = action
        .as_object_mut()
        .filter(|a| a.get("forward") == Some(&Value::Bool(true)))
    {
        forward.insert("path".to_owned(), json!(request.normalized_target()));
    }
    let mut planned = json!({ "decision": decision, "action": action, "record": record });
    if let (Some((bucket, limit)), Some(planned)) = (limiter.asked, planned.as_object_mut()) {
        planned.insert(
            "rate_limit".to_owned(),
            json!({ "bucket": bucket, "requests": limit.requests, "per_seconds": limit.per_seconds }),
        );
    }
    Ok(planned)
}

/// The bucket a host found over its limit, for [`plan`]: `{bucket, retry_after}` (seconds).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limited {
    /// The bucket key, as [`plan`] named it in `rate_limit.bucket`.
    pub bucket: String,
    /// Seconds until the bucket has a request again (the reply's `retry-after`).
    pub retry_after: u64,
}

/// Parses [`Limited`]; `null` means no bucket is over its limit.
pub fn limited_spec(value: Value) -> Result<Option<Limited>, String> {
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|err| format!("invalid limited: {err}"))
}

/// The rate limiter [`plan`] runs the core with: it keeps no buckets; it records the bucket
/// the pipeline asked for (one per request at most: the matched rule's), and answers that it
/// was taken, except for the `limited` bucket, which it answers with its retry-after.
#[derive(Debug)]
struct Recording<'a> {
    limited: Option<&'a Limited>,
    asked: Option<(String, RateLimit)>,
}

impl<'a> Recording<'a> {
    fn new(limited: Option<&'a Limited>) -> Self {
        Recording {
            limited,
            asked: None,
        }
    }
}

impl RateLimiter for Recording<'_> {
    fn take(&mut self, key: &str, limit: &RateLimit, _now: i64) -> Result<(), u64> {
        self.asked = Some((key.to_owned(), *limit));
        match self.limited {
            Some(limited) if limited.bucket == key => Err(limited.retry_after),
            _ => Ok(()),
        }
    }
}

/// Takes one request from a rate-limit bucket with the core's arithmetic ([`Bucket::take`]),
/// for a host that keeps the buckets itself (the Worker's Durable Object): `state` is the
/// bucket's 16-byte form ([`Bucket::to_bytes`]), `None` for a new (full) bucket. Returns the
/// new state, and `None` when the request was taken or `Some(seconds)` to wait before the
/// next one. A state of another length is an error, never a new bucket.
pub fn take_bucket(
    state: Option<&[u8]>,
    limit: &RateLimit,
    now: i64,
) -> Result<([u8; 16], Option<u64>), String> {
    let state = match state {
        None => None,
        Some(bytes) => Some(
            Bucket::from_bytes(bytes)
                .ok_or_else(|| format!("a bucket's state is 16 bytes, not {}", bytes.len()))?,
        ),
    };
    let (bucket, taken) = Bucket::take(state, limit, now);
    Ok((bucket.to_bytes(), taken.err()))
}

/// A JavaScript number as a rate limit's `requests` or `per_seconds`: a whole number from 1
/// to 2^32 - 1, as the config allows.
pub fn limit_count(name: &str, value: f64) -> Result<u32, String> {
    if value.is_finite() && value.fract() == 0.0 && value >= 1.0 && value <= f64::from(u32::MAX) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // whole, in range
        Ok(value as u32)
    } else {
        Err(format!(
            "{name} must be a whole number of at least 1, not {value}"
        ))
    }
}

/// What the gate's config says to fetch, for a host that fetches (the Worker): `[{kind,
/// field, upstream, authority, path, refresh_seconds, timeout_ms, max_bytes}]`, `kind` being
/// `jwks` or `denylist` and `field` the config field (`keys.remote`, `denylist.remote`).
pub fn remote_sources(gate: &Gate) -> Value {
    let sources: Vec<Value> = DocumentKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let source = kind.source(gate.config())?;
            Some(json!({
                "kind": kind.as_str(),
                "field": kind.field(),
                "upstream": source.upstream,
                "authority": source.authority,
                "path": source.path,
                "refresh_seconds": source.refresh_seconds,
                "timeout_ms": source.timeout_ms,
                "max_bytes": source.max_bytes,
            }))
        })
        .collect();
    Value::Array(sources)
}

/// Hands the gate the body of a good response (status 200) to one of its fetches
/// ([`remote_sources`]): `{changed, skipped: [message, ...]}` when it is taken (`changed`: it
/// differs from the last one; `skipped`: JWKS keys this gate cannot use), the core's message
/// when it is refused (the last good document stays).
pub fn set_document(
    gate: &Gate,
    fetched: &mut Fetched,
    kind: &str,
    body: &[u8],
) -> Result<Value, String> {
    let kind: DocumentKind = kind.parse().map_err(|err: DocumentError| err.to_string())?;
    let accepted = fetched
        .accept(gate.config(), kind, body)
        .map_err(|err| format!("{}: {err}", kind.field()))?;
    Ok(json!({ "changed": accepted.changed, "skipped": accepted.skipped }))
}

/// The reply a host gives when it cannot ask the gate (`config_invalid` for a config that
/// does not load, `internal_error` for its own failure): the filter's refusal, as the
/// `action` of [`plan`]. Unknown reason codes are refused.
pub fn refusal(reason: &str) -> Result<Value, String> {
    let reason = Reason::ALL
        .into_iter()
        .find(|r| r.as_str() == reason)
        .ok_or_else(|| format!("unknown reason `{reason}`"))?;
    Ok(action_json(host_refusal(reason, &[])))
}

fn action_json(action: Action) -> Value {
    match action {
        Action::Continue { remove, set } => {
            json!({ "forward": true, "remove": remove, "set": set })
        }
        Action::Respond {
            status,
            headers,
            body,
        } => json!({ "forward": false, "status": status, "headers": headers, "body": body }),
    }
}

/// Rego modules: `{file: source}` or `[[file, source], ...]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Modules {
    /// `[[file, source], ...]`, loaded in this order.
    Pairs(Vec<(String, String)>),
    /// `{file: source}`.
    Object(BTreeMap<String, String>),
}

impl Modules {
    fn parse(value: Value) -> Result<Vec<(String, String)>, String> {
        let modules = match serde_json::from_value(value)
            .map_err(|_| "modules must be {file: source} or [[file, source], ...]".to_owned())?
        {
            Modules::Pairs(pairs) => pairs,
            Modules::Object(map) => map.into_iter().collect(),
        };
        if modules.is_empty() {
            return Err("no Rego modules given".to_owned());
        }
        Ok(modules)
    }
}

/// Evaluates `query` like `attestgate eval`: the same OPA-style `{result: [...]}` document.
pub fn eval(
    modules: Value,
    input: Option<Value>,
    data: Option<Value>,
    query: &str,
) -> Result<Value, String> {
    let mut engine = regorus::Engine::new();
    for (file, source) in Modules::parse(modules)? {
        engine
            .add_policy(file.clone(), source)
            .map_err(|err| format!("loading {file}: {err:#}"))?;
    }
    if let Some(data) = data {
        if !data.is_object() {
            return Err("data must be a JSON object".to_owned());
        }
        engine
            .add_data(data.into())
            .map_err(|err| format!("{err:#}"))?;
    }
    if let Some(input) = input {
        engine.set_input(input.into());
    }
    let results = engine
        .eval_query(query.to_owned(), false)
        .map_err(|err| format!("{err:#}"))?;
    serde_json::to_value(&results).map_err(|err| err.to_string())
}

/// Runs the modules' `test_` rules like `attestgate test` (each on the interpreter and the
/// compiled plan): `{passed, failed, tests: [{name, passed, error, interpreted_only}]}`, the
/// last the reason a test had no plan, or null.
pub fn test(modules: Value) -> Result<Value, String> {
    let results =
        attestgate_policy::run_rego_tests(&Modules::parse(modules)?).map_err(|e| e.to_string())?;
    let failed = results.iter().filter(|t| !t.passed).count();
    let tests: Vec<Value> = results
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "passed": t.passed,
                "error": t.error,
                "interpreted_only": t.interpreted_only.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    Ok(json!({ "passed": results.len() - failed, "failed": failed, "tests": tests }))
}

/// Signs claims like `attestgate mint`: `key` is a private JWK object, or a string holding an
/// Approov-style base64 HS256 secret. With `exp_in`, `exp` is set to `now + exp_in` (and `iat`
/// to `now` if absent).
pub fn mint(
    key: &Value,
    claims: Value,
    kid: Option<String>,
    exp_in: Option<i64>,
    now: i64,
) -> Result<String, String> {
    let signing = match key {
        Value::String(secret) => SigningKey::hs256_from_base64_secret(secret),
        jwk => SigningKey::from_jwk(jwk),
    }
    .map_err(|err| err.to_string())?;
    let signing = match kid {
        Some(kid) => signing.with_kid(Some(kid)),
        None => signing,
    };
    let Value::Object(claims) = claims else {
        return Err("claims must be a JSON object".to_owned());
    };
    signing
        .sign(&claims_with_expiry(claims, now, exp_in))
        .map_err(|err| err.to_string())
}

/// The token-binding claim value for a request: base64(SHA-256(the bound headers' values)).
/// `None` when a bound header is missing from the request.
pub fn binding(headers: Vec<String>, request: Value) -> Result<Option<String>, String> {
    let spec = request_spec(request)?;
    let mut request = Request::new("GET", "/");
    request.headers = match spec.headers {
        Headers::Pairs(pairs) => pairs,
        Headers::Object(map) => map.into_iter().collect(),
    };
    Ok(binding_hash(&headers, &request))
}

/// A config with its Rego modules moved in from `modules` (the playground edits them apart).
pub fn with_modules(config: &str, modules: Value) -> Result<String, String> {
    let mut config: Config =
        serde_json::from_str(config).map_err(|err| format!("invalid config: {err}"))?;
    let modules: Map<String, Value> = match modules {
        Value::Object(map) => map,
        _ => return Err("modules must be {file: source}".to_owned()),
    };
    let policy = config
        .policy
        .as_mut()
        .ok_or("the config has no `policy` to put the modules in")?;
    for (name, source) in modules {
        let Value::String(source) = source else {
            return Err(format!("module `{name}` must be a string"));
        };
        policy.modules.insert(name, source);
    }
    serde_json::to_string(&config).map_err(|err| err.to_string())
}

/// A JavaScript number of seconds as an `i64`: it must be a whole number that a double holds
/// exactly.
pub fn seconds(now: f64) -> Result<i64, String> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0; // 2^53 - 1
    if now.is_finite() && now.fract() == 0.0 && now.abs() <= MAX_SAFE {
        #[allow(clippy::cast_possible_truncation)] // whole and within ±2^53: exact
        Ok(now as i64)
    } else {
        Err(format!("now must be whole unix seconds, not {now}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use attestgate_policy::Reason;

    const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    const NOW: i64 = 1_700_000_000;

    fn config(extra: Value) -> String {
        let mut config = json!({ "keys": { "approov_secret": SECRET } });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config.to_string()
    }

    fn token(claims: Value) -> String {
        mint(&json!(SECRET), claims, None, Some(300), NOW).unwrap()
    }

    #[test]
    fn check_config_reports_keys_or_the_error() {
        let ok = check_config(&config(json!({})), Host::Js);
        assert_eq!(ok["ok"], true);
        assert_eq!(ok["keys"], json!([{"kid": null, "alg": "HS256"}]));
        assert_eq!(ok["token_header"], "approov-token");

        let weak = check_config(r#"{"keys":{"approov_secret":"c2hvcnQ="}}"#, Host::Js);
        assert_eq!(weak["ok"], false);
        assert_eq!(
            weak["error"],
            "invalid key approov_secret: weak key: HS256 secret is 5 bytes, at least 32 required"
        );
        let typo = check_config(&config(json!({"leway_seconds": 1})), Host::Js);
        assert!(typo["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `leway_seconds`"));
        assert_eq!(check_config("not json", Host::Js)["ok"], false);
    }

    #[test]
    fn what_the_js_build_and_the_worker_cannot_carry_out_is_refused_at_load() {
        let remote = json!({"upstream": "u", "authority": "a.example", "path": "/x"});
        let both = [
            (Host::Js, "the JavaScript build"),
            (Host::Worker, "the Cloudflare Worker"),
        ];
        let js_only = &both[..1];
        for (extra, field, refused_by) in [
            // The Worker keeps buckets in a Durable Object and fetches (worker/src/); the
            // JavaScript build does neither.
            (
                json!({"rules": [{"rate_limit": {"requests": 1, "per_seconds": 600}}]}),
                "`rules[0].rate_limit`",
                js_only,
            ),
            (
                json!({"denylist": {"remote": remote}}),
                "`denylist.remote`",
                js_only,
            ),
            (
                json!({"keys": {"remote": remote}}),
                "`keys.remote`",
                js_only,
            ),
            (json!({"log_decisions": true}), "`log_decisions`", &both[..]),
        ] {
            for (host, name) in both {
                let checked = check_config(&config(extra.clone()), host);
                let error = checked["error"].as_str().unwrap_or_default();
                if refused_by.iter().any(|(refusing, _)| *refusing == host) {
                    assert!(
                        error.starts_with(&format!("unsupported {field}")) && error.contains(name),
                        "{error}"
                    );
                } else {
                    assert_eq!(checked["ok"], true, "{field} in {name}: {checked}");
                }
            }
        }
        assert_eq!(host(None), Ok(Host::Js));
        assert_eq!(host(Some("worker")), Ok(Host::Worker));
        assert!(host(Some("envoy")).is_err() && host(Some("nope")).is_err());
    }

    /// The Worker's fetched documents: what to fetch comes from the config, a good body is
    /// taken (and a repeated one is no change), a bad one is refused and the last good keys
    /// keep deciding, and a denylist fetched later refuses its devices.
    #[test]
    fn fetched_documents_are_described_taken_and_decided_with() {
        let remote = |path: &str| {
            json!({"upstream": "https://keys.example", "authority": "keys.example",
                   "path": path, "refresh_seconds": 60, "max_bytes": 400})
        };
        let fetching = json!({"keys": {"remote": remote("/jwks")},
                              "denylist": {"remote": remote("/denied")}})
        .to_string();
        let gate = load(&fetching, Host::Worker).unwrap();
        let sources = remote_sources(&gate);
        assert_eq!(sources[0]["kind"], "jwks");
        assert_eq!(sources[0]["field"], "keys.remote");
        assert_eq!(sources[0]["upstream"], "https://keys.example");
        assert_eq!(sources[0]["refresh_seconds"], 60);
        assert_eq!(sources[0]["timeout_ms"], 5000);
        assert_eq!(sources[1]["kind"], "denylist");
        assert_eq!(sources[1]["path"], "/denied");
        assert_eq!(
            remote_sources(&load(&config(json!({})), Host::Worker).unwrap()),
            json!([])
        );

        let mut fetched = Fetched::default();
        let key = SigningKey::hs256_from_base64_secret(SECRET)
            .unwrap()
            .with_kid(Some("k1".to_owned()));
        let did = json!({"did": "dev-1"}).as_object().cloned().unwrap();
        let claims = claims_with_expiry(did, NOW, Some(300));
        let token = key.sign(&claims).unwrap();
        let request = json!({"headers": [["approov-token", token]]});
        let reason = |fetched: &Fetched| {
            plan(&gate, fetched, request.clone(), None, NOW, None).unwrap()["decision"]["reason"]
                .clone()
        };
        assert_eq!(reason(&fetched), "keys_unavailable");

        let k = SECRET.trim_end_matches('=');
        let jwks =
            json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": k}]}).to_string();
        let taken = set_document(&gate, &mut fetched, "jwks", jwks.as_bytes()).unwrap();
        assert_eq!(taken, json!({"changed": true, "skipped": []}));
        assert_eq!(reason(&fetched), "allowed");
        assert_eq!(
            set_document(&gate, &mut fetched, "jwks", jwks.as_bytes()).unwrap()["changed"],
            false
        );
        let refused = set_document(&gate, &mut fetched, "jwks", b"<html>502</html>").unwrap_err();
        assert!(refused.starts_with("keys.remote: "), "{refused}");
        let long = format!(r#"{{"keys": [], "pad": "{}"}}"#, "x".repeat(400));
        let refused = set_document(&gate, &mut fetched, "jwks", long.as_bytes()).unwrap_err();
        assert!(refused.contains("over max_bytes (400)"), "{refused}");
        assert_eq!(reason(&fetched), "allowed", "the last good keys stay");

        set_document(
            &gate,
            &mut fetched,
            "denylist",
            br#"{"devices": ["dev-1"]}"#,
        )
        .unwrap();
        assert_eq!(reason(&fetched), "device_denied");
        assert!(set_document(&gate, &mut fetched, "keys", b"{}")
            .unwrap_err()
            .contains("unknown document kind `keys`"));
    }

    /// Request signatures in the JavaScript build (and the Worker, which calls these two): the
    /// body is asked for when a signature covers `content-digest`, verified when handed over,
    /// refused when tampered with or missing.
    #[test]
    fn a_signed_body_is_asked_for_and_verified() {
        use attestgate_policy::signature::AccountKey;
        use attestgate_testkit::{ApproovSigner, InstallSigner};
        const ACCOUNT: &str = "YWNjb3VudC1tZXNzYWdlLXNpZ25pbmcta2V5LTMyYnl0ZXMhIQ==";
        let install = InstallSigner::from_slice(&[21; 32]).unwrap();
        let gate = load(
            &config(
                json!({"signature": {"mode": "required", "account_secret": ACCOUNT,
                                         "max_body_bytes": 64}}),
            ),
            Host::Worker,
        )
        .unwrap();
        let token = token(json!({"did": "d1", "ipk": install.ipk()}));
        let body = br#"{"to":"alice","amount":100}"#.to_vec();
        let request = attestgate_policy::Request::new("POST", "/pay")
            .with_host("api.example.com")
            .with_header("approov-token", token.as_str())
            .with_header("content-type", "application/json")
            .with_body(body.clone());
        let signer = ApproovSigner {
            install: Some(install),
            account: Some(AccountKey::from_base64(ACCOUNT).unwrap()),
        };
        let signed = signer.sign_request(request, NOW).unwrap();
        let headers: Vec<Value> = signed.headers.iter().map(|(n, v)| json!([n, v])).collect();
        let spec = json!({"method": "POST", "path": "/pay", "host": "api.example.com", "headers": headers});
        assert_eq!(body_limit(&gate, spec.clone()).unwrap(), Some(64));
        let decided = |body: &[u8]| {
            plan(
                &gate,
                &Fetched::default(),
                spec.clone(),
                Some(body.to_vec()),
                NOW,
                None,
            )
            .unwrap()["decision"]["reason"]
                .clone()
        };
        assert_eq!(decided(&body), "allowed");
        assert_eq!(
            decided(br#"{"to":"mallory","amount":100}"#),
            "request_signature_invalid"
        );
        let unsigned =
            json!({"method": "POST", "path": "/pay", "headers": [["approov-token", token]]});
        let planned = plan(&gate, &Fetched::default(), unsigned, Some(body), NOW, None).unwrap();
        assert_eq!(planned["decision"]["reason"], "request_signature_missing");
    }

    /// `plan` carries the core's decision record of the decision it planned: the verified
    /// device, platform and app version; none for a forged token, whatever it claims.
    #[test]
    fn plan_carries_the_cores_decision_record() {
        use attestgate_policy::CacheOutcome;
        let gate = load(&config(json!({"mode": "monitor"})), Host::Worker).unwrap();
        let good = token(
            json!({"did": "dev-a", "att": {"device": {"platform": "ios"}, "app": {"version": "3.1"}}}),
        );
        let spec = json!({"path": "/v1/x", "headers": [["approov-token", good], ["x-device-id", "spoofed"]]});
        let planned = plan(&gate, &Fetched::default(), spec.clone(), None, NOW, None).unwrap();
        let request = build_request(&gate, None, request_spec(spec).unwrap());
        let expected = DecisionRecord::of(&gate.check(&request, NOW), CacheOutcome::Uncached);
        assert_eq!(planned["record"], serde_json::to_value(&expected).unwrap());
        assert_eq!(
            (
                &planned["record"]["device"],
                &planned["record"]["platform"],
                &planned["record"]["app_version"]
            ),
            (&json!("dev-a"), &json!("ios"), &json!("3.1"))
        );
        let forged = mint(
            &json!("b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItb3Q="),
            json!({"did": "dev-forged"}),
            None,
            Some(300),
            NOW,
        )
        .unwrap();
        let forged = json!({"path": "/v1/x", "headers": [["approov-token", forged]]});
        let planned = plan(&gate, &Fetched::default(), forged, None, NOW, None).unwrap();
        assert_eq!(
            (
                &planned["record"]["reason"],
                &planned["record"]["verdict"],
                &planned["record"]["allowed"]
            ),
            (&json!("signature_invalid"), &json!("deny"), &json!(true))
        );
        assert_eq!(planned["record"]["device"], Value::Null);
        assert!(!planned["record"].to_string().contains("dev-forged"));
    }

    /// The Worker's rate-limit round: `plan` names the bucket it reached and counts it taken;
    /// planned again with that bucket `limited`, it is the 429 (or monitor's report).
    #[test]
    fn plan_names_the_bucket_it_reached_and_refuses_the_limited_one() {
        let rules = |mode: &str| {
            json!({"mode": mode, "claim_to_headers": [{"claim": "did", "header": "x-device-id"}],
                   "rules": [{"path": "/open"},
                             {"path": "/login", "rate_limit": {"requests": 2, "per_seconds": 600}}]})
        };
        let gate = load(&config(rules("enforce")), Host::Worker).unwrap();
        let spec = |path: &str, did: &str| json!({"path": path, "headers": [["approov-token", token(json!({"did": did}))]]});
        let planned = plan(
            &gate,
            &Fetched::default(),
            spec("/login", "dev-a"),
            None,
            NOW,
            None,
        )
        .unwrap();
        assert_eq!(planned["decision"]["reason"], "allowed");
        assert_eq!(planned["action"]["forward"], true);
        assert_eq!(
            planned["rate_limit"],
            json!({"bucket": "rule1:device:dev-a", "requests": 2, "per_seconds": 600})
        );
        // Another rule without a limit, and a request refused before the rate-limit step,
        // name no bucket: nothing is to be taken.
        let open = plan(
            &gate,
            &Fetched::default(),
            spec("/open", "dev-a"),
            None,
            NOW,
            None,
        )
        .unwrap();
        assert_eq!(open.get("rate_limit"), None, "{open}");
        let forged = json!({"path": "/login", "headers": [["approov-token", "x.y.z"]]});
        let forged = plan(&gate, &Fetched::default(), forged, None, NOW, None).unwrap();
        assert_eq!(
            (
                forged["decision"]["reason"].clone(),
                forged.get("rate_limit")
            ),
            (json!("token_malformed"), None)
        );

        let limited = Limited {
            bucket: "rule1:device:dev-a".to_owned(),
            retry_after: 300,
        };
        let refused = plan(
            &gate,
            &Fetched::default(),
            spec("/login", "dev-a"),
            None,
            NOW,
            Some(&limited),
        )
        .unwrap();
        assert_eq!(refused["decision"]["reason"], "rate_limited");
        assert_eq!(refused["action"]["forward"], false);
        assert_eq!(refused["action"]["status"], 429);
        let headers = refused["action"]["headers"].as_array().unwrap();
        assert!(
            headers.contains(&json!(["retry-after", "300"])),
            "{headers:?}"
        );
        assert_eq!(refused["rate_limit"]["bucket"], "rule1:device:dev-a");
        // Only the named bucket is refused: another device goes on.
        let other = plan(
            &gate,
            &Fetched::default(),
            spec("/login", "dev-b"),
            None,
            NOW,
            Some(&limited),
        )
        .unwrap();
        assert_eq!(other["decision"]["reason"], "allowed");
        assert_eq!(other["rate_limit"]["bucket"], "rule1:device:dev-b");

        // Monitor mode reports the limit and lets the request go on.
        let monitor = load(&config(rules("monitor")), Host::Worker).unwrap();
        let reported = plan(
            &monitor,
            &Fetched::default(),
            spec("/login", "dev-a"),
            None,
            NOW,
            Some(&limited),
        )
        .unwrap();
        assert_eq!(reported["action"]["forward"], true);
        let set = reported["action"]["set"].as_array().unwrap();
        assert!(
            set.contains(&json!(["x-attestgate-decision", "deny"])),
            "{set:?}"
        );
        assert!(
            set.contains(&json!(["x-attestgate-reason", "rate_limited"])),
            "{set:?}"
        );

        assert_eq!(
            limited_spec(json!({"bucket": "b", "retry_after": 5})).unwrap(),
            Some(Limited {
                bucket: "b".to_owned(),
                retry_after: 5
            })
        );
        assert_eq!(limited_spec(Value::Null).unwrap(), None);
        for bad in [
            json!({"bucket": "b"}),
            json!({"bucket": "b", "retry_after": -1}),
            json!({"bucket": "b", "retry_after": 1, "x": 1}),
        ] {
            assert!(limited_spec(bad.clone()).is_err(), "{bad}");
        }
    }

    /// `takeBucket` is the core's `Bucket::take` over the 16-byte state a Durable Object keeps.
    #[test]
    fn take_bucket_counts_down_refills_and_refuses_a_garbled_state() {
        let limit = RateLimit {
            requests: 2,
            per_seconds: 600,
        };
        let (state, first) = take_bucket(None, &limit, NOW).unwrap();
        let (state, second) = take_bucket(Some(&state), &limit, NOW).unwrap();
        let (full, third) = take_bucket(Some(&state), &limit, NOW).unwrap();
        assert_eq!((first, second, third), (None, None, Some(300)));
        // One request comes back every 300 s: half of one after 150.
        assert_eq!(
            take_bucket(Some(&full), &limit, NOW + 150).unwrap().1,
            Some(150)
        );
        let (state, later) = take_bucket(Some(&full), &limit, NOW + 300).unwrap();
        assert_eq!(later, None);
        assert_eq!(
            Bucket::from_bytes(&state),
            Some(Bucket {
                milli_tokens: 0,
                updated: NOW + 300
            })
        );
        for bad in [&[0u8; 15][..], &[0u8; 17][..], &[][..]] {
            assert!(take_bucket(Some(bad), &limit, NOW)
                .unwrap_err()
                .contains("16 bytes"));
        }
        assert_eq!(limit_count("requests", 2.0), Ok(2));
        assert_eq!(limit_count("requests", 4_294_967_295.0), Ok(u32::MAX));
        for bad in [0.0, -1.0, 1.5, 4_294_967_296.0, f64::NAN, f64::INFINITY] {
            assert!(limit_count("per_seconds", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn check_builds_the_request_like_the_cli() {
        let gate = load(&config(json!({"token": {"prefix": "Bearer "}})), Host::Js).unwrap();
        let t = token(json!({"did": "d1"}));
        let decision = check(&gate, Some(&format!(" {t}\n")), Value::Null, NOW).unwrap();
        assert!(decision.allow, "{decision:?}");
        assert_eq!(decision.claims.unwrap()["did"], "d1");

        let missing = check(&gate, None, json!({"method": "POST"}), NOW).unwrap();
        assert_eq!(
            (missing.reason, missing.status),
            (Reason::TokenMissing, 401)
        );

        // A token already in the headers (as the parity corpus gives it) is used as is.
        let spec = json!({"headers": [["Approov-Token", format!("Bearer {t}")]]});
        assert!(check(&gate, None, spec, NOW).unwrap().allow);
        let spec = json!({"headers": {"approov-token": format!("Bearer {t}")}});
        assert!(check(&gate, None, spec, NOW).unwrap().allow);
        // And a second one makes it a duplicated header.
        let spec = json!({"headers": [["approov-token", format!("Bearer {t}")]]});
        let twice = check(&gate, Some(&t), spec, NOW).unwrap();
        assert_eq!(twice.reason, Reason::TokenMalformed);

        let expired = check(&gate, Some(&t), Value::Null, NOW + 3_600).unwrap();
        assert_eq!(expired.reason, Reason::TokenExpired);
    }

    #[test]
    fn request_fields_reach_the_policy() {
        let policy = r#"package attestgate
decision := {"allow": false, "reasons": [concat(" ", [input.request.method, input.request.path, input.request.host, input.request.source_ip, input.request.headers["x-a"]])]}"#;
        let gate = load(
            &config(json!({"policy": {"modules": {"p.rego": policy}}})),
            Host::Js,
        )
        .unwrap();
        let spec = json!({"method": "PUT", "path": "/x?y", "authority": "api.test",
                          "source_ip": "203.0.113.9", "headers": [["X-A", "1"], ["x-a", "2"]]});
        let decision = check(&gate, Some(&token(json!({}))), spec, NOW).unwrap();
        assert_eq!(decision.reasons, ["PUT /x?y api.test 203.0.113.9 1,2"]);

        let err = check(&gate, None, json!({"metod": "GET"}), NOW).unwrap_err();
        assert!(err.contains("unknown field `metod`"), "{err}");
        let err = check(&gate, None, json!({"headers": [["a"]]}), NOW).unwrap_err();
        assert!(err.starts_with("invalid request"), "{err}");
    }

    #[test]
    fn explain_agrees_with_check() {
        let gate = load(&config(json!({})), Host::Js).unwrap();
        let t = token(json!({"did": "d1"}));
        let explained = explain(&gate, Some(&t), Value::Null, NOW + 3_600).unwrap();
        let decision = check(&gate, Some(&t), Value::Null, NOW + 3_600).unwrap();
        assert_eq!(explained.decision, decision);
        let failed: Vec<_> = explained
            .steps
            .iter()
            .filter(|s| s.status == attestgate_policy::StepStatus::Failed)
            .map(|s| s.id)
            .collect();
        assert_eq!(failed, [attestgate_policy::StepId::Time]);
    }

    #[test]
    fn eval_matches_the_cli_shape() {
        let modules = json!({"p.rego": "package p\nx := input.a + data.b"});
        let out = eval(
            modules.clone(),
            Some(json!({"a": 1})),
            Some(json!({"b": 2})),
            "data.p.x",
        )
        .unwrap();
        assert_eq!(out["result"][0]["expressions"][0]["value"], 3);
        assert_eq!(out["result"][0]["expressions"][0]["text"], "data.p.x");

        let undefined = eval(modules.clone(), None, None, "data.p.x").unwrap();
        assert_eq!(undefined, json!({}));
        assert!(eval(
            json!({"p.rego": "package p\nx := {"}),
            None,
            None,
            "data.p.x"
        )
        .unwrap_err()
        .starts_with("loading p.rego"));
        assert!(eval(modules.clone(), None, Some(json!([1])), "data.p.x").is_err());
        assert!(eval(json!([]), None, None, "data.p.x").is_err());
        let pairs = json!([["a.rego", "package a\ny := 7"]]);
        assert_eq!(
            eval(pairs, None, None, "data.a.y").unwrap()["result"][0]["expressions"][0]["value"],
            7
        );
    }

    #[test]
    fn rego_tests_are_counted() {
        let out =
            test(json!({"t.rego": "package t\ntest_ok if 1 == 1\ntest_bad if 1 == 2"})).unwrap();
        assert_eq!(
            (out["passed"].as_u64(), out["failed"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(out["tests"][1]["name"], "data.t.test_bad");
        assert_eq!(out["tests"][1]["passed"], false);
    }

    #[test]
    fn mint_round_trips_and_refuses_bad_input() {
        let t = mint(
            &json!(SECRET),
            json!({"did": "x"}),
            Some("k1".into()),
            Some(60),
            NOW,
        )
        .unwrap();
        let header = t.split('.').next().unwrap();
        assert!(header.starts_with("eyJ"), "{header}");
        let gate = load(&config(json!({})), Host::Js).unwrap();
        // The kid names no key, so the approov secret (no kid) cannot be selected.
        assert_eq!(
            check(&gate, Some(&t), Value::Null, NOW).unwrap().reason,
            Reason::KeyNotFound
        );

        assert!(mint(&json!("c2hvcnQ="), json!({}), None, None, NOW)
            .unwrap_err()
            .contains("weak"));
        assert!(mint(&json!({"kty": "foo"}), json!({}), None, None, NOW).is_err());
        assert_eq!(
            mint(&json!(SECRET), json!([1]), None, None, NOW).unwrap_err(),
            "claims must be a JSON object"
        );
    }

    #[test]
    fn binding_hash_of_request_headers() {
        let hash = binding(
            vec!["authorization".into()],
            json!({"headers": [["Authorization", "abc"]]}),
        )
        .unwrap();
        assert_eq!(
            hash.as_deref(),
            Some("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
        );
        assert_eq!(
            binding(vec!["authorization".into()], Value::Null).unwrap(),
            None
        );
    }

    #[test]
    fn modules_are_merged_into_the_config() {
        let base = config(json!({"policy": {"entrypoint": "data.p.decision"}}));
        let merged = with_modules(&base, json!({"p.rego": "package p\ndecision := true"})).unwrap();
        let gate = load(&merged, Host::Js).unwrap();
        assert!(
            check(&gate, Some(&token(json!({}))), Value::Null, NOW)
                .unwrap()
                .allow
        );
        assert!(with_modules(&config(json!({})), json!({}))
            .unwrap_err()
            .contains("no `policy`"));
        assert!(with_modules(&base, json!({"p.rego": 1})).is_err());
    }

    #[test]
    fn seconds_must_be_whole() {
        assert_eq!(seconds(1_700_000_000.0), Ok(1_700_000_000));
        assert_eq!(seconds(-5.0), Ok(-5));
        assert!(seconds(1.5).is_err());
        assert!(seconds(f64::NAN).is_err());
        assert!(seconds(1e300).is_err());
    }
}
