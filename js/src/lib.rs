//! attestgate's core for JavaScript, built with wasm-bindgen (`make js` → `build/js/`).
//!
//! The same decisions as the proxy-wasm filter and the `attestgate` CLI, in a browser or in
//! Node: the functions below wrap [`attestgate_policy`] and exchange plain JavaScript values
//! (objects go through JSON). Errors are thrown as `Error` with the core's message.
//!
//! ```js
//! import init, { Gate, check, checkConfig, evalPolicy, mint } from "./attestgate_js.js";
//! await init();                                   // in Node: initSync({ module: bytes })
//! checkConfig(config);                            // {ok: true, keys: [...]} | {ok: false, error}
//! check(config, token, { method: "GET", path: "/v1/x", headers: [["authorization", "..."]] }, now);
//! // → {allow, status, reason, reasons, mode, verdict, rule?, headers?, claims?, detail?}
//! ```
//!
//! Time is always a parameter (unix seconds); when it is left out, the JavaScript host's clock
//! is read here, never by the core.

use attestgate_policy as core;
use serde::Serialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;

pub mod api;
mod host_crypto;

/// The crate version, e.g. `0.1.0`.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Parses and loads a gate config (a JSON string or an object): `{ok: true, keys: [{kid,
/// alg}], rules, mode, token_header, entrypoints}` or `{ok: false, error}`. `host` is `"js"`
/// (the default) or `"worker"`: what that host cannot carry out (fetched keys or denylists,
/// hybrid mode, decision logging, and in `js` rate limits) is refused, naming the field and
/// the host.
#[wasm_bindgen(js_name = checkConfig)]
pub fn check_config(config: JsValue, host: Option<String>) -> Result<JsValue, JsError> {
    let host = api::host(host.as_deref()).map_err(|err| JsError::new(&err))?;
    to_js(&api::check_config(&text(&config)?, host))
}

/// Decides one request like `attestgate check`, and returns the same decision object.
/// `token` (or `null`) goes into the configured header with its prefix; `request` is
/// `{method, path, host, headers: [[name, value], ...], source_ip}`, every field optional;
/// `now` is unix seconds (default: the JavaScript clock).
#[wasm_bindgen]
pub fn check(
    config: JsValue,
    token: Option<String>,
    request: JsValue,
    now: Option<f64>,
) -> Result<JsValue, JsError> {
    Gate::new(config, None)?.check(token, request, now)
}

/// Like [`check`], with the working: `{decision, rule, mode, token: {raw, header, claims,
/// signature_bytes, problems} (decoded, NOT verified), steps: [{id, title, status, detail}],
/// policy_entrypoint, policy_input}`.
#[wasm_bindgen]
pub fn explain(
    config: JsValue,
    token: Option<String>,
    request: JsValue,
    now: Option<f64>,
) -> Result<JsValue, JsError> {
    Gate::new(config, None)?.explain(token, request, now)
}

/// A loaded config, for deciding many requests without reloading keys and recompiling Rego.
/// Call `free()` when done (or let the garbage collector do it).
#[wasm_bindgen]
#[derive(Debug)]
pub struct Gate {
    inner: core::Gate,
    /// What the host fetched for it (`setDocument`), used by every `plan`.
    fetched: core::remote::Fetched,
    /// The host's verifier (WebCrypto in the Worker), once `useHostVerifier` handed it over.
    host_crypto: Option<host_crypto::WebCrypto>,
}

