//! Rego device-trust decisions with regorus.
//!
//! Modules are parsed and compiled once per entrypoint at config load; a request only builds its
//! input document and evaluates the compiled policy.

use std::collections::{BTreeMap, HashMap};

use regorus::{CompiledPolicy, Engine, Value};
use serde::Deserialize;

use crate::config::PolicyConfig;
use crate::error::ConfigError;
use crate::reads::InputReads;
use crate::rego_plan::{
    find_all_string_submatch_n, string_args, CompiledPlan, Regexes, Unsupported,
};

/// A compiled Rego policy with one or more entrypoints.
///
/// ```
/// use attestgate_policy::{Policy, PolicyConfig};
/// let config: PolicyConfig = serde_json::from_value(serde_json::json!({
///     "modules": { "p.rego": "package attestgate\ndecision := input.ok" },
/// })).unwrap();
/// let policy = Policy::compile(&config, []).unwrap();
/// let outcome = policy.evaluate(&config.entrypoint, serde_json::json!({"ok": true})).unwrap();
/// assert!(outcome.allow);
/// ```
pub struct Policy {
    compiled: HashMap<String, CompiledPolicy>,
    /// Each entrypoint's plan, or why it has none (it is then interpreted).
    plans: HashMap<String, Result<CompiledPlan, Unsupported>>,
    /// What of `input` the modules can read; `None` when that cannot be known from the source.
    reads: Option<InputReads>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("entrypoints", &self.compiled.keys().collect::<Vec<_>>())
            .field("reads", &self.reads)
            .finish()
    }
}

/// Which path decides: the compiled plan or regorus' interpreter.
///
/// ```
/// use attestgate_policy::{Policy, PolicyConfig, PolicyEngine};
/// let config: PolicyConfig = serde_json::from_value(serde_json::json!({
///     "modules": { "p.rego": "package attestgate\ndecision := input.ok == true" },
/// })).unwrap();
/// let policy = Policy::compile(&config, []).unwrap();
/// let input = serde_json::json!({"ok": true});
/// let entry = &config.entrypoint;
/// assert_eq!(
///     policy.evaluate_document(PolicyEngine::Plan, entry, input.clone()),
///     policy.evaluate_document(PolicyEngine::Interpreter, entry, input),
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyEngine {
    /// The plan where the entrypoint has one, else the interpreter: what a gate uses.
    Default,
    /// The compiled plan only: an error for an entrypoint without one.
    Plan,
    /// regorus' interpreter.
    Interpreter,
}

/// What the policy decided: a boolean decision, or an object with `allow`, `reasons`,
/// `status` and `headers`.
///
/// ```
/// use attestgate_policy::{Policy, PolicyConfig};
/// let config: PolicyConfig = serde_json::from_value(serde_json::json!({ "modules": { "p.rego":
///     "package attestgate\ndecision := {\"allow\": false, \"reasons\": [\"rooted\"], \"status\": 451}" } }))
///     .unwrap();
/// let outcome = Policy::compile(&config, []).unwrap()
///     .evaluate(&config.entrypoint, serde_json::json!({})).unwrap();
/// assert_eq!((outcome.allow, outcome.reasons, outcome.status), (false, vec!["rooted".to_owned()], Some(451)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// Allow the request.
    pub allow: bool,
    /// Why (usually only for denials).
    pub reasons: Vec<String>,
    /// Status for a denial, when the policy chose one.
    pub status: Option<u16>,
    /// Headers: upstream on allow, on the reply on deny.
    pub headers: BTreeMap<String, String>,
}

/// The object form of a decision. Unknown fields are refused so `"alow": true` is an error,
/// not a silent deny.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ObjectDecision {
    allow: bool,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

