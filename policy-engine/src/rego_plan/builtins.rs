//! Builtin calls, resolved when the plan is built: regorus' own builtins by function pointer
//! (so a builtin computes exactly what the interpreter computes, errors included), and the
//! regex builtins with their pattern compiled once when it is a literal.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use regex::{Regex, RegexBuilder};
use regorus::unstable::{BuiltinFcn, Span, BUILTINS};
use regorus::{LimitError, Value};

use super::ir::AstRef;

/// Builtins whose result is not a function of their arguments (or that write to the
/// interpreter's own output): a policy calling one is never memoized (`reads`) and never
/// planned.
pub(crate) const NONDETERMINISTIC: &[&str] = &[
    "rand.intn",
    "time.now_ns",
    "uuid.rfc4122",
    "opa.runtime",
    "http.send",
    "net.lookup_ip_addr",
    "print",
    "trace",
];

/// Besides those, `walk`, which regorus evaluates as a generator of its own.
fn not_planned(name: &str) -> bool {
    name == "walk" || NONDETERMINISTIC.contains(&name)
}

/// A resolved builtin call.
#[derive(Clone)]
pub(crate) enum Call {
    /// One of regorus' builtins, with the call's span and argument nodes for its errors.
    Regorus {
        name: &'static str,
        function: fn(&Span, &[AstRef], &[Value], bool) -> anyhow::Result<Value>,
        span: Span,
        params: Vec<AstRef>,
    },
    RegexMatch(Pattern),
    RegexReplace(Pattern),
    RegexFindAllStringSubmatchN(Pattern),
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Call::Regorus { name, .. } => write!(f, "{name}"),
            Call::RegexMatch(p) => write!(f, "regex.match({p:?})"),
            Call::RegexReplace(p) => write!(f, "regex.replace({p:?})"),
            Call::RegexFindAllStringSubmatchN(p) => {
                write!(f, "regex.find_all_string_submatch_n({p:?})")
            }
        }
    }
}

/// A regex builtin's pattern: compiled at load when it is a literal, else looked up in the
/// policy's bounded cache at each call.
#[derive(Clone)]
pub(crate) enum Pattern {
    Fixed(Arc<Regex>),
    Dynamic(Regexes),
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Fixed(regex) => write!(f, "{:?}", regex.as_str()),
            Pattern::Dynamic(_) => write!(f, "dynamic"),
        }
    }
}

/// Why a call cannot be planned.
pub(crate) enum Unplanned {
    NotPlanned,
    Unknown,
    Arity(u8),
}

/// The call named `name` with `params`, when the plan can make it. `literal` is the first
/// argument when it is a string literal (a regex pattern).
pub(crate) fn resolve(
    name: &str,
    span: &Span,
    params: &[AstRef],
    literal: Option<&str>,
    regexes: &Regexes,
) -> Result<Call, Unplanned> {
    if not_planned(name) {
        return Err(Unplanned::NotPlanned);
    }
    let pattern = || match literal.and_then(|p| compile(p).ok()) {
        Some(regex) => Pattern::Fixed(Arc::new(regex)),
        None => Pattern::Dynamic(regexes.clone()),
    };
    let (call, arity) = match name {
        "regex.match" => (Call::RegexMatch(pattern()), 2),
        "regex.replace" => (Call::RegexReplace(pattern()), 3),
        "regex.find_all_string_submatch_n" => (Call::RegexFindAllStringSubmatchN(pattern()), 3),
        _ => {
            let Some((&name, &(function, arity))) = BUILTINS.get_key_value(name) else {
                return Err(Unplanned::Unknown);
            };
            let function: BuiltinFcn = (function, arity);
            (
                Call::Regorus {
                    name,
                    function: function.0,
                    span: span.clone(),
                    params: params.to_vec(),
                },
                arity,
            )
        }
    };
    if params.len() != usize::from(arity) {
        return Err(Unplanned::Arity(arity));
    }
    Ok(call)
}

