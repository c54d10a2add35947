//! What changes without a redeploy: keys fetched from a JWKS, a device denylist, and
//! per-device rate limits.
//!
//! The core fetches nothing and keeps no shared state. The host fetches the documents (the
//! filter with `dispatch_http_call` on its tick), parses them here, and passes what it holds
//! into [`Gate::check_with`](crate::Gate::check_with) as a [`Dynamic`]. Rate limits are token
//! buckets whose state the host stores where all its workers see it, through a
//! [`RateLimiter`]; the bucket arithmetic is the pure [`Bucket::take`].

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::config::{Config, RateLimit, RemoteSource};
use crate::keys::KeySet;

/// The host's current view of the remote documents and its rate limiter.
///
/// ```
/// use attestgate_policy::remote::{parse_jwks, Dynamic};
/// use attestgate_policy::{Gate, Reason, Request};
/// use attestgate_testkit::SigningKey;
/// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"; // base64url, as in a JWK
/// let gate = Gate::from_json(r#"{ "keys": { "remote": {
///     "upstream": "jwks", "authority": "keys.example.com", "path": "/jwks.json"
/// } } }"#).unwrap();
/// let token = SigningKey::hs256_from_base64_secret(secret).unwrap().with_kid(Some("k1".to_owned()))
///     .sign(serde_json::json!({ "exp": 1_700_000_300 }).as_object().unwrap()).unwrap();
/// let request = Request::new("GET", "/").with_header("approov-token", token);
///
/// // Before the first fetch there is no key to check the token with.
/// assert_eq!(gate.check(&request, 1_700_000_000).reason, Reason::KeysUnavailable);
/// let body = format!(r#"{{"keys":[{{"kty":"oct","alg":"HS256","kid":"k1","k":"{secret}"}}]}}"#);
/// let (fetched, _) = parse_jwks(body.as_bytes()).unwrap();
/// let mut dynamic = Dynamic { remote_keys: Some(&fetched), ..Dynamic::default() };
/// assert!(gate.check_with(&request, 1_700_000_000, &mut dynamic).allow);
/// ```
#[derive(Default)]
pub struct Dynamic<'a> {
    /// Keys from the last good JWKS fetch; `None` before the first.
    pub remote_keys: Option<&'a KeySet>,
    /// Devices from the last good denylist fetch (the inline list is in the config).
    pub denylist: Option<&'a Denylist>,
    /// Where rate-limit buckets live; without one, rate limits are not applied.
    pub limiter: Option<&'a mut dyn RateLimiter>,
    /// With `host_verification`: what the gateway's verifier recorded for this request, `None`
    /// when it recorded nothing (the request is then refused).
    pub host_verified: Option<HostVerified>,
}

/// The gateway verifier's record that it verified this request's token: the verified
/// payload's `exp` as it stored it, when it had one. The gate refuses a token whose own `exp`
/// differs, so a record left by another token never vouches for this one.
///
/// ```
/// use attestgate_policy::remote::{Dynamic, HostVerified};
/// use attestgate_policy::{Gate, Reason, Request};
/// use attestgate_testkit::SigningKey;
/// let gate = Gate::from_json(r#"{ "host_verification": {
///     "filter": "envoy.filters.http.jwt_authn", "payload_in_metadata": "approov"
/// } }"#).unwrap();
/// // The gateway checked the signature; this key only builds a token for the example.
/// let token = SigningKey::hs256_from_base64_secret("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=").unwrap()
///     .sign(serde_json::json!({ "exp": 1_700_000_300 }).as_object().unwrap()).unwrap();
/// let request = Request::new("GET", "/").with_header("approov-token", token);
/// let mut check = |record: Option<HostVerified>| {
///     gate.check_with(&request, 1_700_000_000, &mut Dynamic { host_verified: record, ..Dynamic::default() })
/// };
/// assert!(check(Some(HostVerified { exp: Some(1_700_000_300.0) })).allow);
/// assert!(!check(Some(HostVerified { exp: Some(1_700_000_999.0) })).allow); // another token's record
/// assert!(!check(None).allow);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostVerified {
    /// The verified payload's `exp`.
    pub exp: Option<f64>,
}

impl std::fmt::Debug for Dynamic<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dynamic")
            .field("remote_keys", &self.remote_keys.map(|k| k.keys().len()))
            .field("denylist", &self.denylist.map(Denylist::len))
            .field("limiter", &self.limiter.is_some())
            .field("host_verified", &self.host_verified)
            .finish()
    }
}