impl Policy {
    /// Compiles the modules for the config's entrypoint and any `extra_entrypoints`; an
    /// entrypoint the modules do not define is refused here, not per request.
    ///
    /// ```
    /// use attestgate_policy::{Policy, PolicyConfig};
    /// let config: PolicyConfig = serde_json::from_value(serde_json::json!({
    ///     "modules": { "p.rego": "package attestgate\ndecision := true\nlogin := false" },
    /// })).unwrap();
    /// assert!(Policy::compile(&config, ["data.attestgate.login"]).is_ok());
    /// assert!(Policy::compile(&config, ["data.attestgate.nope"]).is_err());
    /// ```
    pub fn compile<'a>(
        config: &PolicyConfig,
        extra_entrypoints: impl IntoIterator<Item = &'a str>,
    ) -> Result<Policy, ConfigError> {
        if !config.module_files.is_empty() {
            return Err(ConfigError::Invalid {
                field: "policy.module_files".into(),
                message: "files are read by the CLI only; inline them in `policy.modules`".into(),
            });
        }
        if config.modules.is_empty() {
            return Err(ConfigError::Invalid {
                field: "policy.modules".into(),
                message: "no Rego modules given".into(),
            });
        }
        if !config.data.is_object() {
            return Err(ConfigError::Invalid {
                field: "policy.data".into(),
                message: "must be a JSON object".into(),
            });
        }
        for (id, content) in &config.modules {
            check_nesting(id, content)?;
            check_numbers(id, content)?;
        }
        // What `regorus::compile_policy_with_entrypoint` sets up, plus the regex builtins
        // backed by a cache of this policy's own (an engine clone shares it).
        let mut engine = Engine::new();
        engine
            .add_data(Value::from(config.data.clone()))
            .map_err(|err| ConfigError::Policy(format!("{err:#}")))?;
        engine.set_gather_prints(true);
        for (id, content) in &config.modules {
            engine
                .add_policy(id.clone(), content.clone())
                .map_err(|err| ConfigError::Policy(format!("{err:#}")))?;
        }
        let regexes = Regexes::new();
        add_regex_builtins(&mut engine, &regexes)
            .map_err(|err| ConfigError::Policy(format!("{err:#}")))?;
        let mut compiled = HashMap::new();
        let mut plans = HashMap::new();
        let modules: Vec<(String, String)> = config
            .modules
            .iter()
            .map(|(id, content)| (id.clone(), content.clone()))
            .collect();
        let data = Value::from(config.data.clone());
        let mut entrypoints = vec![config.entrypoint.clone()];
        entrypoints.extend(extra_entrypoints.into_iter().map(str::to_owned));
        for entrypoint in entrypoints {
            if compiled.contains_key(&entrypoint) {
                continue;
            }
            let policy = engine
                .clone()
                .compile_with_entrypoint(&entrypoint.as_str().into())
                .map_err(|err| {
                    // Name the entrypoint: "not a valid rule path" alone does not say which.
                    ConfigError::Policy(format!("entrypoint `{entrypoint}`: {err:#}"))
                })?;
            // Only a policy regorus accepts is planned, so the plan never widens what loads.
            let plan = CompiledPlan::build(&modules, &data, &entrypoint, &regexes);
            plans.insert(entrypoint.clone(), plan);
            compiled.insert(entrypoint, policy);
        }
        let reads = InputReads::scan(config.modules.values().map(String::as_str));
        Ok(Policy {
            compiled,
            plans,
            reads,
        })
    }

    /// Why `entrypoint` is interpreted rather than planned; `None` when it has a plan (or is
    /// not an entrypoint of this policy).
    ///
    /// ```
    /// use attestgate_policy::{Policy, PolicyConfig};
    /// let config: PolicyConfig = serde_json::from_value(serde_json::json!({ "modules": {
    ///     "p.rego": "package attestgate\ndecision := input.ok\nother := print(1)" } })).unwrap();
    /// let policy = Policy::compile(&config, ["data.attestgate.other"]).unwrap();
    /// assert!(policy.interpreted_because("data.attestgate.decision").is_none());
    /// let why = policy.interpreted_because("data.attestgate.other").unwrap();
    /// assert_eq!((why.file.as_str(), why.line), ("p.rego", 3));
    /// ```
    pub fn interpreted_because(&self, entrypoint: &str) -> Option<&Unsupported> {
        self.plans
            .get(entrypoint)
            .and_then(|plan| plan.as_ref().err())
    }

    /// Every entrypoint runs as a compiled plan.
    ///
    /// ```
    /// use attestgate_policy::{Policy, PolicyConfig};
    /// let config: PolicyConfig = serde_json::from_value(serde_json::json!({
    ///     "modules": { "p.rego": "package attestgate\ndecision := input.ok" } })).unwrap();
    /// assert!(Policy::compile(&config, []).unwrap().is_planned());
    /// ```
    pub fn is_planned(&self) -> bool {
        self.plans.values().all(Result::is_ok)
    }

    /// One log line: which entrypoints run as a compiled plan, and which stay interpreted
    /// and why (the construct and its file:line).
    ///
    /// ```
    /// use attestgate_policy::{Policy, PolicyConfig};
    /// let config: PolicyConfig = serde_json::from_value(serde_json::json!({ "modules": {
    ///     "p.rego": "package attestgate\ndecision := input.ok\nother := print(1)" } })).unwrap();
    /// let policy = Policy::compile(&config, ["data.attestgate.other"]).unwrap();
    /// assert_eq!(policy.summary(), "policy: data.attestgate.decision compiled to a plan; \
    ///     data.attestgate.other interpreted by regorus (p.rego:3: `print`, which a plan never calls)");
    /// ```
    pub fn summary(&self) -> String {
        let mut entrypoints: Vec<(&String, &Result<CompiledPlan, Unsupported>)> =
            self.plans.iter().collect();
        entrypoints.sort_by(|a, b| a.0.cmp(b.0));
        let planned: Vec<&str> = entrypoints
            .iter()
            .filter(|(_, plan)| plan.is_ok())
            .map(|(name, _)| name.as_str())
            .collect();
        let mut parts = Vec::new();
        if !planned.is_empty() {
            parts.push(format!("{} compiled to a plan", planned.join(", ")));
        }
        for (name, plan) in &entrypoints {
            if let Err(why) = plan {
                parts.push(format!("{name} interpreted by regorus ({why})"));
            }
        }
        format!("policy: {}", parts.join("; "))
    }

    /// The paths under `input` the modules can read, when the scan could follow every use.
    pub(crate) fn read_paths(&self) -> Option<&[Vec<String>]> {
        self.reads.as_ref().map(InputReads::paths)
    }

    /// The parts of `input` this policy can read at `entrypoint`, as bytes, when those are
    /// known from its source (see the `reads` module): two inputs with the same key get the
    /// same outcome, so a per-worker memo may serve it (comparing keys in full). `None` for a policy that may read
    /// `input` in ways a scan cannot follow, or calls a nondeterministic builtin.
    ///
    /// ```
    /// use attestgate_policy::{Policy, PolicyConfig};
    /// use serde_json::json;
    /// let config: PolicyConfig = serde_json::from_value(json!({
    ///     "modules": { "p.rego": "package attestgate\ndecision := input.token.claims.ok" },
    /// })).unwrap();
    /// let policy = Policy::compile(&config, []).unwrap();
    /// let one = json!({"token": {"claims": {"ok": true, "jti": "1"}}});
    /// let two = json!({"token": {"claims": {"ok": true, "jti": "2"}}});
    /// let key = |input| policy.input_key("data.attestgate.decision", input).unwrap();
    /// assert_eq!(key(&one), key(&two));
    /// ```
    pub fn input_key(&self, entrypoint: &str, input: &serde_json::Value) -> Option<Vec<u8>> {
        self.reads
            .as_ref()
            .map(|reads| reads.key(entrypoint, input))
    }

    /// [`Policy::input_key`] of an input whose `token.claims` are `claims`, without the input,
    /// when the policy reads nothing else of it.
    pub(crate) fn claims_key(
        &self,
        entrypoint: &str,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<Vec<u8>> {
        self.reads.as_ref()?.claims_key(entrypoint, claims)
    }

    /// [`Policy::evaluate`] of a borrowed input.
    pub(crate) fn evaluate_borrowed(
        &self,
        entrypoint: &str,
        input: &serde_json::Value,
    ) -> Result<PolicyOutcome, String> {
        let value = self.evaluate_value(PolicyEngine::Default, entrypoint, input)?;
        interpret(entrypoint, &value)
    }

    /// Evaluates `entrypoint` (compiled at load) on `input`. Errors are diagnostic text.
    ///
    /// ```
    /// use attestgate_policy::{Policy, PolicyConfig};
    /// let config: PolicyConfig = serde_json::from_value(serde_json::json!({
    ///     "modules": { "p.rego": "package attestgate\ndecision := input.score < 50" },
    /// })).unwrap();
    /// let policy = Policy::compile(&config, []).unwrap();
    /// let entry = &config.entrypoint;
    /// assert!(policy.evaluate(entry, serde_json::json!({"score": 10})).unwrap().allow);
    /// assert!(!policy.evaluate(entry, serde_json::json!({"score": 90})).unwrap().allow);
    /// assert!(policy.evaluate("data.attestgate.other", serde_json::json!({})).is_err());
    /// ```
    pub fn evaluate(
        &self,
        entrypoint: &str,
        input: serde_json::Value,
    ) -> Result<PolicyOutcome, String> {
        self.evaluate_borrowed(entrypoint, &input)
    }

    /// The entrypoint's whole value (`None`: undefined) as `engine` computes it, errors as
    /// text: what the differential tests compare between the plan and the interpreter.
    ///
    /// ```
    /// use attestgate_policy::{Policy, PolicyConfig, PolicyEngine};
    /// let config: PolicyConfig = serde_json::from_value(serde_json::json!({
    ///     "modules": { "p.rego": "package attestgate\ndecision := {\"allow\": input.n > 1}" },
    /// })).unwrap();
    /// let policy = Policy::compile(&config, []).unwrap();
    /// let document = policy.evaluate_document(PolicyEngine::Plan, &config.entrypoint,
    ///     serde_json::json!({"n": 2}));
    /// assert_eq!(document, Ok(Some(serde_json::json!({"allow": true}))));
    /// ```
    pub fn evaluate_document(
        &self,
        engine: PolicyEngine,
        entrypoint: &str,
        input: serde_json::Value,
    ) -> Result<Option<serde_json::Value>, String> {
        let value = self.evaluate_value(engine, entrypoint, &input)?;
        if value == Value::Undefined {
            return Ok(None);
        }
        serde_json::to_value(&value)
            .map(Some)
            .map_err(|err| err.to_string())
    }

    fn evaluate_value(
        &self,
        engine: PolicyEngine,
        entrypoint: &str,
        input: &serde_json::Value,
    ) -> Result<Value, String> {
        let policy = self
            .compiled
            .get(entrypoint)
            .ok_or_else(|| format!("entrypoint `{entrypoint}` was not compiled"))?;
        let plan = match (engine, self.plans.get(entrypoint)) {
            (PolicyEngine::Interpreter, _) => None,
            (_, Some(Ok(plan))) => Some(plan),
            (PolicyEngine::Plan, Some(Err(why))) => return Err(format!("not planned: {why}")),
            (PolicyEngine::Plan, None) => return Err(format!("`{entrypoint}` has no plan")),
            _ => None,
        };
        // Only what the policy can read is converted: the default policy reads
        // `input.token.claims.att` alone, a fraction of the document.
        let input = match self.read_paths() {
            Some(paths) => to_rego_pruned(prune(input, paths)),
            None => to_rego(input),
        };
        match plan {
            Some(plan) => plan.evaluate(&input),
            None => policy
                .eval_with_input(input)
                .map_err(|err| format!("{err:#}")),
        }
    }
}

