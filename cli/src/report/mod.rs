//! `attestgate report`: reads the decision log lines the hosts write and answers the rollout
//! question, "what happens if we enforce tomorrow?".
//!
//! The line format is a contract with the hosts (docs/rollout.md): one JSON object per line,
//! perhaps after a prefix (workerd and wrangler put one before a `console.log` line), with
//! `"time"` an RFC 3339 timestamp and `"attestgate"` the [`DecisionRecord`], as an object or as
//! a string holding its JSON. Other members are ignored. Anything else is skipped and counted.
//!
//! Everything is bounded so that a huge log cannot exhaust memory: a line longer than
//! [`Limits::max_line_bytes`] is skipped without being held, at most [`Limits::max_tracked`]
//! distinct devices (and distinct values of each breakdown) are tracked, the rest counted
//! together as "more", and the time buckets widen when there would be too many.

pub mod html;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use anyhow::{bail, Context, Result};
use attestgate_policy::record::{DecisionRecord, MAX_VALUE_BYTES};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

/// Bounds on what a report holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The longest line read; longer ones are skipped (and counted).
    pub max_line_bytes: usize,
    /// Most distinct devices, and distinct values of each breakdown, tracked.
    pub max_tracked: usize,
    /// Most time buckets held while reading; past it the buckets widen.
    pub max_buckets: usize,
    /// Most distinct policy reasons kept per device.
    pub max_device_reasons: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 64 * 1024,
            max_tracked: 100_000,
            max_buckets: 10_000,
            max_device_reasons: 8,
        }
    }
}

/// Bucket widths, each a multiple of the one before: the automatic choice and the steps a
/// bucket widens by.
const LADDER: [i64; 14] = [
    1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 604_800,
];
/// Most buckets an automatic bucket width gives over the span.
const AUTO_BUCKETS: i64 = 60;
/// Most buckets shown over the span (a given `--bucket` widens past it).
pub const MAX_SHOWN_BUCKETS: i64 = 1000;

/// What to read of the lines.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only decisions at or after this time (milliseconds since the epoch).
    pub since_ms: Option<i64>,
    /// Only decisions before this time (milliseconds since the epoch).
    pub until_ms: Option<i64>,
    /// The bucket width in seconds; chosen from the span when absent.
    pub bucket_seconds: Option<i64>,
    /// How many devices to list.
    pub top: usize,
    /// The bounds.
    pub limits: Limits,
}

/// Requests and the would-be denials among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Decisions.
    pub requests: u64,
    /// Decisions with verdict `deny`, whether monitor mode let them through or not.
    pub would_deny: u64,
}

impl Counts {
    fn add(&mut self, would_deny: bool) {
        self.requests += 1;
        self.would_deny += u64::from(would_deny);
    }
}

/// Counts by a value (a reason, a version), holding at most `cap` distinct values; the rest are
/// counted together in `more`.
#[derive(Debug, Default)]
struct Tally {
    cap: usize,
    counts: HashMap<Option<String>, Counts>,
    more: Counts,
}

impl Tally {
    fn new(cap: usize) -> Tally {
        Tally {
            cap,
            ..Tally::default()
        }
    }

    fn add(&mut self, key: Option<&str>, would_deny: bool) {
        let key = key.map(bounded);
        if let Some(counts) = self.counts.get_mut(&key) {
            counts.add(would_deny);
        } else if self.counts.len() < self.cap {
            self.counts.entry(key).or_default().add(would_deny);
        } else {
            self.more.add(would_deny);
        }
    }

    /// The rows with a would-be denial (or all with `all`), most would-deny first.
    fn rows(&self, all: bool) -> Breakdown {
        let mut rows: Vec<Row> = self
            .counts
            .iter()
            .filter(|(_, counts)| all || counts.would_deny > 0)
            .map(|(name, counts)| Row {
                name: name.clone(),
                requests: counts.requests,
                would_deny: counts.would_deny,
            })
            .collect();
        rows.sort_by(|a, b| {
            (b.would_deny, b.requests)
                .cmp(&(a.would_deny, a.requests))
                .then_with(|| a.name.cmp(&b.name))
        });
        let more = (self.more.requests > 0).then_some(self.more);
        Breakdown { rows, more }
    }
}