/// A set of denied device ids.
///
/// ```
/// use attestgate_policy::remote::Denylist;
/// let list = Denylist::parse(br#"{"devices": ["dev-1", "dev-2"]}"#).unwrap();
/// assert!(list.contains("dev-2") && !list.contains("dev-3"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Denylist {
    devices: HashSet<String>,
}

impl Denylist {
    /// A list of these ids.
    ///
    /// ```
    /// use attestgate_policy::remote::Denylist;
    /// let list = Denylist::new(["dev-1", "dev-2", "dev-1"]);
    /// assert_eq!(list.len(), 2);
    /// assert_eq!(list, Denylist::parse(br#"{"devices": ["dev-2", "dev-1"]}"#).unwrap());
    /// ```
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(devices: I) -> Denylist {
        Denylist {
            devices: devices.into_iter().map(Into::into).collect(),
        }
    }

    /// Parses `{"devices": ["id", ...]}`; anything else is an error, so a garbled response
    /// never empties the list.
    ///
    /// ```
    /// use attestgate_policy::remote::Denylist;
    /// assert!(Denylist::parse(br#"{"devices": ["dev-1"]}"#).unwrap().contains("dev-1"));
    /// assert!(Denylist::parse(br#"{"devices": [1]}"#).is_err());
    /// assert!(Denylist::parse(b"<html>502</html>").is_err());
    /// ```
    pub fn parse(body: &[u8]) -> Result<Denylist, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|err| format!("denylist is not JSON: {err}"))?;
        let devices = value
            .get("devices")
            .and_then(Value::as_array)
            .ok_or("denylist has no `devices` array")?;
        let mut ids = HashSet::with_capacity(devices.len());
        for device in devices {
            let id = device
                .as_str()
                .ok_or("denylist `devices` must hold strings")?;
            ids.insert(id.to_owned());
        }
        Ok(Denylist { devices: ids })
    }

    /// Whether `device` is listed.
    ///
    /// ```
    /// use attestgate_policy::remote::Denylist;
    /// let list = Denylist::new(["dev-1"]);
    /// assert!(list.contains("dev-1") && !list.contains("DEV-1"));
    /// ```
    pub fn contains(&self, device: &str) -> bool {
        self.devices.contains(device)
    }

    /// How many devices are listed.
    ///
    /// ```
    /// use attestgate_policy::remote::Denylist;
    /// assert_eq!(Denylist::new(["a", "b"]).len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Whether the list is empty.
    ///
    /// ```
    /// use attestgate_policy::remote::Denylist;
    /// assert!(Denylist::parse(br#"{"devices": []}"#).unwrap().is_empty());
    /// assert!(!Denylist::new(["a"]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }
}

/// Parses a fetched JWKS. Keys this gate cannot use (another curve, a private member) are
/// skipped and named in the second value, so one odd key does not take the others down; a
/// document with no usable key at all is an error and the host keeps its last good keys.
///
/// ```
/// use attestgate_policy::remote::parse_jwks;
/// let body = br#"{"keys": [
///     {"kty": "oct", "alg": "HS256", "kid": "good", "k": "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE"},
///     {"kty": "oct", "alg": "HS256", "kid": "short", "k": "c2hvcnQ"}
/// ]}"#;
/// let (keys, skipped) = parse_jwks(body).unwrap();
/// assert_eq!(keys.keys().len(), 1);
/// assert_eq!(skipped.len(), 1);
/// assert!(parse_jwks(br#"{"keys": []}"#).is_err());
/// ```
pub fn parse_jwks(body: &[u8]) -> Result<(KeySet, Vec<String>), String> {
    KeySet::from_jwks(body)
}

/// Which fetched document: a JWKS (`keys.remote`) or a denylist (`denylist.remote`).
///
/// ```
/// use attestgate_policy::remote::DocumentKind;
/// assert_eq!("jwks".parse::<DocumentKind>(), Ok(DocumentKind::Jwks));
/// assert_eq!(DocumentKind::Denylist.field(), "denylist.remote");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DocumentKind {
    /// A JWKS, `keys.remote`.
    Jwks,
    /// A device denylist, `denylist.remote`.
    Denylist,
}

impl DocumentKind {
    /// Both kinds, in a stable order.
    pub const ALL: [DocumentKind; 2] = [DocumentKind::Jwks, DocumentKind::Denylist];

