//! The decision cache: per worker, bounded, and a security control before it is a speed-up.
//!
//! # What is cached, keyed by what
//!
//! A decision depends on the token, on every request fact the Rego input carries (method, path,
//! host, source IP, all headers, the matched rule) and on the clock (`input.now`, `exp`, `nbf`).
//! A cache keyed by the token alone would replay an allow for a different request, so the cache
//! is split in two levels:
//!
//! 1. **Verified tokens**, keyed by SHA-256 of the raw token. The result of signature, structure,
//!    issuer/audience and time checks (success or error) is stored with the window of clock
//!    values for which verifying again would give the same answer, and served only inside it:
//!    Only the verdict is kept: a hit on a verified token parses its claims again and repeats
//!    every check but the signature. This level is used only when a signature costs more to
//!    verify than the token costs to hash (asymmetric or fetched keys): with HMAC keys only,
//!    or in hybrid mode, every token is verified, forged ones included, at about the price of
//!    a lookup.
//!    - a verified token: from the second it was verified until `exp + leeway - 1` (one second
//!      short of the boundary, which also covers fractional `exp`); without `exp` (only when
//!      `require_exp` is off), for [`UNKNOWN_EXPIRY_TTL`] seconds;
//!    - a denial that does not depend on the clock (malformed, bad signature, unknown key, alg
//!      not allowed, no `exp`) or only gets worse with it (`token_expired`): for
//!      [`UNKNOWN_EXPIRY_TTL`] seconds. This is what keeps a flood of one forged token from
//!      costing a signature verification per request;
//!    - a denial that time can turn into something else (`token_not_yet_valid`, issuer or
//!      audience mismatch, which are reached only after the time checks passed): within the
//!      same second only. These need a validly signed token, so they cannot be forged in bulk.
//!
//!    Binding, the policy and the claim headers then run on the request at hand.
//! 2. **Policy outcomes**, keyed by the entrypoint and the parts of `input` the policy can
//!    read, compared in full, when those are known from its source ([`crate::Policy::input_key`]):
//!    the default policy reads only `input.token.claims.att`, so every token carrying the same
//!    attestation shares one Rego evaluation, whatever its `did`, `jti`, `exp` or request. A
//!    policy whose reads cannot be followed (or that calls a nondeterministic builtin) is
//!    evaluated every time. `data` is fixed per gate, and a new gate empties the cache.
//! 3. **Whole decisions**, keyed by everything [`Gate::check`] reads, compared byte for byte:
//!    the clock second, the matched rule, method, path, host, source IP and the headers a decision can
//!    depend on: the token header, bound headers and the headers the policy reads by name; every
//!    header when a request signature is checked or the policy's reads of
//!    `input.request.headers` cannot be followed. So Envoy's per-request `x-request-id` does
//!    not make every request a miss. Since the clock second is part of the key, a hit is exactly
//!    what the gate would answer, including monitor mode, bypass and claim headers, whatever
//!    the policy reads from `input`. This level is emptied whenever the second changes, so it
//!    only ever holds the distinct requests of the current second.
//!
//! Token keys are SHA-256 digests of length-prefixed fields with a domain tag, never a short
//! hash a forger could collide; policy and whole-decision keys are the length-prefixed fields
//! themselves, compared in full (a policy key over 1 KB is kept as its SHA-256 instead, so an
//! entry stays small). A cache remembers which [`Gate`] filled it and empties itself
//! when used with another one (a reconfigure). Each level is LRU-bounded at `cache.entries`,
//! the whole decisions also at [`MAX_WHOLE_DECISIONS`]. The token level keeps verdicts, not
//! claims, so 100 000 entries fit in about 16 MB (`make bench` measures it).

use std::num::NonZeroUsize;
use std::rc::Rc;

use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::decision::Decision;
use crate::digest::{field, put_field};
use crate::error::TokenError;
use crate::gate::{Direct, Gate, HeaderScope, Hooks};
use crate::input::PolicyInput;
use crate::keys::KeySet;
use crate::policy::{Policy, PolicyOutcome};
use crate::remote::Dynamic;
use crate::request::Request;
use crate::token::{self, VerifiedToken};

