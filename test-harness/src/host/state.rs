//! Everything the host keeps per VM, in `Store<HostState>`: no globals, so tests run in parallel.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use wasmtime::StoreLimits;

use super::{LocalResponse, LogLine, PendingHttpCall, Profile};

/// Key/value data and queues shared by every VM given the same handle, like Envoy's shared
/// data across worker threads. Clone it to hand the same store to another VM.
#[derive(Debug, Clone, Default)]
pub struct SharedData {
    inner: Arc<Mutex<SharedInner>>,
}

#[derive(Debug, Default)]
pub(crate) struct SharedInner {
    /// key → (value, cas)
    pub(crate) data: HashMap<String, (Vec<u8>, u32)>,
    pub(crate) next_cas: u32,
    /// (vm id, queue name) → queue id
    pub(crate) queue_names: HashMap<(String, String), u32>,
    pub(crate) queues: BTreeMap<u32, VecDeque<Vec<u8>>>,
}

impl SharedData {
    /// A new, empty store.
    pub fn new() -> SharedData {
        SharedData::default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedInner> {
        // A test that panicked while holding the lock cannot leave the map half-written:
        // every update is a single insert. Keep going with the data.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().data.get(key).map(|(value, _)| value.clone())
    }

    /// Stores `value` under `key`, as another worker would.
    pub fn set(&self, key: &str, value: &[u8]) {
        let mut inner = self.lock();
        inner.next_cas = inner.next_cas.wrapping_add(1).max(1);
        let cas = inner.next_cas;
        inner.data.insert(key.to_owned(), (value.to_vec(), cas));
    }
}

/// One HTTP stream as the host sees it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stream {
    pub(crate) request_headers: Vec<(String, String)>,
    /// Kong: what nginx's proxy module forwards, which the filter's header calls change
    /// differently from the map the filter sees (see `abi::ngx_request_header`). `None` on
    /// Envoy, where the map the filter sees is what goes upstream.
    pub(crate) upstream_headers: Option<Vec<(String, String)>>,
    pub(crate) request_body: Vec<u8>,
    pub(crate) request_trailers: Vec<(String, String)>,
    pub(crate) response_headers: Vec<(String, String)>,
    pub(crate) response_body: Vec<u8>,
    pub(crate) response_trailers: Vec<(String, String)>,
    pub(crate) properties: BTreeMap<Vec<String>, Vec<u8>>,
    /// Envoy: what the filter set with `set_property`, under the filter-state key Envoy files
    /// it as (`wasm.` + the path as given).
    pub(crate) filter_state: BTreeMap<String, Vec<u8>>,
    pub(crate) local_response: Option<LocalResponse>,
    pub(crate) continued: u32,
    pub(crate) closed: bool,
}

/// A metric the guest defined.
#[derive(Debug, Clone)]
pub(crate) struct Metric {
    pub(crate) name: String,
    pub(crate) kind: i32,
    pub(crate) value: u64,
}

/// The answer to an http call being delivered, readable by the guest during its callback.
#[derive(Debug, Default, Clone)]
pub(crate) struct CallResponse {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) trailers: Vec<(String, String)>,
}

/// All mutable host state of one VM.
#[derive(Debug)]
pub struct HostState {
    pub(crate) profile: Profile,
    pub(crate) verify_signature: super::VerifySignature,
    /// `verify_signature` calls answered, for tests that the host path ran.
    pub(crate) foreign_calls: u64,
    /// Calls from the guest into any host function (proxy-wasm or WASI), for `make bench`.
    pub(crate) host_calls: u64,
    pub(crate) limits: StoreLimits,
    pub(crate) vm_config: Vec<u8>,
    pub(crate) plugin_config: Vec<u8>,
    pub(crate) clock: SystemTime,
    pub(crate) monotonic: Duration,
    pub(crate) rng: StdRng,
    pub(crate) root_id: u32,
    /// The context the guest is acting for (set by the host before each callback, or by the
    /// guest with `proxy_set_effective_context`).
    pub(crate) current: u32,
    pub(crate) streams: BTreeMap<u32, Stream>,
    pub(crate) root_properties: BTreeMap<Vec<String>, Vec<u8>>,
    pub(crate) tick_period: Option<Duration>,
    pub(crate) next_tick: Option<Duration>,
    pub(crate) metrics: Vec<Metric>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) shared: SharedData,
    pub(crate) clusters: Vec<String>,
    pub(crate) next_token: u32,
    pub(crate) pending_calls: BTreeMap<u32, PendingHttpCall>,
    pub(crate) call_response: Option<CallResponse>,
    pub(crate) log_level: super::LogLevel,
}

impl HostState {
    pub(crate) fn stream_mut(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.current)
    }

    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.current)
    }

    pub(crate) fn now_nanos(&self) -> u64 {
        self.clock
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// Serializes a header map the way proxy-wasm hosts pass it to the guest: the pair count,
/// each pair's key and value lengths, then each key and value followed by a NUL.
pub(crate) fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&len32(name.len()).to_le_bytes());
        out.extend_from_slice(&len32(value.len()).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Parses the guest's serialized header map; `None` if it is malformed.
pub(crate) fn decode_pairs(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(raw)).ok()
    };
    let count = word(0)?;
    let mut lengths = Vec::with_capacity(count.min(1024));
    for i in 0..count {
        let at = 4usize.checked_add(i.checked_mul(8)?)?;
        lengths.push((word(at)?, word(at.checked_add(4)?)?));
    }
    let mut at = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut pairs = Vec::with_capacity(lengths.len());
    for (name_len, value_len) in lengths {
        let name = bytes.get(at..at.checked_add(name_len)?)?;
        at = at.checked_add(name_len)?;
        if bytes.get(at) != Some(&0) {
            return None;
        }
        at = at.checked_add(1)?;
        let value = bytes.get(at..at.checked_add(value_len)?)?;
        at = at.checked_add(value_len)?;
        if bytes.get(at) != Some(&0) {
            return None;
        }
        at = at.checked_add(1)?;
        pairs.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    Some(pairs)
}

/// Splits a property path the SDK serialized as NUL-terminated segments.
pub(crate) fn decode_path(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    bytes
        .split(|b| *b == 0)
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs = vec![
            (":path".to_owned(), "/a".to_owned()),
            ("empty".to_owned(), String::new()),
            ("x".to_owned(), "y z".to_owned()),
        ];
        assert_eq!(decode_pairs(&encode_pairs(&pairs)), Some(pairs));
    }

    #[test]
    fn truncated_pairs_are_refused() {
        let bytes = encode_pairs(&[("name".to_owned(), "value".to_owned())]);
        for cut in 1..bytes.len() {
            assert_eq!(decode_pairs(&bytes[..cut]), None, "cut at {cut}");
        }
        // A count far beyond the data must not allocate or read out of bounds.
        assert_eq!(decode_pairs(&u32::MAX.to_le_bytes()), None);
    }

    #[test]
    fn paths_split_on_nul() {
        assert_eq!(decode_path(b"source\0address\0"), ["source", "address"]);
        assert_eq!(decode_path(b"plugin_name"), ["plugin_name"]);
    }
}