    /// `jwks` or `denylist`.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::remote::DocumentKind::Jwks.as_str(), "jwks");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Jwks => "jwks",
            DocumentKind::Denylist => "denylist",
        }
    }

    /// The config field that says where it is fetched from.
    ///
    /// ```
    /// assert_eq!(attestgate_policy::remote::DocumentKind::Jwks.field(), "keys.remote");
    /// ```
    pub fn field(self) -> &'static str {
        match self {
            DocumentKind::Jwks => "keys.remote",
            DocumentKind::Denylist => "denylist.remote",
        }
    }

    /// Where `config` fetches this document from, when it does.
    ///
    /// ```
    /// use attestgate_policy::remote::DocumentKind;
    /// let gate = attestgate_policy::Gate::from_json(r#"{ "keys": { "remote": {
    ///     "upstream": "jwks", "authority": "keys.example.com", "path": "/jwks.json" } } }"#).unwrap();
    /// assert_eq!(DocumentKind::Jwks.source(gate.config()).unwrap().path, "/jwks.json");
    /// assert!(DocumentKind::Denylist.source(gate.config()).is_none());
    /// ```
    pub fn source(self, config: &Config) -> Option<&RemoteSource> {
        match self {
            DocumentKind::Jwks => config.keys.remote.as_ref(),
            DocumentKind::Denylist => config.denylist.as_ref().and_then(|d| d.remote.as_ref()),
        }
    }
}

impl std::str::FromStr for DocumentKind {
    type Err = DocumentError;
    fn from_str(text: &str) -> Result<DocumentKind, DocumentError> {
        DocumentKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| DocumentError::UnknownKind(text.to_owned()))
    }
}

/// Why a fetched document was refused; the holder keeps its last good one.
///
/// ```
/// use attestgate_policy::remote::{DocumentError, DocumentKind, Fetched};
/// let gate = attestgate_policy::Gate::from_json(r#"{ "keys": { "approov_secret":
///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" } }"#).unwrap();
/// let error = Fetched::default().accept(gate.config(), DocumentKind::Jwks, b"{}").unwrap_err();
/// assert_eq!(error, DocumentError::NotFetched(DocumentKind::Jwks));
/// assert_eq!(error.to_string(), "the config has no keys.remote");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// Neither `jwks` nor `denylist`.
    #[error("unknown document kind `{0}` (expected jwks or denylist)")]
    UnknownKind(String),
    /// The config does not fetch this kind of document.
    #[error("the config has no {}", .0.field())]
    NotFetched(DocumentKind),
    /// Longer than the source's `max_bytes`.
    #[error("a body of {length} bytes, over max_bytes ({max_bytes})")]
    TooLarge {
        /// The body's length.
        length: usize,
        /// The source's `max_bytes`.
        max_bytes: usize,
    },
    /// Not a JWKS with a usable key, or not a denylist.
    #[error("{0}")]
    Invalid(String),
}

/// What [`Fetched::accept`] took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The body differs from the last accepted one: a host with a decision cache empties it,
    /// since nothing decided under the old document may be served under the new one.
    pub changed: bool,
    /// Keys of a JWKS this gate cannot use, skipped (with why), for the host's log.
    pub skipped: Vec<String>,
}

/// The fetched documents a host holds for one gate: the last good JWKS and denylist, each
/// with the body it was parsed from. The host fetches (on its own timer, its own client) and
/// hands every good response's body to [`Fetched::accept`]; each decision then uses
/// [`Fetched::dynamic`].
///
/// ```
/// use attestgate_policy::remote::{DocumentKind, Fetched};
/// use attestgate_policy::{Gate, Reason, Request};
/// use attestgate_testkit::SigningKey;
/// let secret = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE";
/// let gate = Gate::from_json(r#"{ "keys": { "remote": {
///     "upstream": "jwks", "authority": "keys.example.com", "path": "/jwks.json" } } }"#).unwrap();
/// let token = SigningKey::hs256_from_base64_secret(secret).unwrap().with_kid(Some("k1".to_owned()))
///     .sign(serde_json::json!({ "exp": 1_700_000_300 }).as_object().unwrap()).unwrap();
/// let request = Request::new("GET", "/").with_header("approov-token", token);
///
/// let mut fetched = Fetched::default();
/// let decide = |fetched: &Fetched| gate.check_with(&request, 1_700_000_000, &mut fetched.dynamic());
/// assert_eq!(decide(&fetched).reason, Reason::KeysUnavailable);
/// let jwks = format!(r#"{{"keys":[{{"kty":"oct","alg":"HS256","kid":"k1","k":"{secret}"}}]}}"#);
/// assert!(fetched.accept(gate.config(), DocumentKind::Jwks, jwks.as_bytes()).unwrap().changed);
/// assert!(decide(&fetched).allow);
/// // A bad answer is refused and the last good keys stay.
/// assert!(fetched.accept(gate.config(), DocumentKind::Jwks, b"<html>502</html>").is_err());
/// assert!(decide(&fetched).allow);
/// ```
#[derive(Debug, Default)]
pub struct Fetched {
    keys: Option<Held<KeySet>>,
    denylist: Option<Held<Denylist>>,
}