/// How long a token result is cached when the token's expiry is unknown or not trusted.
pub(crate) const UNKNOWN_EXPIRY_TTL: i64 = 60;

type Key = [u8; 32];

/// The most whole decisions kept, whatever `entries` says: the level holds only the current
/// second's repeats, and a decision carries its claims (about 5 KB), so a cap keeps a burst
/// of distinct requests from costing more than a few MB. Past it the LRU keeps the hottest.
pub(crate) const MAX_WHOLE_DECISIONS: usize = 1024;

/// A token's verdict, not its claims: claims parsed into JSON maps take about 4 KB a token,
/// so a hit parses them again (everything but the signature) and an entry stays small.
#[derive(Debug)]
struct TokenEntry {
    /// Boxed: most entries are successes, and an inline error would widen every entry.
    verdict: Result<(), Box<TokenError>>,
    /// Served while `from <= now <= until`.
    from: i64,
    until: i64,
}

/// How one request was answered, for the `attestgate.cache.*` counters.
///
/// ```
/// use attestgate_policy::{CacheOutcome, DecisionCache, Gate, Request};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let mut cache = DecisionCache::new(16);
/// // No token: nothing to verify, so nothing cached.
/// let (_, outcome) = cache.check(&gate, &Request::new("GET", "/"), 1_700_000_000);
/// assert_eq!(outcome, CacheOutcome::Uncached);
/// let forged = Request::new("GET", "/").with_header("approov-token", "not.a.token");
/// assert_eq!(cache.check(&gate, &forged, 1_700_000_000).1, CacheOutcome::Miss);
/// assert_eq!(cache.check(&gate, &forged, 1_700_000_000).1, CacheOutcome::Hit);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Answered without verifying a signature: a whole-decision or a verified-token hit.
    Hit,
    /// A token was verified and the result cached.
    Miss,
    /// Nothing to verify (no token, a bypass rule) or the cache is off.
    Uncached,
}

/// Running totals since the cache was made.
///
/// ```
/// use attestgate_policy::{CacheStats, DecisionCache, Gate, Request};
/// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
/// let mut cache = DecisionCache::new(16);
/// let forged = Request::new("GET", "/").with_header("approov-token", "not.a.token");
/// for _ in 0..3 {
///     cache.check(&gate, &forged, 1_700_000_000);
/// }
/// let stats = cache.stats();
/// assert_eq!((stats.misses, stats.decision_hits), (1, 2));
/// assert_eq!(DecisionCache::new(0).stats(), CacheStats::default());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests answered from the whole-decision level.
    pub decision_hits: u64,
    /// Requests whose token came from the verified-token level.
    pub token_hits: u64,
    /// Token verifications done.
    pub misses: u64,
    /// Policy evaluations answered from the policy-outcome level.
    pub policy_hits: u64,
    /// Policy evaluations done.
    pub policy_misses: u64,
}

/// A per-worker decision cache: verified tokens, policy outcomes and the current second's
/// whole decisions, each keyed on everything its answer depends on and served only while
/// recomputing would give the same answer, so a cached decision is always the one
/// [`Gate::check_with`] returns (`cache.rs` explains each level). Not `Sync`: give each worker
/// (each proxy-wasm VM) its own.
///
/// ```
/// use attestgate_policy::{CacheOutcome, DecisionCache, Gate, Request};
///
/// let gate = Gate::from_json(r#"{ "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" } }"#).unwrap();
/// let mut cache = DecisionCache::new(gate.config().cache.entries);
/// let request = Request::new("GET", "/api").with_header("approov-token", "not.a.token");
/// let (first, outcome) = cache.check(&gate, &request, 1_700_000_000);
/// assert_eq!(outcome, CacheOutcome::Miss);
/// let (again, outcome) = cache.check(&gate, &request, 1_700_000_000);
/// assert_eq!((again, outcome), (first, CacheOutcome::Hit));
/// ```
#[derive(Debug)]
pub struct DecisionCache {
    levels: Option<Levels>,
    stats: CacheStats,
}