/// One device as the report tracks it.
#[derive(Debug, Default)]
struct Device {
    counts: Counts,
    platform: Option<String>,
    app_version: Option<String>,
    /// Its would-deny reasons: the gate reason, or the policy's reasons for `policy_denied`.
    reasons: BTreeMap<String, u64>,
}

/// What the lines said, as they are read.
#[derive(Debug)]
pub struct Aggregator {
    options: Options,
    lines: LineCounts,
    total: Counts,
    refused: u64,
    no_device: Counts,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    modes: Tally,
    reasons: Tally,
    policy_reasons: Tally,
    policy_reasons_dropped: u64,
    versions: Tally,
    platforms: Tally,
    devices: HashMap<String, Device>,
    devices_more: Counts,
    bucket_seconds: i64,
    bucket_widened: bool,
    buckets: BTreeMap<i64, Counts>,
}

/// How the lines read were counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LineCounts {
    /// Lines read (empty lines not counted).
    pub read: u64,
    /// Decisions counted in the report.
    pub decisions: u64,
    /// Decisions outside `--since` / `--until`.
    pub outside_period: u64,
    /// Lines skipped: no JSON object on them.
    pub not_json: u64,
    /// Lines skipped: JSON, but no decision record in `attestgate` (or not one that reads).
    pub no_record: u64,
    /// Lines skipped: a record, but no RFC 3339 `time`.
    pub bad_time: u64,
    /// Lines skipped: longer than the line cap.
    pub too_long: u64,
}

impl LineCounts {
    /// All lines skipped.
    pub fn skipped(&self) -> u64 {
        self.not_json + self.no_record + self.bad_time + self.too_long
    }
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No JSON object on the line.
    NotJson,
    /// JSON without a decision record.
    NoRecord,
    /// A record without a valid time.
    BadTime,
}

/// One line read: its time (milliseconds since the epoch) and its record.
pub fn parse_line(line: &str) -> std::result::Result<(i64, DecisionRecord<String>), Skip> {
    let start = line.find('{').ok_or(Skip::NotJson)?;
    let object = line.get(start..).ok_or(Skip::NotJson)?;
    let value: Value = serde_json::from_str(object).map_err(|_| Skip::NotJson)?;
    let Value::Object(mut members) = value else {
        return Err(Skip::NotJson);
    };
    let record: DecisionRecord<String> = match members.remove("attestgate") {
        Some(Value::String(json)) => serde_json::from_str(&json).map_err(|_| Skip::NoRecord)?,
        Some(object @ Value::Object(_)) => {
            serde_json::from_value(object).map_err(|_| Skip::NoRecord)?
        }
        _ => return Err(Skip::NoRecord),
    };
    let millis = match members.get("time") {
        Some(time) => time
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis()),
        // Kong's log serializer (file-log, http-log, ...) has no `time`: it says when the
        // request started, in milliseconds since the epoch.
        None => members.get("started_at").and_then(Value::as_i64),
    };
    Ok((millis.ok_or(Skip::BadTime)?, record))
}

impl Aggregator {
    /// An empty report.
    pub fn new(options: Options) -> Aggregator {
        let cap = options.limits.max_tracked;
        Aggregator {
            bucket_seconds: options.bucket_seconds.unwrap_or(1).max(1),
            options,
            lines: LineCounts::default(),
            total: Counts::default(),
            refused: 0,
            no_device: Counts::default(),
            first_ms: None,
            last_ms: None,
            modes: Tally::new(cap),
            reasons: Tally::new(cap),
            policy_reasons: Tally::new(cap),
            policy_reasons_dropped: 0,
            versions: Tally::new(cap),
            platforms: Tally::new(cap),
            devices: HashMap::new(),
            devices_more: Counts::default(),
            bucket_widened: false,
            buckets: BTreeMap::new(),
        }
    }