#[wasm_bindgen]
impl Gate {
    /// Loads a config (a JSON string or an object) for `host`, `"js"` (the default) or
    /// `"worker"` (the Cloudflare Worker passes it); throws the core's error if it is refused,
    /// among others for what that host cannot carry out.
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue, host: Option<String>) -> Result<Gate, JsError> {
        let host = api::host(host.as_deref()).map_err(|err| JsError::new(&err))?;
        let inner = api::load(&text(&config)?, host).map_err(|err| JsError::new(&err))?;
        Ok(Gate {
            inner,
            fetched: core::remote::Fetched::default(),
            host_crypto: None,
        })
    }

    /// The load log line about the policy: which entrypoints run as a compiled plan and which
    /// stay interpreted by regorus, with the construct and file:line that kept them so;
    /// `undefined` without a policy. A host logs it once, when it loads the gate.
    ///
    /// ```js
    /// const summary = gate.policySummary();
    /// if (summary !== undefined) console.log(`attestgate: ${summary}`);
    /// ```
    #[wasm_bindgen(js_name = policySummary)]
    pub fn policy_summary(&self) -> Option<String> {
        self.inner.policy_summary()
    }

    /// See the free function [`check`].
    pub fn check(
        &self,
        token: Option<String>,
        request: JsValue,
        now: Option<f64>,
    ) -> Result<JsValue, JsError> {
        let decision = api::check(
            &self.inner,
            token.as_deref(),
            json(&request)?,
            seconds(now)?,
        )
        .map_err(|err| JsError::new(&err))?;
        to_js(&decision)
    }

    /// How many body bytes a host must read before [`Gate::plan`] (the route's
    /// `max_body_bytes`), or `undefined` when the gate does not need the body. A host reads
    /// at most `limit + 1` bytes: a longer body is refused with `body_too_large`. `request` as
    /// for [`check`].
    #[wasm_bindgen(js_name = bodyLimit)]
    pub fn body_limit(&self, request: JsValue) -> Result<Option<f64>, JsError> {
        let limit = api::body_limit(&self.inner, json(&request)?).map_err(|e| JsError::new(&e))?;
        #[allow(clippy::cast_precision_loss)] // a byte count far below 2^53
        Ok(limit.map(|bytes| bytes as f64))
    }

    /// Decides a request as a proxy does, with the proxy-wasm filter's header plan:
    /// `{decision, action, record}`; `record` is the core's decision record (what a host logs:
    /// verdict, allowed, mode, status, reason, policy_reasons, rule, device, platform,
    /// app_version, ...); `action` is `{forward: true, remove: [name, ...], set: [[name,
    /// value], ...]}` (remove these request headers, set these, forward) or `{forward: false,
    /// status, headers: [[name, value], ...], body}` (answer locally). `request` as for
    /// [`check`] (the token is in its headers); `body` is a `Uint8Array` when
    /// [`Gate::body_limit`] asked for it; `now` is unix seconds (default: the JavaScript clock).
    ///
    /// Rate limits (host `worker`): this build keeps no buckets. When the request reaches a
    /// rule's `rate_limit`, the result also has `rate_limit: {bucket, requests, per_seconds}`:
    /// the host takes one request from that bucket (with [`take_bucket`], where it keeps
    /// them) at the same `now`; the plan counted it taken. If the bucket refuses, the host
    /// plans again with `limited` = `{bucket, retry_after}` (seconds), which gives the
    /// rate-limited plan: 429 with `retry-after`, or in monitor mode the report.
    ///
    /// Host crypto (after [`Gate::use_host_verifier`]): `verdicts` are the host's answers to
    /// the checks an earlier plan of this request asked for. When the decision needs a check
    /// they lack, the result has `signatures: [{scheme, public_key, signature, message}]`
    /// (bytes in base64) and its decision is only provisional (the check counted as invalid):
    /// the host checks them and plans again with all its verdicts so far, each with `valid`
    /// (`true`, `false`, or `null` when it could not check).
    pub fn plan(
        &self,
        request: JsValue,
        body: Option<Vec<u8>>,
        now: Option<f64>,
        limited: JsValue,
        verdicts: JsValue,
    ) -> Result<JsValue, JsError> {
        let limited = api::limited_spec(json(&limited)?).map_err(|err| JsError::new(&err))?;
        let request = json(&request)?;
        let now = seconds(now)?;
        let decide = || {
            api::plan(
                &self.inner,
                &self.fetched,
                request,
                body,
                now,
                limited.as_ref(),
            )
        };
        let Some(host_crypto) = &self.host_crypto else {
            return to_js(&decide().map_err(|err| JsError::new(&err))?);
        };
        let verdicts = host_crypto::verdicts(json(&verdicts)?).map_err(|e| JsError::new(&e))?;
        let (planned, asked) = host_crypto.with_verdicts(verdicts, decide);
        let mut planned = planned.map_err(|err| JsError::new(&err))?;
        if let (false, Some(planned)) = (asked.is_empty(), planned.as_object_mut()) {
            planned.insert("signatures".to_owned(), host_crypto::checks_json(&asked));
        }
        to_js(&planned)
    }

    /// Hands the gate's public-key signature checks (ES256, RS256/384/512) to the host's
    /// verifier, as the filter hands them to Envoy's: `verdicts` are the host's answers to
    /// every check of `knownAnswerChecks()` (each with `valid`), and a scheme is taken only
    /// if they are right. Returns the log line (`signatures: ... by the host's verifier`).
    /// From then on [`Gate::plan`] may ask the host for checks.
    #[wasm_bindgen(js_name = useHostVerifier)]
    pub fn use_host_verifier(&mut self, verdicts: JsValue) -> Result<String, JsError> {
        let verdicts = host_crypto::verdicts(json(&verdicts)?).map_err(|e| JsError::new(&e))?;
        let table = host_crypto::WebCrypto::default();
        let (report, _) = table.with_verdicts(verdicts, || {
            self.inner.use_host_verifier(Box::new(table.clone()))
        });
        let taken = !report.on_host().is_empty();
        self.host_crypto = taken.then_some(table);
        Ok(format!("signatures: {report}"))
    }

    /// What the config says to fetch (only the Worker loads such a config): `[{kind, field,
    /// upstream, authority, path, refresh_seconds, timeout_ms, max_bytes}]`, `kind` being
    /// `"jwks"` (`keys.remote`) or `"denylist"` (`denylist.remote`); `[]` when it fetches
    /// nothing.
    ///
    /// ```js
    /// for (const source of gate.remoteSources()) schedule(source.kind, source.path, source.refresh_seconds);
    /// ```
    #[wasm_bindgen(js_name = remoteSources)]
    pub fn remote_sources(&self) -> Result<JsValue, JsError> {
        to_js(&api::remote_sources(&self.inner))
    }

    /// Hands over the body (a `Uint8Array`) of a good response (status 200) to the fetch of
    /// `kind` (`"jwks"` or `"denylist"`): returns `{changed, skipped: [message, ...]}` when
    /// the gate takes it, and throws the core's message when it refuses it (not a JWKS with a
    /// usable key, not a denylist, over `max_bytes`): the gate keeps its last good document.
    /// Every later [`Gate::plan`] decides with what the gate holds.
    ///
    /// ```js
    /// const { changed } = gate.setDocument("jwks", new Uint8Array(await response.arrayBuffer()));
    /// ```
    #[wasm_bindgen(js_name = setDocument)]
    pub fn set_document(&mut self, kind: &str, body: &[u8]) -> Result<JsValue, JsError> {
        let taken = api::set_document(&self.inner, &mut self.fetched, kind, body)
            .map_err(|err| JsError::new(&err))?;
        to_js(&taken)
    }

    /// See the free function [`explain`].
    pub fn explain(
        &self,
        token: Option<String>,
        request: JsValue,
        now: Option<f64>,
    ) -> Result<JsValue, JsError> {
        let explained = api::explain(
            &self.inner,
            token.as_deref(),
            json(&request)?,
            seconds(now)?,
        )
        .map_err(|err| JsError::new(&err))?;
        to_js(&explained)
    }
}