#[derive(Debug)]
struct Levels {
    gate_id: u64,
    tokens: LruCache<Key, TokenEntry>,
    outcomes: LruCache<Vec<u8>, Result<PolicyOutcome, String>>,
    decisions: LruCache<Vec<u8>, Rc<Decision>>,
    /// The clock second the `decisions` level belongs to.
    second: i64,
}

impl DecisionCache {
    /// A cache holding at most `entries` verified tokens, `entries` policy outcomes and
    /// `entries` decisions; 0 is off.
    ///
    /// ```
    /// use attestgate_policy::DecisionCache;
    /// assert!(DecisionCache::new(1_000).enabled());
    /// assert!(!DecisionCache::new(0).enabled());
    /// ```
    pub fn new(entries: usize) -> DecisionCache {
        DecisionCache {
            levels: NonZeroUsize::new(entries).map(|cap| Levels {
                gate_id: 0,
                tokens: LruCache::new(cap),
                outcomes: LruCache::new(cap),
                decisions: LruCache::new(
                    cap.min(NonZeroUsize::new(MAX_WHOLE_DECISIONS).unwrap_or(NonZeroUsize::MIN)),
                ),
                second: i64::MIN,
            }),
            stats: CacheStats::default(),
        }
    }

    /// Whether the cache is on.
    ///
    /// ```
    /// use attestgate_policy::{DecisionCache, Gate};
    /// let gate = Gate::from_json(r#"{
    ///     "keys": { "approov_secret": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" },
    ///     "cache": { "entries": 0 }
    /// }"#).unwrap();
    /// assert!(!DecisionCache::new(gate.config().cache.entries).enabled());
    /// ```
    pub fn enabled(&self) -> bool {
        self.levels.is_some()
    }

    /// Totals so far.
    ///
    /// ```
    /// use attestgate_policy::{DecisionCache, Gate, Request};
    /// use attestgate_testkit::{keygen::keygen, SigningKey};
    /// let key = keygen("ES256", None).unwrap();
    /// let gate = Gate::from_json(&serde_json::json!({ "keys": { "keys": key.public_jwks["keys"] } }).to_string()).unwrap();
    /// let signer = SigningKey::from_jwk(&key.private_jwk).unwrap();
    /// let token = |did: &str| signer.sign(serde_json::json!({ "exp": 1_700_000_300, "did": did }).as_object().unwrap()).unwrap();
    /// let request = Request::new("GET", "/").with_header("approov-token", token("d1"));
    /// let mut cache = DecisionCache::new(16);
    /// cache.check(&gate, &request, 1_700_000_000);
    /// cache.check(&gate, &request, 1_700_000_000); // the same second: a whole decision
    /// cache.check(&gate, &request, 1_700_000_001); // the next one: the verified token
    /// let stats = cache.stats();
    /// assert_eq!((stats.misses, stats.decision_hits, stats.token_hits), (1, 1, 1));
    /// ```
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Cached verified-token results (both successes and denials).
    ///
    /// ```
    /// use attestgate_policy::{DecisionCache, Gate, Request};
    /// use attestgate_testkit::{keygen::keygen, SigningKey};
    /// let key = keygen("ES256", None).unwrap();
    /// let gate = Gate::from_json(&serde_json::json!({ "keys": { "keys": key.public_jwks["keys"] } }).to_string()).unwrap();
    /// let signer = SigningKey::from_jwk(&key.private_jwk).unwrap();
    /// let token = |did: &str| signer.sign(serde_json::json!({ "exp": 1_700_000_300, "did": did }).as_object().unwrap()).unwrap();
    /// let (d1, d2) = (token("d1"), token("d2"));
    /// let mut cache = DecisionCache::new(16);
    /// for token in [&d1, &d2, &d1] {
    ///     let request = Request::new("GET", "/").with_header("approov-token", token.as_str());
    ///     assert!(cache.check(&gate, &request, 1_700_000_000).0.allow);
    /// }
    /// assert_eq!(cache.token_entries(), 2);
    /// ```
    pub fn token_entries(&self) -> usize {
        self.levels.as_ref().map_or(0, |l| l.tokens.len())
    }