    /// Reads every line of `reader`, each at most the line cap long.
    pub fn read(&mut self, reader: &mut impl BufRead) -> std::io::Result<()> {
        let mut line = Vec::new();
        while let Some(too_long) =
            read_line_capped(reader, &mut line, self.options.limits.max_line_bytes)?
        {
            if too_long {
                self.lines.read += 1;
                self.lines.too_long += 1;
                continue;
            }
            match std::str::from_utf8(&line) {
                Ok(text) => self.line(text),
                Err(_) => {
                    self.lines.read += 1;
                    self.lines.not_json += 1;
                }
            }
        }
        Ok(())
    }

    /// Counts one line (without its newline).
    pub fn line(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.lines.read += 1;
        if line.len() > self.options.limits.max_line_bytes {
            self.lines.too_long += 1;
            return;
        }
        match parse_line(line) {
            Ok((time_ms, record)) => self.record(time_ms, &record),
            Err(Skip::NotJson) => self.lines.not_json += 1,
            Err(Skip::NoRecord) => self.lines.no_record += 1,
            Err(Skip::BadTime) => self.lines.bad_time += 1,
        }
    }

    /// Counts one decision made at `time_ms`.
    pub fn record(&mut self, time_ms: i64, record: &DecisionRecord<String>) {
        let in_period = self.options.since_ms.is_none_or(|since| time_ms >= since)
            && self.options.until_ms.is_none_or(|until| time_ms < until);
        if !in_period {
            self.lines.outside_period += 1;
            return;
        }
        self.lines.decisions += 1;
        let deny = record.would_deny();
        self.total.add(deny);
        self.refused += u64::from(deny && !record.allowed);
        self.first_ms = Some(self.first_ms.map_or(time_ms, |t| t.min(time_ms)));
        self.last_ms = Some(self.last_ms.map_or(time_ms, |t| t.max(time_ms)));
        self.modes.add(Some(&record.mode), deny);
        self.versions.add(record.app_version.as_deref(), deny);
        self.platforms.add(record.platform.as_deref(), deny);
        // The reasons are of would-be denials only.
        let policy_denial = !record.policy_reasons.is_empty();
        if deny {
            self.reasons.add(Some(&record.reason), true);
            for reason in &record.policy_reasons {
                self.policy_reasons.add(Some(reason), true);
            }
            self.policy_reasons_dropped += record.policy_reasons_dropped as u64;
        }
        self.bucket(time_ms, deny);
        let Some(id) = record.device.as_deref() else {
            self.no_device.add(deny);
            return;
        };
        let max_reasons = self.options.limits.max_device_reasons;
        let id = bounded(id);
        let device = if let Some(device) = self.devices.get_mut(&id) {
            device
        } else if self.devices.len() < self.options.limits.max_tracked {
            self.devices.entry(id).or_default()
        } else {
            self.devices_more.add(deny);
            return;
        };
        device.counts.add(deny);
        if record.platform.is_some() {
            device.platform = record.platform.as_deref().map(bounded);
        }
        if record.app_version.is_some() {
            device.app_version = record.app_version.as_deref().map(bounded);
        }
        if deny {
            let reasons: Vec<&String> = if policy_denial {
                record.policy_reasons.iter().collect()
            } else {
                vec![&record.reason]
            };
            for reason in reasons {
                if let Some(count) = device.reasons.get_mut(reason) {
                    *count += 1;
                } else if device.reasons.len() < max_reasons {
                    device.reasons.insert(bounded(reason), 1);
                }
            }
        }
    }

    fn bucket(&mut self, time_ms: i64, deny: bool) {
        let start = time_ms.div_euclid(1000).div_euclid(self.bucket_seconds) * self.bucket_seconds;
        self.buckets.entry(start).or_default().add(deny);
        if self.buckets.len() > self.options.limits.max_buckets {
            self.widen(wider(self.bucket_seconds));
        }
    }

    /// Merges the buckets into ones `seconds` wide (a multiple of the current width).
    fn widen(&mut self, seconds: i64) {
        if self.options.bucket_seconds.is_some() {
            self.bucket_widened = true;
        }
        self.bucket_seconds = seconds;
        let old = std::mem::take(&mut self.buckets);
        for (start, counts) in old {
            let merged = self
                .buckets
                .entry(start.div_euclid(seconds) * seconds)
                .or_default();
            merged.requests += counts.requests;
            merged.would_deny += counts.would_deny;
        }
    }