/// The checks a host verifier is probed with (`Gate.useHostVerifier`), for the host to check
/// first: `[{scheme, public_key, signature, message}]`, bytes in base64.
#[wasm_bindgen(js_name = knownAnswerChecks)]
pub fn known_answer_checks() -> Result<JsValue, JsError> {
    to_js(&host_crypto::checks_json(
        &core::verifier::known_answer_checks(),
    ))
}

/// The reply a host gives when it cannot ask a gate, as a [`Gate::plan`] action: `reason` is
/// `config_invalid` (the config does not load) or `internal_error` (the host's own failure),
/// e.g. `{forward: false, status: 500, headers: [["content-type", "application/json"],
/// ["x-attestgate-reason", "config_invalid"]], body: '{"error":"config_invalid","reasons":[]}'}`.
#[wasm_bindgen]
pub fn refusal(reason: &str) -> Result<JsValue, JsError> {
    to_js(&api::refusal(reason).map_err(|err| JsError::new(&err))?)
}

/// Takes one request from a rate-limit bucket with the core's token-bucket arithmetic, for a
/// host that keeps the buckets (the Worker's Durable Object): `state` is the bucket's state as
/// a previous call returned it (`undefined` or `null` for a new, full bucket); `requests` and
/// `perSeconds` are the limit ([`Gate::plan`]'s `rate_limit`); `now` is unix seconds. Returns
/// `{state: Uint8Array, retryAfter?: number}`: keep `state`; `retryAfter` is set (seconds
/// to wait) when the bucket was empty and nothing was taken. Throws on a state that is not
/// one this function returned.
#[wasm_bindgen(js_name = takeBucket)]
pub fn take_bucket(
    state: Option<Vec<u8>>,
    requests: f64,
    per_seconds: f64,
    now: f64,
) -> Result<JsValue, JsError> {
    let limit = core::RateLimit {
        requests: api::limit_count("requests", requests).map_err(|err| JsError::new(&err))?,
        per_seconds: api::limit_count("per_seconds", per_seconds)
            .map_err(|err| JsError::new(&err))?,
    };
    let now = api::seconds(now).map_err(|err| JsError::new(&err))?;
    let (state, retry_after) =
        api::take_bucket(state.as_deref(), &limit, now).map_err(|err| JsError::new(&err))?;
    let out = js_sys::Object::new();
    let set = |name: &str, value: &JsValue| {
        js_sys::Reflect::set(&out, &JsValue::from_str(name), value)
            .map(|_| ())
            .map_err(|_| JsError::new("internal error: cannot build the result"))
    };
    set("state", &js_sys::Uint8Array::from(&state[..]).into())?;
    if let Some(seconds) = retry_after {
        #[allow(clippy::cast_precision_loss)] // seconds, at most a u32 period: exact
        set("retryAfter", &JsValue::from_f64(seconds as f64))?;
    }
    Ok(out.into())
}