    /// Cached policy outcomes.
    ///
    /// ```
    /// use attestgate_policy::{DecisionCache, Gate, Request};
    /// use attestgate_testkit::SigningKey;
    /// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    /// let gate = Gate::from_json(&format!(r#"{{
    ///     "keys": {{ "approov_secret": "{secret}" }},
    ///     "policy": {{ "modules": {{ "p.rego": "package attestgate\ndecision := input.token.claims.ok" }} }}
    /// }}"#)).unwrap();
    /// let signer = SigningKey::hs256_from_base64_secret(secret).unwrap();
    /// let mut cache = DecisionCache::new(16);
    /// for did in ["d1", "d2"] {
    ///     let claims = serde_json::json!({ "exp": 1_700_000_300, "did": did, "ok": true });
    ///     let token = signer.sign(claims.as_object().unwrap()).unwrap();
    ///     let request = Request::new("GET", "/").with_header("approov-token", token);
    ///     assert!(cache.check(&gate, &request, 1_700_000_000).0.allow);
    /// }
    /// // The policy reads only `ok`: both devices share one evaluation.
    /// assert_eq!(cache.outcome_entries(), 1);
    /// assert_eq!(cache.stats().policy_hits, 1);
    /// ```
    pub fn outcome_entries(&self) -> usize {
        self.levels.as_ref().map_or(0, |l| l.outcomes.len())
    }

    /// Cached whole decisions (all of the current second).
    ///
    /// ```
    /// use attestgate_policy::{DecisionCache, Gate, Request};
    /// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// let mut cache = DecisionCache::new(16);
    /// let forged = Request::new("GET", "/").with_header("approov-token", "not.a.token");
    /// cache.check(&gate, &forged, 1_700_000_000);
    /// assert_eq!(cache.decision_entries(), 1);
    /// cache.check(&gate, &forged, 1_700_000_001); // the level keeps one second only
    /// assert_eq!(cache.decision_entries(), 1);
    /// ```
    pub fn decision_entries(&self) -> usize {
        self.levels.as_ref().map_or(0, |l| l.decisions.len())
    }

    /// Forgets everything: the host calls it when what [`Dynamic`] carries changed (fetched
    /// keys rotated, a new denylist), so no answer from before the change is served.
    ///
    /// ```
    /// use attestgate_policy::{CacheOutcome, DecisionCache, Gate, Request};
    /// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// let mut cache = DecisionCache::new(16);
    /// let forged = Request::new("GET", "/").with_header("approov-token", "not.a.token");
    /// cache.check(&gate, &forged, 1_700_000_000);
    /// cache.clear();
    /// assert_eq!((cache.token_entries(), cache.decision_entries()), (0, 0));
    /// assert_eq!(cache.check(&gate, &forged, 1_700_000_000).1, CacheOutcome::Miss);
    /// ```
    pub fn clear(&mut self) {
        if let Some(levels) = self.levels.as_mut() {
            levels.clear();
        }
    }

    /// [`Gate::check`], answered from the cache when it can be. The decision is always the one
    /// `gate.check(request, now)` returns.
    ///
    /// ```
    /// use attestgate_policy::{DecisionCache, Gate, Request};
    /// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// let mut cache = DecisionCache::new(16);
    /// let request = Request::new("GET", "/").with_header("approov-token", "not.a.token");
    /// for now in [1_700_000_000, 1_700_000_000, 1_700_000_030] {
    ///     assert_eq!(cache.check(&gate, &request, now).0, gate.check(&request, now));
    /// }
    /// ```
    pub fn check(&mut self, gate: &Gate, request: &Request, now: i64) -> (Decision, CacheOutcome) {
        self.check_with(gate, request, now, &mut Dynamic::default())
    }