    /// The summary of everything read.
    pub fn summary(mut self) -> Summary {
        // The bucket width shown: a given one (widened if the span needs too many), or the
        // narrowest on the ladder that gives at most AUTO_BUCKETS over the span.
        if let (Some(first), Some(last)) = (self.first_ms, self.last_ms) {
            let (first, last) = (first.div_euclid(1000), last.div_euclid(1000));
            let most = if self.options.bucket_seconds.is_some() {
                MAX_SHOWN_BUCKETS
            } else {
                AUTO_BUCKETS
            };
            let count = |width: i64| last.div_euclid(width) - first.div_euclid(width) + 1;
            while count(self.bucket_seconds) > most {
                let seconds = wider(self.bucket_seconds);
                self.widen(seconds);
            }
        }
        let width = self.bucket_seconds;
        let over_time = match (self.buckets.keys().next(), self.buckets.keys().next_back()) {
            (Some(&first), Some(&last)) => {
                let count = (last - first) / width + 1;
                (0..count)
                    .map(|i| {
                        let start = first + i * width;
                        let counts = self.buckets.get(&start).copied().unwrap_or_default();
                        Bucket {
                            start: rfc3339(start * 1000),
                            requests: counts.requests,
                            would_deny: counts.would_deny,
                        }
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let would_deny_devices = self
            .devices
            .values()
            .filter(|d| d.counts.would_deny > 0)
            .count() as u64;
        let mut top: Vec<(&String, &Device)> = self
            .devices
            .iter()
            .filter(|(_, d)| d.counts.would_deny > 0)
            .collect();
        top.sort_by(|(a_id, a), (b_id, b)| {
            (b.counts.would_deny, b.counts.requests)
                .cmp(&(a.counts.would_deny, a.counts.requests))
                .then_with(|| a_id.cmp(b_id))
        });
        let top_devices = top
            .into_iter()
            .take(self.options.top)
            .map(|(id, device)| {
                let mut reasons: Vec<(&String, &u64)> = device.reasons.iter().collect();
                reasons.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                TopDevice {
                    device: id.clone(),
                    requests: device.counts.requests,
                    would_deny: device.counts.would_deny,
                    platform: device.platform.clone(),
                    app_version: device.app_version.clone(),
                    reasons: reasons.into_iter().map(|(r, _)| r.clone()).collect(),
                }
            })
            .collect();
        let devices_more = self.devices_more.requests > 0;
        Summary {
            period: Period {
                since: self.options.since_ms.map(rfc3339),
                until: self.options.until_ms.map(rfc3339),
                first: self.first_ms.map(rfc3339),
                last: self.last_ms.map(rfc3339),
            },
            lines: self.lines,
            requests: self.total.requests,
            devices: DeviceCount {
                count: self.devices.len() as u64,
                more: devices_more,
            },
            requests_without_device: self.no_device.requests,
            would_deny: WouldDeny {
                requests: self.total.would_deny,
                devices: DeviceCount {
                    count: would_deny_devices,
                    more: self.devices_more.would_deny > 0,
                },
                requests_without_device: self.no_device.would_deny,
                refused: self.refused,
                monitored: self.total.would_deny - self.refused,
            },
            by_mode: self.modes.rows(true),
            by_reason: self.reasons.rows(false),
            by_policy_reason: self.policy_reasons.rows(false),
            policy_reasons_dropped: self.policy_reasons_dropped,
            by_app_version: self.versions.rows(true),
            by_platform: self.platforms.rows(true),
            over_time: OverTime {
                bucket_seconds: width,
                bucket: duration_text(width),
                widened: self.bucket_widened,
                buckets: over_time,
            },
            top_devices,
            limits: LimitsOut {
                max_line_bytes: self.options.limits.max_line_bytes,
                max_tracked: self.options.limits.max_tracked,
            },
        }
    }
}

/// A value from a log as the report holds it: at most the record's own bound
/// ([`MAX_VALUE_BYTES`], which hosts never exceed), cut at a character boundary, so that
/// tracked values cannot hold whole lines.
fn bounded(value: &str) -> String {
    let mut end = value.len().min(MAX_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default().to_owned()
}

/// The next bucket width after `seconds`: the next on the ladder that is a multiple of it, else
/// twice it.
fn wider(seconds: i64) -> i64 {
    LADDER
        .iter()
        .copied()
        .find(|&step| step > seconds && step % seconds == 0)
        .unwrap_or(seconds.saturating_mul(2))
}

/// Reads one line into `line` (without its `\n`, and `\r\n`'s `\r`), holding at most `cap`
/// bytes: `None` at the end, `Some(true)` for a longer line (consumed, not held).
fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            break;
        }
        any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (available.get(..end).unwrap_or_default(), end + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if line.len() + chunk.len() > cap.saturating_add(1) {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(too_long || line.len() > cap))
}

/// Reads the named files (`-` for stdin) into one report.
pub fn report_files(paths: &[std::path::PathBuf], options: Options) -> Result<Summary> {
    let mut aggregator = Aggregator::new(options);
    for path in paths {
        if path.as_os_str() == "-" {
            aggregator
                .read(&mut std::io::stdin().lock())
                .context("reading stdin")?;
        } else {
            let file =
                std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
            aggregator
                .read(&mut std::io::BufReader::with_capacity(64 * 1024, file))
                .with_context(|| format!("reading {}", path.display()))?;
        }
    }
    Ok(aggregator.summary())
}

/// An RFC 3339 time (`--since`, `--until`) as milliseconds since the epoch.
pub fn parse_time(text: &str) -> Result<i64> {
    Ok(DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("`{text}` is not an RFC 3339 time (2026-12-07T00:00:00Z)"))?
        .timestamp_millis())
}

/// A bucket width: a number and a unit, `s`, `m`, `h`, `d` or `w` (`30s`, `10m`, `1h`).
pub fn parse_duration(text: &str) -> Result<i64> {
    let text = text.trim();
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = text.get(digits.len()..).unwrap_or_default();
    let number: i64 = digits
        .parse()
        .with_context(|| format!("`{text}` is not a duration (30s, 10m, 1h, 1d)"))?;
    let scale = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("`{text}`: the unit is s, m, h, d or w"),
    };
    match number.checked_mul(scale) {
        Some(seconds) if seconds > 0 => Ok(seconds),
        _ => bail!("`{text}`: a bucket is at least one second"),
    }
}

/// `seconds` as the shortest exact `parse_duration` text.
pub fn duration_text(seconds: i64) -> String {
    for (scale, unit) in [(604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m")] {
        if seconds % scale == 0 {
            return format!("{}{unit}", seconds / scale);
        }
    }
    format!("{seconds}s")
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| {
            let format = if ms % 1000 == 0 {
                SecondsFormat::Secs
            } else {
                SecondsFormat::Millis
            };
            t.to_rfc3339_opts(format, true)
        },
    )
}

/// The report: what `--json` prints and the terminal table and the page show.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The period asked for and the times of the first and last decision counted.
    pub period: Period,
    /// How the lines were counted.
    pub lines: LineCounts,
    /// Decisions counted.
    pub requests: u64,
    /// Distinct devices (verified device ids).
    pub devices: DeviceCount,
    /// Decisions with no verified device (no token, a token that failed before its claims).
    pub requests_without_device: u64,
    /// What enforcing would deny.
    pub would_deny: WouldDeny,
    /// By the mode that applied: `enforce`, `monitor`, `bypass`.
    pub by_mode: Breakdown,
    /// Would-be denials by gate reason.
    pub by_reason: Breakdown,
    /// Would-be `policy_denied` by the policy's reasons (a denial may have several).
    pub by_policy_reason: Breakdown,
    /// Policy reasons the records did not keep (more than a record holds).
    pub policy_reasons_dropped: u64,
    /// By the verified app version.
    pub by_app_version: Breakdown,
    /// By the verified platform.
    pub by_platform: Breakdown,
    /// Per time bucket.
    pub over_time: OverTime,
    /// The devices with the most would-be denials.
    pub top_devices: Vec<TopDevice>,
    /// The bounds applied.
    pub limits: LimitsOut,
}

/// The period of a report.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    /// `--since`.
    pub since: Option<String>,
    /// `--until`.
    pub until: Option<String>,
    /// The first decision counted.
    pub first: Option<String>,
    /// The last decision counted.
    pub last: Option<String>,
}