/// A document as last accepted, with the body it was parsed from (to tell a changed one).
#[derive(Debug)]
struct Held<T> {
    document: T,
    body: Vec<u8>,
}

/// Puts `document` in `slot`; whether its body differs from the one held before.
fn hold<T>(slot: &mut Option<Held<T>>, document: T, body: &[u8]) -> bool {
    let changed = slot.as_ref().is_none_or(|held| held.body != body);
    *slot = Some(Held {
        document,
        body: body.to_vec(),
    });
    changed
}

impl Fetched {
    /// Takes the body of a good response (status 200) to the fetch `config` describes for
    /// `kind`. A JWKS with at least one usable key, or a denylist `{"devices": [...]}`,
    /// replaces what was held; anything else (garbage, no usable key, more than the source's
    /// `max_bytes`, a kind the config does not fetch) is refused and the last good document
    /// stays.
    ///
    /// ```
    /// use attestgate_policy::remote::{DocumentError, DocumentKind, Fetched};
    /// let gate = attestgate_policy::Gate::from_json(r#"{ "keys": { "approov_secret":
    ///     "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=" }, "denylist": { "remote": {
    ///     "upstream": "lists", "authority": "lists.example.com", "path": "/denied",
    ///     "max_bytes": 64 } } }"#).unwrap();
    /// let mut fetched = Fetched::default();
    /// let list = br#"{"devices": ["dev-1"]}"#;
    /// assert!(fetched.accept(gate.config(), DocumentKind::Denylist, list).unwrap().changed);
    /// assert!(!fetched.accept(gate.config(), DocumentKind::Denylist, list).unwrap().changed);
    /// let long = format!(r#"{{"devices": ["{}"]}}"#, "d".repeat(64));
    /// assert!(matches!(fetched.accept(gate.config(), DocumentKind::Denylist, long.as_bytes()),
    ///     Err(DocumentError::TooLarge { max_bytes: 64, .. })));
    /// ```
    pub fn accept(
        &mut self,
        config: &Config,
        kind: DocumentKind,
        body: &[u8],
    ) -> Result<Accepted, DocumentError> {
        let source = kind.source(config).ok_or(DocumentError::NotFetched(kind))?;
        if body.len() > source.max_bytes {
            return Err(DocumentError::TooLarge {
                length: body.len(),
                max_bytes: source.max_bytes,
            });
        }
        match kind {
            DocumentKind::Jwks => {
                let (keys, skipped) = parse_jwks(body).map_err(DocumentError::Invalid)?;
                let changed = hold(&mut self.keys, keys, body);
                Ok(Accepted { changed, skipped })
            }
            DocumentKind::Denylist => {
                let list = Denylist::parse(body).map_err(DocumentError::Invalid)?;
                let changed = hold(&mut self.denylist, list, body);
                Ok(Accepted {
                    changed,
                    skipped: Vec::new(),
                })
            }
        }
    }

    /// Whether a good document of `kind` was ever accepted.
    ///
    /// ```
    /// use attestgate_policy::remote::{DocumentKind, Fetched};
    /// assert!(!Fetched::default().holds(DocumentKind::Jwks));
    /// ```
    pub fn holds(&self, kind: DocumentKind) -> bool {
        match kind {
            DocumentKind::Jwks => self.keys.is_some(),
            DocumentKind::Denylist => self.denylist.is_some(),
        }
    }

    /// What a decision sees of them: the last good keys and denylist, no rate limiter and no
    /// verifier record (a host adds its own).
    pub fn dynamic(&self) -> Dynamic<'_> {
        Dynamic {
            remote_keys: self.keys.as_ref().map(|held| &held.document),
            denylist: self.denylist.as_ref().map(|held| &held.document),
            ..Dynamic::default()
        }
    }
}