impl Call {
    /// The call on defined arguments (the caller makes a call with an undefined one undefined).
    pub(crate) fn call(&self, args: &[Value]) -> anyhow::Result<Value> {
        match self {
            Call::Regorus {
                function,
                span,
                params,
                ..
            } => function(span, params, args, true),
            Call::RegexMatch(pattern) => {
                let [p, value] = string_args::<2>("regex.match", args)?;
                match pattern.with(p, |regex| regex.is_match(value))? {
                    Some(matched) => Ok(Value::Bool(matched)),
                    None => anyhow::bail!("invalid regex"),
                }
            }
            Call::RegexReplace(pattern) => {
                let [s, p, value] = string_args::<3>("regex.replace", args)?;
                Ok(
                    match pattern.with(p, |regex| regex.replace_all(s, value).as_ref().into())? {
                        Some(replaced) => Value::String(replaced),
                        // regorus: an invalid pattern makes `regex.replace` undefined.
                        None => Value::Undefined,
                    },
                )
            }
            Call::RegexFindAllStringSubmatchN(pattern) => {
                let name = "regex.find_all_string_submatch_n";
                let [p, value] = string_args::<2>(name, args)?;
                let n = match args.get(2) {
                    Some(n @ Value::Number(_)) => n,
                    Some(other) => {
                        anyhow::bail!("`{name}` expects numeric argument. Got `{other}` instead")
                    }
                    None => anyhow::bail!("`{name}` expects 3 arguments"),
                };
                match pattern.with(p, |regex| find_all_string_submatch_n(regex, value, n))? {
                    Some(matches) => matches,
                    None => anyhow::bail!("invalid regex"),
                }
            }
        }
    }
}

impl Pattern {
    /// `with` applied to the compiled `pattern`; `Ok(None)` when it is not a valid regex.
    fn with<T>(&self, pattern: &str, with: impl FnOnce(&Regex) -> T) -> anyhow::Result<Option<T>> {
        match self {
            Pattern::Fixed(regex) => Ok(Some(with(regex))),
            Pattern::Dynamic(regexes) => regexes.with(pattern, with),
        }
    }
}

/// `regex.find_all_string_submatch_n` on a compiled pattern, as regorus computes it: `n` must
/// be an integer number, and a negative (or huge) `n` means every match.
pub(crate) fn find_all_string_submatch_n(
    regex: &Regex,
    value: &str,
    n: &Value,
) -> anyhow::Result<Value> {
    let Value::Number(n) = n else {
        anyhow::bail!("n must be a number");
    };
    if !n.is_integer() {
        anyhow::bail!("n must be an integer");
    }
    let limit = n
        .as_i64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    let matches = regex.captures_iter(value).take(limit).map(|captures| {
        let groups = captures
            .iter()
            .map(|group| Value::String(group.map_or("", |g| g.as_str()).into()));
        Value::from(groups.collect::<Vec<_>>())
    });
    Ok(Value::from(matches.collect::<Vec<_>>()))
}

/// The first `N` arguments of a regex builtin, which must be strings: an error like regorus'
/// own when one is not.
pub(crate) fn string_args<'a, const N: usize>(
    name: &str,
    args: &'a [Value],
) -> anyhow::Result<[&'a str; N]> {
    let mut strings = [""; N];
    for (slot, arg) in strings.iter_mut().zip(args) {
        match arg {
            Value::String(s) => *slot = s.as_ref(),
            other => anyhow::bail!("`{name}` expects string argument. Got `{other}` instead"),
        }
    }
    Ok(strings)
}

/// Compiled patterns a policy's regex builtins keep between evaluations.
/// regorus compiles the pattern on every call (its own cache is a process-wide static behind
/// its `cache` feature); compiling costs far more than matching, and patterns are nearly
/// always constants of the policy.
const REGEX_CACHE_ENTRIES: usize = 64;

/// regorus' bound on a compiled regex (`REGEX_SIZE_LIMIT` in its `builtins/regex.rs`).
const REGEX_SIZE_LIMIT: usize = 100 * 1024;

/// `pattern` compiled as regorus compiles it.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// A bounded cache of compiled regexes, shared by the clones of one engine and its plans.
#[derive(Clone)]
pub(crate) struct Regexes(Arc<Mutex<LruCache<String, Regex>>>);

impl Regexes {
    pub(crate) fn new() -> Regexes {
        let entries = NonZeroUsize::new(REGEX_CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Regexes(Arc::new(Mutex::new(LruCache::new(entries))))
    }

    /// `with` applied to `pattern` compiled as regorus compiles it; `Ok(None)` when it is not
    /// a valid regex. The cached regex is used in place: a clone would start without the
    /// search caches its earlier uses built.
    pub(crate) fn with<T>(
        &self,
        pattern: &str,
        with: impl FnOnce(&Regex) -> T,
    ) -> anyhow::Result<Option<T>> {
        // A poisoned lock only means a panic elsewhere; the cache itself is still consistent.
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(regex) = cache.get(pattern) {
            return Ok(Some(with(regex)));
        }
        match compile(pattern) {
            Ok(regex) => {
                let result = with(&regex);
                cache.put(pattern.to_owned(), regex);
                Ok(Some(result))
            }
            Err(regex::Error::CompiledTooBig(_)) => {
                Err(anyhow::Error::new(LimitError::RegexSizeLimitExceeded {
                    limit: REGEX_SIZE_LIMIT,
                }))
            }
            Err(_) => Ok(None),
        }
    }
}