/// A number of distinct devices; `more` when there were more than could be tracked, so
/// `count` is a lower bound.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DeviceCount {
    /// Distinct devices tracked.
    pub count: u64,
    /// Whether there were more.
    pub more: bool,
}

/// What enforcing would deny.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WouldDeny {
    /// Requests with verdict `deny`.
    pub requests: u64,
    /// Distinct devices with at least one.
    pub devices: DeviceCount,
    /// Of `requests`, those without a verified device.
    pub requests_without_device: u64,
    /// Of `requests`, those refused already (enforced).
    pub refused: u64,
    /// Of `requests`, those monitor mode let through.
    pub monitored: u64,
}

/// Counts by one value.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// Most would-deny first; `name` is null for decisions without the value.
    pub rows: Vec<Row>,
    /// Values past the tracking bound, counted together.
    pub more: Option<Counts>,
}

/// One value's counts.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The value (null: absent).
    pub name: Option<String>,
    /// Decisions.
    pub requests: u64,
    /// Would-be denials.
    pub would_deny: u64,
}

/// The decisions over time.
#[derive(Debug, Clone, Serialize)]
pub struct OverTime {
    /// The bucket width.
    pub bucket_seconds: i64,
    /// The bucket width as text (`1h`).
    pub bucket: String,
    /// Whether a given `--bucket` was widened (too many buckets).
    pub widened: bool,
    /// Every bucket from the first decision's to the last's.
    pub buckets: Vec<Bucket>,
}