/// Token-bucket state: milli-tokens left and when they were counted (unix seconds).
///
/// Serialized as 16 bytes so a host can keep it in shared memory.
///
/// ```
/// use attestgate_policy::{remote::Bucket, RateLimit};
/// let limit = RateLimit { requests: 10, per_seconds: 10 };
/// let (bucket, taken) = Bucket::take(None, &limit, 1_000);
/// assert_eq!((bucket.milli_tokens, bucket.updated, taken), (9_000, 1_000, Ok(())));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Thousandths of a request still allowed.
    pub milli_tokens: u64,
    /// When `milli_tokens` was computed.
    pub updated: i64,
}

impl Bucket {
    /// Takes one request from the bucket (a full one if `state` is `None`) at `now`.
    /// Returns the new state and `Ok(())`, or `Err(seconds)` to wait before the next request.
    ///
    /// ```
    /// use attestgate_policy::{remote::Bucket, RateLimit};
    /// let limit = RateLimit { requests: 2, per_seconds: 60 };
    /// let (state, first) = Bucket::take(None, &limit, 1000);
    /// let (state, second) = Bucket::take(Some(state), &limit, 1000);
    /// let (_, third) = Bucket::take(Some(state), &limit, 1000);
    /// assert_eq!((first, second, third), (Ok(()), Ok(()), Err(30)));
    /// ```
    pub fn take(state: Option<Bucket>, limit: &RateLimit, now: i64) -> (Bucket, Result<(), u64>) {
        let capacity = u64::from(limit.requests).saturating_mul(1000);
        let per_seconds = u64::from(limit.per_seconds.max(1));
        let mut bucket = state.unwrap_or(Bucket {
            milli_tokens: capacity,
            updated: now,
        });
        // Refill for the time since the last count; a clock that went back refills nothing.
        let elapsed = u64::try_from(now.saturating_sub(bucket.updated)).unwrap_or(0);
        let refill = elapsed
            .saturating_mul(capacity)
            .checked_div(per_seconds)
            .unwrap_or(0);
        bucket.milli_tokens = bucket.milli_tokens.saturating_add(refill).min(capacity);
        bucket.updated = bucket.updated.max(now);
        if bucket.milli_tokens >= 1000 {
            bucket.milli_tokens -= 1000;
            return (bucket, Ok(()));
        }
        // Seconds until a whole token is back, rounded up, at least one.
        let missing = 1000 - bucket.milli_tokens;
        let wait = missing
            .saturating_mul(per_seconds)
            .div_ceil(capacity.max(1))
            .max(1);
        (bucket, Err(wait))
    }

    /// The 16-byte form.
    ///
    /// ```
    /// use attestgate_policy::remote::Bucket;
    /// let bytes = Bucket { milli_tokens: 1, updated: 2 }.to_bytes();
    /// assert_eq!(bytes, [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    /// ```
    pub fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        let (tokens, updated) = bytes.split_at_mut(8);
        tokens.copy_from_slice(&self.milli_tokens.to_le_bytes());
        updated.copy_from_slice(&self.updated.to_le_bytes());
        bytes
    }

    /// Reads the 16-byte form; `None` for anything else.
    ///
    /// ```
    /// use attestgate_policy::remote::Bucket;
    /// let bucket = Bucket { milli_tokens: 2_500, updated: 1_700_000_000 };
    /// assert_eq!(Bucket::from_bytes(&bucket.to_bytes()), Some(bucket));
    /// assert_eq!(Bucket::from_bytes(&[0; 15]), None);
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Option<Bucket> {
        let tokens: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let updated: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
        (bytes.len() == 16).then(|| Bucket {
            milli_tokens: u64::from_le_bytes(tokens),
            updated: i64::from_le_bytes(updated),
        })
    }
}