    /// [`Gate::check_with`], answered from the cache when it can be. Requests on a rate-limited
    /// route never get a whole cached decision (each must take from its bucket), and the host
    /// must [`clear`](Self::clear) the cache when the documents in `dynamic` change.
    ///
    /// ```
    /// use attestgate_policy::remote::{Denylist, Dynamic};
    /// use attestgate_policy::{DecisionCache, Gate, Reason, Request};
    /// use attestgate_testkit::SigningKey;
    /// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
    /// let gate = Gate::from_json(&format!(r#"{{
    ///     "keys": {{ "approov_secret": "{secret}" }},
    ///     "denylist": {{ "devices": [] }}
    /// }}"#)).unwrap();
    /// let token = SigningKey::hs256_from_base64_secret(secret).unwrap()
    ///     .sign(serde_json::json!({ "exp": 1_700_000_300, "did": "d1" }).as_object().unwrap()).unwrap();
    /// let request = Request::new("GET", "/").with_header("approov-token", token);
    ///
    /// let mut cache = DecisionCache::new(16);
    /// assert!(cache.check_with(&gate, &request, 1_700_000_000, &mut Dynamic::default()).0.allow);
    /// // A fetched denylist now names the device: clear, then decide with it.
    /// let fetched = Denylist::new(["d1"]);
    /// cache.clear();
    /// let mut dynamic = Dynamic { denylist: Some(&fetched), ..Dynamic::default() };
    /// let (decision, _) = cache.check_with(&gate, &request, 1_700_000_000, &mut dynamic);
    /// assert_eq!(decision.reason, Reason::DeviceDenied);
    /// ```
    pub fn check_with(
        &mut self,
        gate: &Gate,
        request: &Request,
        now: i64,
        dynamic: &mut Dynamic<'_>,
    ) -> (Decision, CacheOutcome) {
        let (decision, outcome) = self.check_shared(gate, request, now, dynamic);
        (Rc::unwrap_or_clone(decision), outcome)
    }

    /// [`DecisionCache::check_with`] without copying the decision out: a whole-decision hit
    /// hands back the cached one (a decision with its claims is about 5 KB; the filter reads
    /// a few of its fields).
    ///
    /// ```
    /// use std::rc::Rc;
    /// use attestgate_policy::remote::Dynamic;
    /// use attestgate_policy::{CacheOutcome, DecisionCache, Gate, Request};
    /// let gate = Gate::from_json(r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#).unwrap();
    /// let mut cache = DecisionCache::new(16);
    /// let request = Request::new("GET", "/").with_header("approov-token", "not.a.token");
    /// let (first, _) = cache.check_shared(&gate, &request, 1_700_000_000, &mut Dynamic::default());
    /// let (again, outcome) = cache.check_shared(&gate, &request, 1_700_000_000, &mut Dynamic::default());
    /// assert_eq!(outcome, CacheOutcome::Hit);
    /// assert!(Rc::ptr_eq(&first, &again)); // the same decision, not a copy
    /// ```
    pub fn check_shared(
        &mut self,
        gate: &Gate,
        request: &Request,
        now: i64,
        dynamic: &mut Dynamic<'_>,
    ) -> (Rc<Decision>, CacheOutcome) {
        let Some(levels) = self.levels.as_mut() else {
            return (
                Rc::new(gate.check_with(request, now, dynamic)),
                CacheOutcome::Uncached,
            );
        };
        if levels.gate_id != gate.id {
            levels.gate_id = gate.id;
            levels.clear();
        }
        if levels.second != now {
            levels.second = now;
            levels.decisions.clear();
        }
        let route = gate.matching_rule(request);
        let matched = route.clone().ok().flatten();
        let rule = matched.and_then(|rule| {
            gate.config()
                .rules
                .iter()
                .position(|r| std::ptr::eq(r, rule))
        });
        // A rate-limited request must reach its bucket: no whole cached decision for it.
        let whole = !(matched.is_some_and(|r| r.rate_limit.is_some()) && dynamic.limiter.is_some());
        let decision_key = decision_key(request, now, rule, &gate.headers_read, dynamic);
        if whole {
            if let Some(decision) = levels.decisions.get(&decision_key) {
                self.stats.decision_hits += 1;
                return (Rc::clone(decision), CacheOutcome::Hit);
            }
        }

        let token_header = gate.config().token.header.as_str();
        let mut values = request.header_values(token_header);
        let token_header_value = match (values.next(), values.next()) {
            (Some(value), None) => Some(value),
            _ => None,
        };
        let mut hooks = Memo {
            gate,
            now,
            tokens: &mut levels.tokens,
            outcomes: &mut levels.outcomes,
            stats: &mut self.stats,
            outcome: CacheOutcome::Uncached,
            token_header_value,
        };
        let decision = Rc::new(gate.check_hooked(request, route, now, dynamic, &mut hooks));
        let outcome = hooks.outcome;
        if whole {
            levels.decisions.put(decision_key, Rc::clone(&decision));
        }
        (decision, outcome)
    }
}

