//! Remote JWKS and denylist, fetched on the root context's tick and shared across workers;
//! rate-limit buckets in shared data.
//!
//! One fetch serves every worker: the fetched body is stored in shared data and each worker
//! re-parses it when its version (the CAS) changes. Who fetches is decided with a CAS on a
//! "next fetch at" entry, so workers do not all fetch at once. A failed, oversized or
//! unparsable response keeps the last good document and is retried sooner. An unknown `kid`
//! may pull the next fetch forward, at most once per refresh interval, so forged kids cannot
//! cause a refetch storm.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use attestgate_policy::remote::{parse_jwks, Bucket, Denylist, RateLimiter};
use attestgate_policy::{KeySet, RateLimit, RemoteSource};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{LogLevel, Status};
use sha2::{Digest, Sha256};

use crate::log;

/// A failed fetch is retried after this long (or the refresh interval, if shorter).
const RETRY_SECONDS: i64 = 30;

/// What a source holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JWKS.
    Keys,
    /// A device denylist.
    Denylist,
}

impl Kind {
    /// `jwks` or `denylist`, for shared-data keys, counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Keys => "jwks",
            Kind::Denylist => "denylist",
        }
    }
}

/// A parsed document.
#[derive(Debug, Clone)]
pub enum Document {
    /// Keys from a JWKS.
    Keys(Rc<KeySet>),
    /// A denylist.
    Denylist(Rc<Denylist>),
}

fn parse(kind: Kind, body: &[u8]) -> Result<Document, String> {
    match kind {
        Kind::Keys => parse_jwks(body).map(|(keys, skipped)| {
            for message in skipped {
                log(LogLevel::Warn, &format!("jwks: skipped a key: {message}"));
            }
            Document::Keys(Rc::new(keys))
        }),
        Kind::Denylist => Denylist::parse(body).map(|list| Document::Denylist(Rc::new(list))),
    }
}

/// One fetched document, as this worker sees it.
#[derive(Debug)]
pub struct Source {
    kind: Kind,
    config: RemoteSource,
    body_key: String,
    next_key: String,
    early_key: String,
    seen_cas: Option<u32>,
    current: Option<Document>,
    in_flight: Option<u32>,
    /// The fetch on its way is a [`Source::first_fetch`].
    first_in_flight: bool,
}

/// What a fetch came to, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Stored for every worker.
    Fetched,
    /// Kept the last good document.
    Failed,
}

impl Source {
    /// A source for `config`; shared-data entries are named after its upstream and path so
    /// two filters with different sources never mix.
    pub fn new(kind: Kind, config: &RemoteSource) -> Source {
        let digest = Sha256::digest(
            format!("{}\n{}\n{}", config.upstream, config.authority, config.path).as_bytes(),
        );
        let id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let base = format!("attestgate.{}.{id}", kind.as_str());
        Source {
            kind,
            config: config.clone(),
            body_key: format!("{base}.body"),
            next_key: format!("{base}.next"),
            early_key: format!("{base}.early"),
            seen_cas: None,
            current: None,
            in_flight: None,
            first_in_flight: false,
        }
    }

    /// The kind of document.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The last good document, if one was ever fetched.
    pub fn current(&self) -> Option<&Document> {
        self.current.as_ref()
    }

    /// Picks up a document another worker (or this one) stored; says whether it changed.
    pub fn sync(&mut self) -> bool {
        let Ok((Some(body), cas)) = hostcalls::get_shared_data(&self.body_key) else {
            return false;
        };
        if cas.is_some() && cas == self.seen_cas {
            return false;
        }
        self.seen_cas = cas;
        match parse(self.kind, &body) {
            Ok(document) => {
                self.current = Some(document);
                true
            }
            // Only good documents are stored; this one was, so this is a bug, not a fetch.
            Err(message) => {
                log(
                    LogLevel::Error,
                    &format!(
                        "{}: stored document unreadable: {message}",
                        self.kind.as_str()
                    ),
                );
                false
            }
        }
    }

    /// Starts a fetch if one is due and no other worker has claimed it.
    pub fn maybe_fetch(&mut self, now: i64) -> Option<u32> {
        if self.in_flight.is_some() {
            return None;
        }
        let (next_at, cas) = read_i64(&self.next_key);
        if now < next_at.unwrap_or(i64::MIN) {
            return None;
        }
        // Claim the fetch: if another worker moved `next` since we read it, it fetches.
        if hostcalls::set_shared_data(&self.next_key, Some(&self.claim(now)), cas).is_err() {
            return None;
        }
        self.dispatch(now)
    }

    /// A source with no document fetches now, whoever holds the claim: its worker holds
    /// requests until this lands (see [`crate::held`]), and another worker's fetch would reach
    /// it only at its next tick. Later fetches are claimed ([`Source::maybe_fetch`]).
    pub fn first_fetch(&mut self, now: i64) -> Option<u32> {
        if self.current.is_some() || self.in_flight.is_some() {
            return None;
        }
        let _ = hostcalls::set_shared_data(&self.next_key, Some(&self.claim(now)), None);
        let token = self.dispatch(now);
        self.first_in_flight = token.is_some();
        token
    }