/// The parts of a document at some paths: what a policy can read of `input`.
#[derive(Debug, PartialEq)]
enum Pruned<'a> {
    /// A value, all of it.
    Whole(&'a serde_json::Value),
    /// Some members of an object, by name (sorted, as the paths are).
    Members(Vec<(&'a str, Pruned<'a>)>),
}

/// The parts of `input` at `paths` (those the policy reads, see the `reads` module): along
/// each path the object members leading to it, and the value where the path ends or runs into
/// something that is not an object. The policy sees the same values at every path it can
/// read, so it decides the same (the policy memo keys on exactly these parts,
/// `InputReads::key`), and only these are converted to regorus' values.
fn prune<'a>(input: &'a serde_json::Value, paths: &[Vec<String>]) -> Pruned<'a> {
    let serde_json::Value::Object(from) = input else {
        return Pruned::Whole(input);
    };
    let mut members = Vec::new();
    for path in paths {
        prune_path(from, &mut members, path);
    }
    Pruned::Members(members)
}

/// Adds one path. Paths come sorted and none is a prefix of another, so paths through the
/// same member come one after another: a member already there is the last one.
fn prune_path<'a>(
    from: &'a serde_json::Map<String, serde_json::Value>,
    to: &mut Vec<(&'a str, Pruned<'a>)>,
    path: &[String],
) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some((name, value)) = from.get_key_value(first) else {
        return;
    };
    match value {
        serde_json::Value::Object(inner) if !rest.is_empty() => {
            if to.last().is_none_or(|(last, _)| *last != name.as_str()) {
                to.push((name.as_str(), Pruned::Members(Vec::new())));
            }
            if let Some((_, Pruned::Members(into))) = to.last_mut() {
                prune_path(inner, into, rest);
            }
        }
        _ => to.push((name.as_str(), Pruned::Whole(value))),
    }
}