/// Where a host keeps its buckets.
///
/// ```
/// use std::collections::HashMap;
/// use attestgate_policy::remote::{Bucket, RateLimiter};
/// use attestgate_policy::RateLimit;
///
/// /// Buckets stored as their 16-byte form, as in a host's shared memory.
/// #[derive(Default)]
/// struct Shared(HashMap<String, [u8; 16]>);
///
/// impl RateLimiter for Shared {
///     fn take(&mut self, key: &str, limit: &RateLimit, now: i64) -> Result<(), u64> {
///         let state = self.0.get(key).and_then(|bytes| Bucket::from_bytes(bytes));
///         let (bucket, result) = Bucket::take(state, limit, now);
///         self.0.insert(key.to_owned(), bucket.to_bytes());
///         result
///     }
/// }
///
/// let limit = RateLimit { requests: 1, per_seconds: 60 };
/// let mut shared = Shared::default();
/// assert_eq!(shared.take("device-1", &limit, 0), Ok(()));
/// assert_eq!(shared.take("device-1", &limit, 0), Err(60));
/// ```
pub trait RateLimiter {
    /// Takes one request from `key`'s bucket; `Err(seconds)` when over the limit.
    ///
    /// ```
    /// use attestgate_policy::remote::{MemoryLimiter, RateLimiter};
    /// use attestgate_policy::RateLimit;
    /// let mut limiter = MemoryLimiter::default();
    /// let limit = RateLimit { requests: 2, per_seconds: 10 };
    /// assert_eq!(limiter.take("d", &limit, 0), Ok(()));
    /// assert_eq!(limiter.take("d", &limit, 0), Ok(()));
    /// assert_eq!(limiter.take("d", &limit, 0), Err(5));
    /// assert_eq!(limiter.take("d", &limit, 5), Ok(()));
    /// ```
    fn take(&mut self, key: &str, limit: &RateLimit, now: i64) -> Result<(), u64>;
}

/// Buckets in a map, for one process (the CLI, tests, a single-threaded host).
///
/// ```
/// use attestgate_policy::remote::{MemoryLimiter, RateLimiter};
/// use attestgate_policy::RateLimit;
/// let mut limiter = MemoryLimiter::default();
/// let limit = RateLimit { requests: 1, per_seconds: 30 };
/// assert_eq!(limiter.take("device-1", &limit, 100), Ok(()));
/// assert_eq!(limiter.take("device-1", &limit, 100), Err(30));
/// assert_eq!(limiter.take("device-2", &limit, 100), Ok(())); // each key has its own bucket
/// ```
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter for MemoryLimiter {
    fn take(&mut self, key: &str, limit: &RateLimit, now: i64) -> Result<(), u64> {
        let (bucket, result) = Bucket::take(self.buckets.get(key).copied(), limit, now);
        self.buckets.insert(key.to_owned(), bucket);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        requests: 3,
        per_seconds: 30,
    };

    #[test]
    fn a_bucket_empties_and_refills_with_time() {
        let mut limiter = MemoryLimiter::default();
        for _ in 0..3 {
            assert_eq!(limiter.take("d", &LIMIT, 100), Ok(()));
        }
        assert_eq!(limiter.take("d", &LIMIT, 100), Err(10));
        assert_eq!(limiter.take("d", &LIMIT, 105), Err(5));
        assert_eq!(limiter.take("d", &LIMIT, 110), Ok(()));
        assert_eq!(limiter.take("d", &LIMIT, 110), Err(10));
        // Another device has its own bucket.
        assert_eq!(limiter.take("e", &LIMIT, 110), Ok(()));
        // A long wait refills to the bucket size, no more.
        for _ in 0..3 {
            assert_eq!(limiter.take("d", &LIMIT, 10_000), Ok(()));
        }
        assert!(limiter.take("d", &LIMIT, 10_000).is_err());
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let (state, _) = Bucket::take(None, &LIMIT, 1000);
        let (state, _) = Bucket::take(Some(state), &LIMIT, 1000);
        let (state, _) = Bucket::take(Some(state), &LIMIT, 1000);
        let (_, result) = Bucket::take(Some(state), &LIMIT, 0);
        assert!(result.is_err());
    }

    #[test]
    fn bucket_bytes_round_trip() {
        let bucket = Bucket {
            milli_tokens: 2500,
            updated: -7,
        };
        assert_eq!(Bucket::from_bytes(&bucket.to_bytes()), Some(bucket));
        assert_eq!(Bucket::from_bytes(&[0; 15]), None);
        assert_eq!(Bucket::from_bytes(&[0; 17]), None);
    }

    #[test]
    fn a_zero_limit_refuses_and_says_when_to_retry() {
        let none = RateLimit {
            requests: 0,
            per_seconds: 60,
        };
        let (_, result) = Bucket::take(None, &none, 0);
        assert!(matches!(result, Err(wait) if wait >= 1));
    }

    #[test]
    fn denylists_parse_strictly() {
        assert!(Denylist::parse(br#"{"devices":[]}"#).unwrap().is_empty());
        assert_eq!(
            Denylist::parse(br#"{"devices":["a","a","b"]}"#)
                .unwrap()
                .len(),
            2
        );
        for bad in [&b"[]"[..], b"{}", br#"{"devices":[1]}"#, b"not json", b""] {
            assert!(
                Denylist::parse(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