/// Evaluates a Rego query like `attestgate eval`. `modules` is `{file: source}` or `[[file,
/// source], ...]`; `input` and `data` are optional JSON values; `query` defaults to
/// `data.attestgate.decision`. Returns OPA's `{result: [{expressions: [{value, text,
/// location}]}]}` (`{}` when undefined).
#[wasm_bindgen(js_name = evalPolicy)]
pub fn eval_policy(
    modules: JsValue,
    input: JsValue,
    data: JsValue,
    query: Option<String>,
) -> Result<JsValue, JsError> {
    let query = query.unwrap_or_else(|| "data.attestgate.decision".to_owned());
    let results = api::eval(json(&modules)?, optional(&input)?, optional(&data)?, &query)
        .map_err(|err| JsError::new(&err))?;
    to_js(&results)
}

/// Runs the `test_` rules of the modules like `attestgate test`: `{passed, failed, tests:
/// [{name, passed, error}]}`.
#[wasm_bindgen(js_name = testPolicies)]
pub fn test_policies(modules: JsValue) -> Result<JsValue, JsError> {
    to_js(&api::test(json(&modules)?).map_err(|err| JsError::new(&err))?)
}

/// Signs claims into a token, for demos and tests: `key` is a private JWK object or an
/// Approov-style base64 secret string; `options` is `{kid, expIn, now}` (all optional; with
/// `expIn`, `exp` is set to `now + expIn`).
#[wasm_bindgen]
pub fn mint(key: JsValue, claims: JsValue, options: JsValue) -> Result<String, JsError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Options {
        kid: Option<String>,
        exp_in: Option<f64>,
        now: Option<f64>,
    }
    let options: Options = match optional(&options)? {
        Some(value) => serde_json::from_value(value)
            .map_err(|err| JsError::new(&format!("invalid options: {err}")))?,
        None => Options::default(),
    };
    let exp_in = options
        .exp_in
        .map(api::seconds)
        .transpose()
        .map_err(|err| JsError::new(&err))?;
    let key = match key.as_string() {
        Some(secret) => Value::String(secret),
        None => json(&key)?,
    };
    api::mint(
        &key,
        json(&claims)?,
        options.kid,
        exp_in,
        seconds(options.now)?,
    )
    .map_err(|err| JsError::new(&err))
}

/// The token-binding claim for a request: base64(SHA-256(values of `headers`, in order)), or
/// `undefined` when one of them is missing. `request` as for [`check`].
#[wasm_bindgen(js_name = bindingHash)]
pub fn binding_hash(headers: Vec<String>, request: JsValue) -> Result<Option<String>, JsError> {
    api::binding(headers, json(&request)?).map_err(|err| JsError::new(&err))
}

/// Puts Rego modules (`{file: source}`) into a config's `policy.modules`; returns the config
/// as a JSON string.
#[wasm_bindgen(js_name = withModules)]
pub fn with_modules(config: JsValue, modules: JsValue) -> Result<String, JsError> {
    api::with_modules(&text(&config)?, json(&modules)?).map_err(|err| JsError::new(&err))
}

/// A string as is, anything else as its JSON text.
fn text(value: &JsValue) -> Result<String, JsError> {
    if let Some(text) = value.as_string() {
        return Ok(text);
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| JsError::new("expected a JSON string or a JSON-serializable value"))
}

/// A JavaScript value as JSON (`undefined` becomes `null`).
fn json(value: &JsValue) -> Result<Value, JsError> {
    if value.is_undefined() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text(value)?).map_err(|err| JsError::new(&format!("not JSON: {err}")))
}

fn optional(value: &JsValue) -> Result<Option<Value>, JsError> {
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        json(value).map(Some)
    }
}

fn to_js(value: &impl Serialize) -> Result<JsValue, JsError> {
    let text = serde_json::to_string(value).map_err(|err| JsError::new(&err.to_string()))?;
    js_sys::JSON::parse(&text).map_err(|_| JsError::new("internal error: unparsable JSON"))
}

/// `now`, or the JavaScript clock's current second.
fn seconds(now: Option<f64>) -> Result<i64, JsError> {
    let now = now.unwrap_or_else(|| (js_sys::Date::now() / 1000.0).floor());
    api::seconds(now).map_err(|err| JsError::new(&err))
}