/// One time bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Its start (RFC 3339, UTC).
    pub start: String,
    /// Decisions.
    pub requests: u64,
    /// Would-be denials.
    pub would_deny: u64,
}

/// A device with would-be denials.
#[derive(Debug, Clone, Serialize)]
pub struct TopDevice {
    /// Its id.
    pub device: String,
    /// Its decisions.
    pub requests: u64,
    /// Its would-be denials.
    pub would_deny: u64,
    /// Its last platform.
    pub platform: Option<String>,
    /// Its last app version.
    pub app_version: Option<String>,
    /// Its would-deny reasons, most frequent first (gate reasons, or the policy's).
    pub reasons: Vec<String>,
}

/// The bounds applied.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LimitsOut {
    /// The longest line read.
    pub max_line_bytes: usize,
    /// Most distinct devices and values tracked.
    pub max_tracked: usize,
}

#[cfg(test)]
mod tests;

/// `attestgate report`'s arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Decision log files, one JSON object per line (`-` for stdin); several are read as one.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// Only decisions at or after this time (RFC 3339, e.g. 2026-12-07T00:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<i64>,
    /// Only decisions before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<i64>,
    /// The width of a time bucket (30s, 10m, 1h, 1d); by default chosen from the span.
    #[arg(long, value_parser = parse_duration)]
    pub bucket: Option<i64>,
    /// How many devices to list by would-deny count.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Also write the report as one self-contained HTML page with charts.
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
    /// Print the summary as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `attestgate report`.
pub fn run(args: &Args) -> Result<()> {
    if let (Some(since), Some(until)) = (args.since, args.until) {
        if since >= until {
            bail!("--since must be before --until");
        }
    }
    let options = Options {
        since_ms: args.since,
        until_ms: args.until,
        bucket_seconds: args.bucket,
        top: args.top,
        limits: Limits::default(),
    };
    let summary = report_files(&args.files, options)?;
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&summary))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let out = if args.json {
        let mut json = serde_json::to_string_pretty(&summary)?;
        json.push('\n');
        json
    } else {
        text::render(&summary)
    };
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
        .context("writing to stdout")
}