impl Levels {
    fn clear(&mut self) {
        self.tokens.clear();
        self.outcomes.clear();
        self.decisions.clear();
    }
}

/// The token and policy-outcome levels, as the gate's [`Hooks`].
struct Memo<'a> {
    gate: &'a Gate,
    now: i64,
    tokens: &'a mut LruCache<Key, TokenEntry>,
    outcomes: &'a mut LruCache<Vec<u8>, Result<PolicyOutcome, String>>,
    stats: &'a mut CacheStats,
    outcome: CacheOutcome,
    /// The token header's one value. The raw token is a function of it (the configured prefix
    /// stripped, whitespace trimmed), so its [`token_key`] keys the verification.
    token_header_value: Option<&'a str>,
}

impl Memo<'_> {
    /// What a miss does: the plain check's own steps.
    fn direct(&self) -> Direct<'_> {
        Direct {
            gate: self.gate,
            now: self.now,
        }
    }
}

impl Hooks for Memo<'_> {
    fn verify(&mut self, raw: &str, keys: &[&KeySet]) -> Result<VerifiedToken, TokenError> {
        let now = self.now;
        if !self.gate.signatures_are_costly() {
            self.stats.misses += 1;
            self.outcome = CacheOutcome::Miss;
            return self.direct().verify(raw, keys);
        }
        // The gate verifies only a token header present exactly once, so the digest is there;
        // the fallback keys the raw token under its own tag, never colliding with it.
        let key = self
            .token_header_value
            .map_or_else(|| raw_token_key(raw), token_key);
        if let Some(entry) = self.tokens.get(&key) {
            if entry.from <= now && now <= entry.until {
                self.stats.token_hits += 1;
                self.outcome = CacheOutcome::Hit;
                return match &entry.verdict {
                    Ok(()) => token::verify_known_signature(raw, &self.gate.verify, now),
                    Err(error) => Err(TokenError::clone(error)),
                };
            }
            self.tokens.pop(&key);
        }
        self.stats.misses += 1;
        self.outcome = CacheOutcome::Miss;
        let result = self.direct().verify(raw, keys);
        let until = cached_until(&result, now, self.gate.verify.leeway_seconds);
        if until >= now {
            self.tokens.put(
                key,
                TokenEntry {
                    verdict: result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|error| Box::new(error.clone())),
                    from: now,
                    until,
                },
            );
        }
        result
    }

    fn evaluate(
        &mut self,
        policy: &Policy,
        entrypoint: &str,
        input: &mut PolicyInput<'_>,
    ) -> Result<PolicyOutcome, String> {
        // A policy that reads only the token's claims is keyed on them: no document is built
        // for a hit.
        let key = match input
            .unbuilt_claims()
            .and_then(|claims| policy.claims_key(entrypoint, claims))
        {
            Some(key) => key,
            None => match policy.input_key(entrypoint, input.document()) {
                Some(key) => key,
                None => return self.direct().evaluate(policy, entrypoint, input),
            },
        };
        if let Some(outcome) = self.outcomes.get(&key) {
            self.stats.policy_hits += 1;
            return outcome.clone();
        }
        self.stats.policy_misses += 1;
        let outcome = self.direct().evaluate(policy, entrypoint, input);
        self.outcomes.put(key, outcome.clone());
        outcome
    }
}