fn to_rego_pruned(pruned: Pruned<'_>) -> Value {
    match pruned {
        Pruned::Whole(value) => to_rego(value),
        Pruned::Members(members) if members.is_empty() => Value::new_object(),
        Pruned::Members(members) => Value::from(
            members
                .into_iter()
                .map(|(name, part)| (Value::from(name), to_rego_pruned(part)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

/// `Value::from(serde_json::Value)` without going through serde's `Deserializer` (which costs
/// several times as much): the same values, numbers as regorus' visitor reads them (`u64`,
/// then `i64`, else the float path of `Value::from`).
fn to_rego(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(i)) => Value::from(i),
            (None, None) => Value::from(serde_json::Value::Number(n.clone())),
        },
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(to_rego).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) if map.is_empty() => Value::new_object(),
        serde_json::Value::Object(map) => Value::from(
            map.iter()
                .map(|(k, v)| (Value::from(k.as_str()), to_rego(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    }
}

fn interpret(entrypoint: &str, value: &Value) -> Result<PolicyOutcome, String> {
    let decision = match value {
        Value::Bool(allow) => {
            return Ok(PolicyOutcome {
                allow: *allow,
                ..PolicyOutcome::default()
            })
        }
        Value::Undefined => return Err(format!("`{entrypoint}` is undefined for this input")),
        Value::Object(_) => {
            let json = serde_json::to_value(value).map_err(|err| err.to_string())?;
            serde_json::from_value::<ObjectDecision>(json)
                .map_err(|err| format!("`{entrypoint}` yielded an unusable object: {err}"))?
        }
        _ => return Err(format!("`{entrypoint}` must yield a bool or an object")),
    };
    if let Some(status) = decision.status {
        if !(400..=599).contains(&status) {
            return Err(format!("status {status} is not a 4xx or 5xx code"));
        }
    }
    for (name, value) in &decision.headers {
        if !crate::request::is_header_name(name) || !crate::request::is_header_value(value) {
            return Err(format!("header `{name}` has an invalid name or value"));
        }
    }
    Ok(PolicyOutcome {
        allow: decision.allow,
        reasons: decision.reasons,
        status: decision.status,
        headers: decision
            .headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect(),
    })
}

/// The first `N` arguments of a regex builtin, which must be strings: `Ok(None)` when any
/// argument is undefined (the builtin is then undefined too), an error like regorus' own when
/// one of the `N` is not a string.
fn defined_string_args<'a, const N: usize>(
    name: &str,
    args: &'a [Value],
) -> anyhow::Result<Option<[&'a str; N]>> {
    if args.contains(&Value::Undefined) {
        return Ok(None);
    }
    string_args::<N>(name, args).map(Some)
}

/// `regex.match`, `regex.replace` and `regex.find_all_string_submatch_n` as regorus' builtins
/// compute them (strict builtin errors, its default), with the compiled patterns cached:
/// regorus looks up an engine's extensions before its builtins.
fn add_regex_builtins(engine: &mut Engine, regexes: &Regexes) -> anyhow::Result<()> {
    let regexes = regexes.clone();
    let cache = regexes.clone();
    let submatches = regexes.clone();
    engine.add_extension(
        "regex.match".to_owned(),
        2,
        Box::new(move |args: Vec<Value>| {
            let Some([pattern, value]) = defined_string_args::<2>("regex.match", &args)? else {
                return Ok(Value::Undefined);
            };
            match cache.with(pattern, |regex| regex.is_match(value))? {
                Some(matched) => Ok(Value::Bool(matched)),
                None => anyhow::bail!("invalid regex"),
            }
        }),
    )?;
    engine.add_extension(
        "regex.replace".to_owned(),
        3,
        Box::new(move |args: Vec<Value>| {
            let Some([s, pattern, value]) = defined_string_args::<3>("regex.replace", &args)?
            else {
                return Ok(Value::Undefined);
            };
            Ok(
                match regexes.with(pattern, |regex| regex.replace_all(s, value).as_ref().into())? {
                    Some(replaced) => Value::String(replaced),
                    // regorus: an invalid pattern makes `regex.replace` undefined, not an error.
                    None => Value::Undefined,
                },
            )
        }),
    )?;
    engine.add_extension(
        "regex.find_all_string_submatch_n".to_owned(),
        3,
        Box::new(move |args: Vec<Value>| {
            let name = "regex.find_all_string_submatch_n";
            // string_args checks every argument for undefined, as regorus does first.
            let Some([pattern, value]) = defined_string_args::<2>(name, &args)? else {
                return Ok(Value::Undefined);
            };
            let n = match args.get(2) {
                Some(n @ Value::Number(_)) => n,
                Some(other) => {
                    anyhow::bail!("`{name}` expects numeric argument. Got `{other}` instead")
                }
                None => anyhow::bail!("`{name}` expects 3 arguments"),
            };
            // As regorus: the pattern is compiled before `n` is checked, and a negative (or
            // huge) `n` means every match.
            let found =
                submatches.with(pattern, |regex| find_all_string_submatch_n(regex, value, n))?;
            match found {
                Some(matches) => matches,
                None => anyhow::bail!("invalid regex"),
            }
        }),
    )
}

/// The outcome of one Rego `test_` rule, run by regorus' interpreter and by the compiled plan.
///
/// ```
/// let results = attestgate_policy::run_rego_tests(&[(
///     "t.rego".to_string(),
///     "package t\ntest_ok if true".to_string(),
/// )]).unwrap();
/// assert_eq!((results[0].name.as_str(), results[0].passed), ("data.t.test_ok", true));
/// assert!(results[0].error.is_none());
/// assert!(results[0].interpreted_only.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegoTest {
    /// Full rule path, e.g. `data.attestgate_test.test_good_android`.
    pub name: String,
    /// The rule evaluated to `true`, and the plan (where there is one) agreed.
    pub passed: bool,
    /// Why it failed, when it did not merely evaluate to something other than `true`; a
    /// disagreement between the plan and the interpreter is such a failure.
    pub error: Option<String>,
    /// Why this test has no plan, so ran on the interpreter alone.
    pub interpreted_only: Option<Unsupported>,
}

/// Deepest nesting of `[` and `{` accepted in a Rego module.
///
/// regorus parses nested arrays, objects and sets in time exponential in their depth (each
/// level may be a comprehension, and it backtracks): 16 levels take about 0.1 s, 22 take
/// seconds, 30 would hang the load. Found by fuzzing the config. Real policies nest a few levels.
const MAX_REGO_NESTING: usize = 12;

/// Refuses a module whose brackets nest deeper than [`MAX_REGO_NESTING`], counting outside
/// strings, raw strings and comments. Parentheses do not count: they parse in linear time.
fn check_nesting(id: &str, source: &str) -> Result<(), ConfigError> {
    let mut depth = 0_usize;
    for c in code_chars(source) {
        match c {
            '[' | '{' => {
                depth += 1;
                if depth > MAX_REGO_NESTING {
                    return Err(ConfigError::Policy(format!(
                        "{id}: brackets nest deeper than {MAX_REGO_NESTING} levels"
                    )));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The most digits a number literal's mantissa or exponent may have.
///
/// regorus turns a literal into an exact big integer when it parses it, so `0E88888888` costs
/// it a power of ten with 88 million digits: a minute of CPU at load (fuzzing, `policy_plan`,
/// finding 8), 1.7 s at `0E8888888`. Real policies write a few digits.
const MAX_NUMBER_DIGITS: usize = 400;

/// Refuses a module with a number literal (outside strings, raw strings and comments) whose
/// mantissa or exponent has more than [`MAX_NUMBER_DIGITS`] digits, or whose exponent is
/// above that many: what regorus would take seconds or minutes to parse.
fn check_numbers(id: &str, source: &str) -> Result<(), ConfigError> {
    let mut chars = code_chars(source).peekable();
    let mut after_word = false;
    while let Some(c) = chars.next() {
        if !c.is_ascii_digit() || after_word {
            after_word = c.is_ascii_alphanumeric() || c == '_';
            continue;
        }
        // A literal: digits and a fraction, then an optional exponent with its sign.
        let mut mantissa = 1_usize;
        while chars.next_if(|n| n.is_ascii_digit() || *n == '.').is_some() {
            mantissa += 1;
        }
        let mut exponent = String::new();
        if chars.next_if(|n| *n == 'e' || *n == 'E').is_some() {
            let _sign = chars.next_if(|n| *n == '+' || *n == '-');
            while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                exponent.push(digit);
            }
        }
        let exponent_digits = exponent.trim_start_matches('0');
        let too_large = mantissa > MAX_NUMBER_DIGITS
            || exponent_digits.len() > 4
            || exponent_digits.parse::<usize>().unwrap_or(0) > MAX_NUMBER_DIGITS;
        if too_large {
            return Err(ConfigError::Policy(format!(
                "{id}: a number literal is too long or its exponent too large \
                 (at most {MAX_NUMBER_DIGITS} digits and e{MAX_NUMBER_DIGITS})"
            )));
        }
        after_word = chars
            .peek()
            .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_');
    }
    Ok(())
}

/// The characters of Rego source outside strings, raw strings and comments.
fn code_chars(source: &str) -> impl Iterator<Item = char> + '_ {
    let mut chars = source.chars();
    std::iter::from_fn(move || match chars.next()? {
        '#' => {
            chars.by_ref().find(|&c| c == '\n');
            Some('\n')
        }
        '"' => {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => break,
                    _ => {}
                }
            }
            Some(' ')
        }
        '`' => {
            chars.by_ref().find(|&c| c == '`');
            Some(' ')
        }
        c => Some(c),
    })
}

/// Runs every top-level `test_*` rule of the modules, the way `opa test` does: a test passes
/// when its rule evaluates to `true`. Modules are `(file name, Rego source)` pairs.
///
/// ```
/// let results = attestgate_policy::run_rego_tests(&[(
///     "t.rego".to_string(),
///     "package t\ntest_math if 1 + 1 == 2\ntest_wrong if 1 == 2".to_string(),
/// )]).unwrap();
/// assert_eq!(results.iter().filter(|t| t.passed).count(), 1);
/// assert_eq!(results[1].name, "data.t.test_wrong");
/// ```
pub fn run_rego_tests(modules: &[(String, String)]) -> Result<Vec<RegoTest>, ConfigError> {
    let mut engine = regorus::Engine::new();
    add_regex_builtins(&mut engine, &Regexes::new())
        .map_err(|err| ConfigError::Policy(format!("{err:#}")))?;
    let mut names = Vec::new();
    for (file, source) in modules {
        check_nesting(file, source)?;
        check_numbers(file, source)?;
        let package = engine
            .add_policy(file.clone(), source.clone())
            .map_err(|err| ConfigError::Policy(format!("{err:#}")))?;
        // Test rules start at the beginning of a line, OPA's convention.
        for line in source.lines() {
            let rule: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let name = format!("{package}.{rule}");
            if rule.starts_with("test_") && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let regexes = Regexes::new();
    let data = Value::new_object();
    Ok(names
        .into_iter()
        .map(|name| {
            let interpreted = engine
                .eval_rule(name.clone())
                .map_err(|err| format!("{err:#}"));
            let plan = CompiledPlan::build_test(modules, &data, &name, &regexes);
            let planned = plan
                .as_ref()
                .ok()
                .map(|plan| plan.evaluate(&Value::Undefined));
            let (passed, error) = match (&interpreted, &planned) {
                (Ok(a), Some(Ok(b))) if a != b => (
                    false,
                    Some(format!("the plan gives {b}, the interpreter {a}")),
                ),
                (Ok(_), Some(Err(err))) => (
                    false,
                    Some(format!(
                        "the plan fails where the interpreter does not: {err}"
                    )),
                ),
                (Err(err), Some(Ok(_))) => (
                    false,
                    Some(format!(
                        "the interpreter fails where the plan does not: {err}"
                    )),
                ),
                (Ok(value), _) => (*value == Value::Bool(true), None),
                (Err(err), _) => (false, Some(err.clone())),
            };
            RegoTest {
                name,
                passed,
                error,
                interpreted_only: plan.err(),
            }
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(source: &str) -> Result<Policy, ConfigError> {
        let config: PolicyConfig = serde_json::from_value(serde_json::json!({
            "modules": { "p.rego": source },
        }))
        .unwrap();
        Policy::compile(&config, [])
    }

    /// Fuzzing finding 8: regorus makes an exact big integer of every number literal, so a
    /// huge exponent took it a minute at load.
    #[test]
    fn huge_number_literals_are_refused_before_regorus_parses_them() {
        let finding = include_str!("../../fuzz/corpus/policy_plan/finding8-huge-exponent");
        let err = policy(finding).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid policy: p.rego: a number literal is too long or its exponent too large \
             (at most 400 digits and e400)"
        );
        for refused in [
            "1e401",
            "1E+401",
            "0.5e-99999",
            "1e00000000000401",
            &"7".repeat(401),
        ] {
            let source = format!("package attestgate\nx := {refused}");
            assert!(policy(&source).is_err(), "{refused}");
            let tests = [("t.rego".to_owned(), format!("package t\nx := {refused}"))];
            assert!(run_rego_tests(&tests).is_err(), "{refused}");
        }
        // Ordinary literals, and digits in names, strings, raw strings and comments, pass.
        policy(&format!(
            "package attestgate\n# 1e99999999\nx1e99999999 := [1e9, 0.5, 1.5e-3, 2E+300, 1e0000300, {}]\n\
             s := \"1e99999999\"\nr := `0E88888888`\ndecision := count(x1e99999999) == 6",
            "9".repeat(300)
        ))
        .unwrap();
    }

    #[test]
    fn deep_bracket_nesting_is_refused_before_regorus_parses_it() {
        let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        policy(&format!(
            "package attestgate\ndecision := count({}) == 1",
            nest(12)
        ))
        .unwrap();
        let err = policy(&format!("package attestgate\nx := {}", nest(13))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid policy: p.rego: brackets nest deeper than 12 levels"
        );
        // Objects and sets count too; brackets in strings, raw strings and comments do not.
        let objects = format!("{}1{}", "{\"a\":".repeat(13), "}".repeat(13));
        assert!(policy(&format!("package attestgate\nx := {objects}")).is_err());
        let quoted = "[".repeat(40);
        policy(&format!(
            "package attestgate\n# {quoted}\na := \"{quoted}\\\"{quoted}\"\nb := `{quoted}`\ndecision := true"
        ))
        .unwrap();
        // Without the limit, 30 levels would take regorus minutes to parse.
        let err = policy(&format!("package attestgate\nx := {}", nest(30))).unwrap_err();
        assert!(err.to_string().contains("deeper than 12"), "{err}");
        let err = run_rego_tests(&[("t.rego".into(), format!("package t\nx := {}", nest(30)))])
            .unwrap_err();
        assert!(err.to_string().contains("t.rego"), "{err}");
    }

    #[test]
    fn inputs_convert_as_regorus_reads_json() {
        let input = serde_json::json!({
            "a": [1, -2, 3.5, 18446744073709551615_u64, null, true, "s", {}, []],
            "b": {"c": {"d": 1e300}, "": -9223372036854775808_i64},
        });
        assert_eq!(to_rego(&input), Value::from(input));
    }

    #[test]
    fn only_the_read_parts_of_input_are_kept() {
        let input = serde_json::json!({
            "token": {"claims": {"att": {"x": 1}, "jti": "1"}, "header": {}},
            "now": 5,
            "rule": "r",
            "other": {"deep": {}},
        });
        let paths = |p: &[&[&str]]| -> Vec<Vec<String>> {
            p.iter()
                .map(|p| p.iter().map(|s| s.to_string()).collect())
                .collect()
        };
        let kept =
            |input: &serde_json::Value, reads: &[Vec<String>]| to_rego_pruned(prune(input, reads));
        let rego = |json: serde_json::Value| Value::from(json);
        assert_eq!(
            kept(
                &input,
                &paths(&[
                    &["now"],
                    &["rule", "x"],
                    &["token", "claims", "att"],
                    &["x", "y"]
                ])
            ),
            rego(
                serde_json::json!({"now": 5, "rule": "r", "token": {"claims": {"att": {"x": 1}}}})
            )
        );
        assert_eq!(
            kept(&input, &paths(&[&["other", "deep", "z"]])),
            rego(serde_json::json!({"other": {"deep": {}}}))
        );
        assert_eq!(
            kept(
                &input,
                &paths(&[&["token", "claims"], &["token", "header"]])
            ),
            rego(
                serde_json::json!({"token": {"claims": {"att": {"x": 1}, "jti": "1"}, "header": {}}})
            )
        );
        assert_eq!(kept(&input, &[]), rego(serde_json::json!({})));
        assert_eq!(
            kept(&serde_json::json!(7), &paths(&[&["a"]])),
            Value::from(7)
        );
        // The policy sees the same through the pruned document.
        let p = policy(
            "package attestgate\ndecision if object.get(input, [\"token\", \"claims\", \"att\", \"x\"], 0) == 1",
        )
        .unwrap();
        assert!(p.evaluate("data.attestgate.decision", input).unwrap().allow);
    }

    #[test]
    fn regex_builtins_decide_as_regorus_does() {
        let p = policy(
            r#"package attestgate
decision := {"allow": true, "reasons": [
    sprintf("%v", [regex.match(`^a+$`, input.s)]),
    regex.replace(input.s, `a`, "b"),
    sprintf("%v", [regex.match(`^a+$`, input.s)]),
]}
invalid_replace if not regex.replace("x", `(`, "y")
missing if not regex.match(`a`, input.missing)"#,
        )
        .unwrap();
        let out = p
            .evaluate("data.attestgate.decision", serde_json::json!({"s": "aa"}))
            .unwrap();
        assert_eq!(out.reasons, ["true", "bb", "true"]);
        let regorus = |query: &str, input: &str| {
            let mut engine = Engine::new();
            engine
                .add_policy(
                    "p.rego".into(),
                    "package p\nm := regex.match(input.p, input.s)\nr := regex.replace(input.s, input.p, \"_\")\nf := regex.find_all_string_submatch_n(input.p, input.s, object.get(input, \"n\", -1))".into(),
                )
                .unwrap();
            engine.set_input(Value::from_json_str(input).unwrap());
            let mut ours = engine.clone();
            add_regex_builtins(&mut ours, &Regexes::new()).unwrap();
            (
                engine.eval_rule(query.into()).map_err(|_| ()),
                ours.eval_rule(query.into()).map_err(|_| ()),
            )
        };
        for input in [
            r#"{"p": "^a", "s": "ab"}"#,
            r#"{"p": "(", "s": "ab"}"#,
            r#"{"p": 1, "s": "ab"}"#,
            r#"{"p": "a", "s": 2}"#,
            r#"{"p": "a"}"#,
            r#"{"p": "a{1000}{1000}", "s": "a"}"#,
            r#"{"p": "0*([0-9]*)[^.]*(?:\\.|$)", "s": "2.04..1-beta."}"#,
            r#"{"p": "(a)|(b)", "s": "abab", "n": 3}"#,
            r#"{"p": "a", "s": "aaa", "n": 0}"#,
            r#"{"p": "a", "s": "aaa", "n": 1.5}"#,
            r#"{"p": "a", "s": "aaa", "n": "1"}"#,
            r#"{"p": "(", "s": "aaa", "n": 1.5}"#,
            r#"{"p": "a", "s": "aaa", "n": 1e30}"#,
            r#"{"p": "", "s": ""}"#,
        ] {
            for query in ["data.p.m", "data.p.r", "data.p.f"] {
                let (theirs, ours) = regorus(query, input);
                assert_eq!(theirs, ours, "{query} on {input}");
            }
        }
        let (_, ours) = regorus("data.p.f", r#"{"p": "(a)|(b)", "s": "abab", "n": 3}"#);
        assert_eq!(
            ours,
            Ok(
                Value::from_json_str(r#"[["a", "a", ""], ["b", "", "b"], ["a", "a", ""]]"#)
                    .unwrap()
            )
        );
    }

    #[test]
    fn syntax_errors_fail_the_load() {
        let err = policy("package attestgate\ndecision := {").unwrap_err();
        assert!(matches!(err, ConfigError::Policy(_)), "{err}");
    }

    #[test]
    fn object_decisions_are_read_strictly() {
        let p = policy(
            r#"package attestgate
decision := {"allow": false, "reasons": ["r1"], "status": 429, "headers": {"Retry-After": "5"}}"#,
        )
        .unwrap();
        let out = p
            .evaluate("data.attestgate.decision", serde_json::json!({}))
            .unwrap();
        assert!(!out.allow);
        assert_eq!(out.reasons, ["r1"]);
        assert_eq!(out.status, Some(429));
        assert_eq!(
            out.headers.get("retry-after").map(String::as_str),
            Some("5")
        );

        let typo = policy(
            r#"package attestgate
decision := {"alow": true}"#,
        )
        .unwrap();
        assert!(typo
            .evaluate("data.attestgate.decision", serde_json::json!({}))
            .is_err());
    }

    #[test]
    fn undefined_and_odd_values_are_errors() {
        let p = policy("package attestgate\ndecision if input.x == 1").unwrap();
        assert!(
            p.evaluate("data.attestgate.decision", serde_json::json!({"x": 1}))
                .unwrap()
                .allow
        );
        assert!(p
            .evaluate("data.attestgate.decision", serde_json::json!({"x": 2}))
            .is_err());
        let p = policy("package attestgate\ndecision := 7").unwrap();
        assert!(p
            .evaluate("data.attestgate.decision", serde_json::json!({}))
            .is_err());
        let p = policy(
            r#"package attestgate
decision := {"allow": false, "status": 200}"#,
        )
        .unwrap();
        assert!(p
            .evaluate("data.attestgate.decision", serde_json::json!({}))
            .is_err());
    }
}