    /// Whether this worker's fetch is on its way.
    pub fn fetching(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The "next fetch at" a fetching worker writes: no other starts one before it times out.
    fn claim(&self, now: i64) -> [u8; 8] {
        let timeout = i64::from(self.config.timeout_ms).div_euclid(1000) + 1;
        (now + timeout).to_le_bytes()
    }

    fn dispatch(&mut self, now: i64) -> Option<u32> {
        let headers = vec![
            (":method", "GET"),
            (":path", self.config.path.as_str()),
            (":authority", self.config.authority.as_str()),
            ("accept", "application/json"),
        ];
        match hostcalls::dispatch_http_call(
            &self.config.upstream,
            headers,
            None,
            vec![],
            Duration::from_millis(u64::from(self.config.timeout_ms)),
        ) {
            Ok(token) => {
                self.in_flight = Some(token);
                Some(token)
            }
            Err(status) => {
                log(
                    LogLevel::Warn,
                    &format!(
                        "{}: cannot fetch from `{}`: {status:?}",
                        self.kind.as_str(),
                        self.config.upstream
                    ),
                );
                self.schedule(now + self.retry_seconds());
                None
            }
        }
    }

    fn retry_seconds(&self) -> i64 {
        i64::from(self.config.refresh_seconds).min(RETRY_SECONDS)
    }

    fn schedule(&self, at: i64) {
        let _ = hostcalls::set_shared_data(&self.next_key, Some(&at.to_le_bytes()), None);
    }

    /// Whether `token` is this source's fetch.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    /// Handles the response to this source's fetch.
    pub fn on_response(&mut self, body_size: usize, now: i64) -> FetchOutcome {
        self.in_flight = None;
        let first = std::mem::take(&mut self.first_in_flight);
        let outcome = self.read_response(body_size);
        match outcome {
            Ok((body, document)) => {
                if let Err(status) = hostcalls::set_shared_data(&self.body_key, Some(&body), None) {
                    log(
                        LogLevel::Error,
                        &format!("{}: cannot share: {status:?}", self.kind.as_str()),
                    );
                }
                self.current = Some(document);
                self.schedule(now + i64::from(self.config.refresh_seconds));
                log(
                    LogLevel::Info,
                    &format!("{}: fetched {} bytes", self.kind.as_str(), body.len()),
                );
                FetchOutcome::Fetched
            }
            Err(problem) => {
                log(
                    LogLevel::Warn,
                    &format!(
                        "{}: fetch failed, keeping the last good one: {problem}",
                        self.kind.as_str()
                    ),
                );
                // A first fetch can fail where a claimed one would not (Envoy's main-thread VM
                // fetches before the clusters are up): it leaves the schedule to the claimed
                // fetches, so the next comes once its claim lapses, from whichever worker.
                if !first {
                    self.schedule(now + self.retry_seconds());
                }
                FetchOutcome::Failed
            }
        }
    }

    fn read_response(&self, body_size: usize) -> Result<(Vec<u8>, Document), String> {
        let status = hostcalls::get_map_value(
            proxy_wasm::types::MapType::HttpCallResponseHeaders,
            ":status",
        )
        .ok()
        .flatten()
        .ok_or("no response (timeout or connection failure)")?;
        if status != "200" {
            return Err(format!("status {status}"));
        }
        if body_size > self.config.max_bytes {
            return Err(format!(
                "body of {body_size} bytes is over max_bytes ({})",
                self.config.max_bytes
            ));
        }
        let body = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::HttpCallResponseBody,
            0,
            body_size,
        )
        .map_err(|status| format!("reading the body: {status:?}"))?
        .unwrap_or_default();
        let document = parse(self.kind, &body)?;
        Ok((body, document))
    }

    /// An unknown `kid` was seen: fetch early, unless an early fetch already happened within
    /// the refresh interval.
    pub fn request_early_fetch(&self, now: i64) {
        let (last, cas) = read_i64(&self.early_key);
        if last.is_some_and(|at| now - at < i64::from(self.config.refresh_seconds)) {
            return;
        }
        if hostcalls::set_shared_data(&self.early_key, Some(&now.to_le_bytes()), cas).is_ok() {
            self.schedule(now);
        }
    }
}

fn read_i64(key: &str) -> (Option<i64>, Option<u32>) {
    match hostcalls::get_shared_data(key) {
        Ok((Some(bytes), cas)) => {
            let value = bytes
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(i64::from_le_bytes);
            (value, cas)
        }
        Ok((None, cas)) => (None, cas),
        Err(_) => (None, None),
    }
}

/// Rate-limit buckets in shared data, so every worker counts against the same limit.
///
/// Devices are hashed into a fixed number of slots: the gateway never frees shared data, so
/// one entry per device ever seen would grow without bound. Two devices in one slot share a
/// bucket.
#[derive(Debug, Default)]
pub struct SharedLimiter {
    /// Buckets written this VM, by slot key; for tests and diagnosis only.
    pub writes: HashMap<String, u32>,
}

/// Slots for rate-limit buckets: at most this many shared-data entries (about 4 MB).
const SLOTS: u64 = 1 << 16;

impl RateLimiter for SharedLimiter {
    fn take(&mut self, key: &str, limit: &RateLimit, now: i64) -> Result<(), u64> {
        let digest = Sha256::digest(key.as_bytes());
        let mut word = [0u8; 8];
        for (slot, byte) in word.iter_mut().zip(digest.iter()) {
            *slot = *byte;
        }
        let slot = format!("attestgate.rl.{}", u64::from_le_bytes(word) % SLOTS);
        // Another worker may update the bucket between our read and write: retry on a CAS
        // mismatch, and refuse if contention persists (that is a flood in itself).
        for _ in 0..4 {
            let (state, cas) = match hostcalls::get_shared_data(&slot) {
                Ok((bytes, cas)) => (bytes.as_deref().and_then(Bucket::from_bytes), cas),
                Err(_) => (None, None),
            };
            let (bucket, result) = Bucket::take(state, limit, now);
            match hostcalls::set_shared_data(&slot, Some(&bucket.to_bytes()), cas) {
                Ok(()) => {
                    *self.writes.entry(slot).or_default() += 1;
                    return result;
                }
                Err(Status::CasMismatch) => continue,
                Err(_) => return Err(1),
            }
        }
        Err(1)
    }
}