/// The last second a token result may be served; see the module docs.
fn cached_until(result: &Result<VerifiedToken, TokenError>, now: i64, leeway: i64) -> i64 {
    let ttl = now.saturating_add(UNKNOWN_EXPIRY_TTL);
    match result {
        Ok(token) => match token.claims.get("exp") {
            Some(exp) => exp.as_i64().map_or(now.saturating_sub(1), |exp| {
                exp.saturating_add(leeway).saturating_sub(1)
            }),
            None => ttl,
        },
        Err(TokenError::NotYetValid)
        | Err(TokenError::IssuerMismatch)
        | Err(TokenError::AudienceMismatch) => now,
        Err(_) => ttl,
    }
}

/// The key of a token header value.
fn token_key(header_value: &str) -> Key {
    tagged_digest(b"attestgate token header v1", header_value.as_bytes())
}

fn raw_token_key(raw: &str) -> Key {
    tagged_digest(b"attestgate raw token v1", raw.as_bytes())
}

fn tagged_digest(tag: &[u8], bytes: &[u8]) -> Key {
    let mut hash = Sha256::new();
    field(&mut hash, tag);
    field(&mut hash, bytes);
    hash.finalize().into()
}

/// Everything a whole decision depends on, written out (length-prefixed) rather than hashed:
/// the level compares keys byte for byte, so a fast hash suffices and no collision can serve
/// one request another's answer. Hashing a ~1 KB token with SHA-256 is the slowest part of a
/// hit in wasm, which has no SHA instructions.
fn decision_key(
    request: &Request,
    now: i64,
    rule: Option<usize>,
    headers: &HeaderScope,
    dynamic: &Dynamic<'_>,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(1536);
    let mut put = |bytes: &[u8]| put_field(&mut key, bytes);
    put(&now.to_le_bytes());
    put(&rule.map_or(u64::MAX, |i| i as u64).to_le_bytes());
    put(request.method.as_bytes());
    put(request.path.as_bytes());
    put(request.host.as_bytes());
    match &request.source_ip {
        Some(ip) => {
            put(&[1]);
            put(ip.as_bytes());
        }
        None => put(&[0]),
    }
    match headers {
        HeaderScope::All => {
            put(&(request.headers.len() as u64).to_le_bytes());
            for (name, value) in &request.headers {
                put(name.as_bytes());
                put(value.as_bytes());
            }
        }
        HeaderScope::Only(names) => {
            // Every value of each header that matters, in order; how many, so that a repeated
            // header (refused for the token and bound headers) never keys like a single one.
            for name in names {
                put(name.as_bytes());
                let mut count = 0_u64;
                for value in request.header_values(name) {
                    put(value.as_bytes());
                    count += 1;
                }
                put(&count.to_le_bytes());
            }
        }
    }
    // The body, when the host buffered it (a signed `content-digest` is checked against it):
    // by digest, as it may be large.
    match &request.body {
        Some(body) => {
            put(&[1]);
            put(&Sha256::digest(body));
        }
        None => put(&[0]),
    }
    // Hybrid mode: a decision made with the gateway's record is never served to a request
    // without one (or with another token's).
    match dynamic.host_verified {
        Some(record) => {
            put(&[1]);
            put(&record.exp.map_or(u64::MAX, f64::to_bits).to_le_bytes());
            put(&[u8::from(record.exp.is_some())]);
        }
        None => put(&[0]),
    }
    key
}
