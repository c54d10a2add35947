//! `attestgate report`, run for real over a decision log made by the core: `Gate::check`
//! decides a mix of good and bad devices' requests, and each decision's `DecisionRecord` is
//! written in the line format the hosts write (Envoy's JSON access log, with the record as an
//! object or as a string; NGINX's `$time_iso8601`; the Worker's `console.log` under a wrangler
//! prefix), among lines that are not decisions. The test counts the records itself and
//! compares with `--json`, the table, and the `--html` page as headless Chromium builds it
//! (its DOM, and a screenshot in build/report.png).

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use attestgate_policy::record::DecisionRecord;
use attestgate_policy::{CacheOutcome, Gate, Request};
use attestgate_testkit::SigningKey;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

/// A 32-byte Approov-style secret, and another that forges.
const SECRET: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";
const FORGER: &str = "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=";

/// 2026-12-07T00:00:00Z.
const T0: i64 = 1_796_601_600;
/// One request every 45 seconds for six hours.
const REQUESTS: i64 = 6 * 3600 / 45;

/// The device id that must reach the page as text.
const EVIL: &str = "<script>alert(1)</script>";

const POLICY: &str = r#"package attestgate
decision := {"allow": count(deny) == 0, "reasons": sort([r | some r in deny])}
deny contains "device_rooted" if input.token.claims.att.device.rooted == true
deny contains "app_outdated" if input.token.claims.att.app.version == "1.9.0"
"#;

/// Monitor mode, but `/v1/pay` is enforced already.
fn gate() -> Gate {
    Gate::from_json(
        &json!({
            "mode": "monitor",
            "keys": { "approov_secret": SECRET },
            "policy": { "modules": { "trust.rego": POLICY } },
            "rules": [
                { "name": "pay", "path": "/v1/pay", "mode": "enforce" },
                { "name": "api", "path_prefix": "/" },
            ],
        })
        .to_string(),
    )
    .unwrap()
}

fn token(secret: &str, claims: &Value) -> String {
    SigningKey::hs256_from_base64_secret(secret)
        .unwrap()
        .sign(claims.as_object().unwrap())
        .unwrap()
}

fn claims(device: &str, platform: &str, version: &str, rooted: bool, exp: i64) -> Value {
    json!({ "exp": exp, "did": device,
            "att": { "device": { "platform": platform, "rooted": rooted },
                     "app": { "version": version } } })
}

/// The i-th request of the fixture: a path and maybe a token, at `now`.
fn request(i: i64, now: i64) -> Request {
    let (path, token) = match i % 12 {
        _ if i % 97 == 5 => (
            "/v1/shapes",
            Some(token(
                SECRET,
                &claims(EVIL, "android", "2.4.0", true, now + 300),
            )),
        ),
        0..=5 => {
            let n = (i / 12 * 6 + i % 12) % 20;
            let platform = if n % 2 == 0 { "android" } else { "ios" };
            let device = format!("good-{n}");
            (
                "/v1/shapes",
                Some(token(
                    SECRET,
                    &claims(&device, platform, "2.4.0", false, now + 300),
                )),
            )
        }
        6 => {
            let device = format!("rooted-{}", (i / 12) % 4);
            (
                "/v1/shapes",
                Some(token(
                    SECRET,
                    &claims(&device, "android", "2.4.0", true, now + 300),
                )),
            )
        }
        7 => {
            let device = format!("old-{}", (i / 12) % 3);
            (
                "/v1/shapes",
                Some(token(
                    SECRET,
                    &claims(&device, "ios", "1.9.0", false, now + 300),
                )),
            )
        }
        8 => (
            "/v1/shapes",
            Some(token(
                SECRET,
                &claims("good-1", "ios", "2.4.0", false, now - 3600),
            )),
        ),
        9 => ("/v1/shapes", None),
        10 => (
            "/v1/shapes",
            Some(token(
                FORGER,
                &claims("forged", "android", "2.4.0", false, now + 300),
            )),
        ),
        _ => {
            let rooted = i % 24 == 11;
            let device = if rooted { "rooted-0" } else { "good-0" };
            (
                "/v1/pay",
                Some(token(
                    SECRET,
                    &claims(device, "android", "2.4.0", rooted, now + 300),
                )),
            )
        }
    };
    let request = Request::new("GET", path);
    match token {
        Some(token) => request.with_header("approov-token", token),
        None => request,
    }
}

/// Which host writes line `i` (spread over every kind of request).
fn format(i: i64) -> i64 {
    (i + i / 12) % 4
}

/// The time in each host's format, by line.
fn time(i: i64, at_ms: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_millis(at_ms).unwrap();
    match format(i) {
        2 => t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(), // NGINX $time_iso8601
        _ => t.to_rfc3339_opts(SecondsFormat::Millis, true),  // Envoy %START_TIME%, toISOString()
    }
}

/// One decision as a host writes it.
fn log_line(i: i64, at_ms: i64, record: &DecisionRecord) -> String {
    let time = time(i, at_ms);
    match format(i) {
        // Envoy's JSON access log with the record as an object.
        0 => json!({ "time": time, "method": "GET", "code": record.status, "attestgate": record })
            .to_string(),
        // Envoy with the record as a string (filter state serialized as a string).
        1 => json!({ "time": time, "attestgate": serde_json::to_string(record).unwrap() })
            .to_string(),
        // NGINX.
        2 => {
            json!({ "time": time, "remote_addr": "203.0.113.7", "attestgate": record }).to_string()
        }
        // The Worker's console.log, as wrangler prints it.
        _ => format!(
            "[wrangler:inf] {}",
            json!({ "time": time, "attestgate": record })
        ),
    }
}

/// The fixture's log: its lines, and the records with their times (milliseconds) as the test
/// counts them.
struct Fixture {
    lines: Vec<String>,
    records: Vec<(i64, DecisionRecord<String>)>,
    not_json: u64,
    no_record: u64,
    too_long: u64,
}

fn fixture() -> Fixture {
    let gate = gate();
    let mut fixture = Fixture {
        lines: Vec::new(),
        records: Vec::new(),
        not_json: 0,
        no_record: 0,
        too_long: 0,
    };
    for i in 0..REQUESTS {
        let now = T0 + i * 45;
        let at_ms = now * 1000 + (i * 37) % 1000;
        let decision = gate.check(&request(i, now), now);
        let record = DecisionRecord::of(&decision, CacheOutcome::Uncached);
        fixture.lines.push(log_line(i, at_ms, &record));
        // The record as a reader gets it back.
        let record: DecisionRecord<String> =
            serde_json::from_value(serde_json::to_value(&record).unwrap()).unwrap();
        fixture.records.push((at_ms, record));
        if i % 50 == 0 {
            fixture.lines.push(format!("upstream connect error {i}"));
            fixture.not_json += 1;
        }
        if i % 70 == 0 {
            fixture.lines.push(
                json!({ "time": time(i, at_ms), "path": "/healthz", "attestgate": "-" })
                    .to_string(),
            );
            fixture.no_record += 1;
        }
    }
    let huge =
        json!({ "time": "2026-12-07T01:00:00Z", "attestgate": {}, "pad": "x".repeat(70 * 1024) });
    fixture.lines.insert(100, huge.to_string());
    fixture.too_long += 1;
    let records = &fixture.records;
    assert!(
        records
            .iter()
            .any(|(_, r)| r.reason == "policy_denied" && !r.allowed),
        "an enforced denial"
    );
    for reason in [
        "allowed",
        "policy_denied",
        "token_expired",
        "token_missing",
        "signature_invalid",
    ] {
        assert!(records.iter().any(|(_, r)| r.reason == reason), "{reason}");
    }
    fixture
}

/// What a report of `records` should say, counted here.
struct Expected {
    requests: u64,
    would_deny: u64,
    devices: usize,
    would_deny_devices: usize,
    refused: u64,
    by_reason: BTreeMap<String, u64>,
    by_policy_reason: BTreeMap<String, u64>,
    by_version: BTreeMap<Option<String>, (u64, u64)>,
    by_platform: BTreeMap<Option<String>, (u64, u64)>,
    by_device: HashMap<String, (u64, u64)>,
}

fn expected(records: &[(i64, DecisionRecord<String>)]) -> Expected {
    let mut e = Expected {
        requests: 0,
        would_deny: 0,
        devices: 0,
        would_deny_devices: 0,
        refused: 0,
        by_reason: BTreeMap::new(),
        by_policy_reason: BTreeMap::new(),
        by_version: BTreeMap::new(),
        by_platform: BTreeMap::new(),
        by_device: HashMap::new(),
    };
    let mut devices = HashSet::new();
    let mut deny_devices = HashSet::new();
    for (_, r) in records {
        let deny = r.verdict == "deny";
        e.requests += 1;
        e.would_deny += u64::from(deny);
        e.refused += u64::from(deny && !r.allowed);
        let v = e.by_version.entry(r.app_version.clone()).or_default();
        v.0 += 1;
        v.1 += u64::from(deny);
        let p = e.by_platform.entry(r.platform.clone()).or_default();
        p.0 += 1;
        p.1 += u64::from(deny);
        if deny {
            *e.by_reason.entry(r.reason.clone()).or_default() += 1;
            for reason in &r.policy_reasons {
                *e.by_policy_reason.entry(reason.clone()).or_default() += 1;
            }
        }
        if let Some(device) = &r.device {
            devices.insert(device.clone());
            let d = e.by_device.entry(device.clone()).or_default();
            d.0 += 1;
            d.1 += u64::from(deny);
            if deny {
                deny_devices.insert(device.clone());
            }
        }
    }
    e.devices = devices.len();
    e.would_deny_devices = deny_devices.len();
    e
}

/// A scratch directory per test, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("attestgate-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the fixture's lines in two files and a rest for stdin.
fn write_log(scratch: &Scratch, lines: &[String]) -> (PathBuf, PathBuf, String) {
    let third = lines.len() / 3;
    let (a, rest) = lines.split_at(third);
    let (b, c) = rest.split_at(third);
    let write = |name: &str, lines: &[String]| {
        let path = scratch.path(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    };
    (write("a.log", a), write("b.log", b), c.join("\n"))
}

fn attestgate(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer = std::thread::spawn(move || input.write_all(stdin.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "attestgate {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn report_json(args: &[&str], stdin: &str) -> Value {
    let output = attestgate(args, stdin);
    serde_json::from_slice(&output.stdout).unwrap()
}

fn rows(breakdown: &Value) -> Vec<(Option<String>, u64, u64)> {
    breakdown["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().map(str::to_owned),
                r["requests"].as_u64().unwrap(),
                r["would_deny"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn the_report_says_what_the_records_say() {
    let fixture = fixture();
    let scratch = Scratch::new("json");
    let (a, b, rest) = write_log(&scratch, &fixture.lines);
    let summary = report_json(
        &[
            "report",
            path_str(&a),
            path_str(&b),
            "-",
            "--json",
            "--top",
            "5",
        ],
        &rest,
    );
    let e = expected(&fixture.records);

    let lines = &summary["lines"];
    assert_eq!(lines["decisions"], e.requests, "{lines}");
    assert_eq!(lines["read"], fixture.lines.len() as u64);
    assert_eq!(lines["not_json"], fixture.not_json);
    assert_eq!(lines["no_record"], fixture.no_record);
    assert_eq!(lines["too_long"], fixture.too_long);
    assert_eq!(lines["bad_time"], 0);

    assert_eq!(summary["requests"], e.requests);
    assert_eq!(summary["devices"]["count"], e.devices as u64);
    assert_eq!(summary["devices"]["more"], false);
    let would = &summary["would_deny"];
    assert_eq!(would["requests"], e.would_deny);
    assert_eq!(would["devices"]["count"], e.would_deny_devices as u64);
    assert_eq!(would["refused"], e.refused);
    assert_eq!(would["monitored"], e.would_deny - e.refused);
    assert!(e.refused > 0 && e.would_deny > e.refused);

    let by_reason: BTreeMap<String, u64> = rows(&summary["by_reason"])
        .into_iter()
        .map(|(name, _, deny)| (name.unwrap(), deny))
        .collect();
    assert_eq!(by_reason, e.by_reason);
    assert!(by_reason.contains_key("signature_invalid") && by_reason.contains_key("token_expired"));
    let by_policy_reason: BTreeMap<String, u64> = rows(&summary["by_policy_reason"])
        .into_iter()
        .map(|(name, _, deny)| (name.unwrap(), deny))
        .collect();
    assert_eq!(by_policy_reason, e.by_policy_reason);
    assert_eq!(
        by_policy_reason.keys().collect::<Vec<_>>(),
        ["app_outdated", "device_rooted"]
    );
    for (key, want) in [
        ("by_app_version", &e.by_version),
        ("by_platform", &e.by_platform),
    ] {
        let got: BTreeMap<Option<String>, (u64, u64)> = rows(&summary[key])
            .into_iter()
            .map(|(name, all, deny)| (name, (all, deny)))
            .collect();
        assert_eq!(&got, want, "{key}");
    }
    // Sorted by would-deny, most first.
    let deny_counts: Vec<u64> = rows(&summary["by_app_version"])
        .iter()
        .map(|r| r.2)
        .collect();
    assert!(
        deny_counts.windows(2).all(|w| w[0] >= w[1]),
        "{deny_counts:?}"
    );

    // The top devices: the five with the most would-be denials, as counted here.
    let mut ranked: Vec<(&String, &(u64, u64))> =
        e.by_device.iter().filter(|(_, c)| c.1 > 0).collect();
    ranked.sort_by(|a, b| {
        (b.1 .1, b.1 .0)
            .cmp(&(a.1 .1, a.1 .0))
            .then_with(|| a.0.cmp(b.0))
    });
    let want: Vec<(String, u64, u64)> = ranked
        .iter()
        .take(5)
        .map(|(d, c)| ((*d).clone(), c.1, c.0))
        .collect();
    let got: Vec<(String, u64, u64)> = summary["top_devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["device"].as_str().unwrap().to_owned(),
                d["would_deny"].as_u64().unwrap(),
                d["requests"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // Over time: six hours in 10-minute buckets, each as counted here.
    let time = &summary["over_time"];
    assert_eq!(time["bucket_seconds"], 600);
    let buckets = time["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 36);
    let mut per_bucket: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for (at_ms, r) in &fixture.records {
        let b = per_bucket.entry((at_ms / 1000 - T0) / 600).or_default();
        b.0 += 1;
        b.1 += u64::from(r.verdict == "deny");
    }
    for (i, bucket) in buckets.iter().enumerate() {
        let start = DateTime::parse_from_rfc3339(bucket["start"].as_str().unwrap()).unwrap();
        assert_eq!(start.timestamp(), T0 + 600 * i as i64);
        let (all, deny) = per_bucket[&(i as i64)];
        assert_eq!(
            (
                bucket["requests"].as_u64().unwrap(),
                bucket["would_deny"].as_u64().unwrap()
            ),
            (all, deny),
            "bucket {i}"
        );
    }
}

#[test]
fn a_period_and_a_bucket_narrow_the_report() {
    let fixture = fixture();
    let scratch = Scratch::new("period");
    let (a, b, rest) = write_log(&scratch, &fixture.lines);
    let args = [
        "report",
        path_str(&a),
        path_str(&b),
        "-",
        "--json",
        "--since",
        "2026-12-07T01:00:00Z",
        "--until",
        "2026-12-07T03:00:00+00:00",
        "--bucket",
        "1h",
    ];
    let summary = report_json(&args, &rest);
    let inside: Vec<(i64, DecisionRecord<String>)> = fixture
        .records
        .iter()
        .filter(|(at_ms, _)| (T0 + 3600) * 1000 <= *at_ms && *at_ms < (T0 + 3 * 3600) * 1000)
        .cloned()
        .collect();
    let e = expected(&inside);
    assert_eq!(summary["requests"], e.requests);
    assert_eq!(summary["would_deny"]["requests"], e.would_deny);
    assert_eq!(
        summary["lines"]["outside_period"],
        fixture.records.len() as u64 - e.requests
    );
    let buckets = summary["over_time"]["buckets"].as_array().unwrap();
    let starts: Vec<&str> = buckets
        .iter()
        .map(|b| b["start"].as_str().unwrap())
        .collect();
    assert_eq!(starts, ["2026-12-07T01:00:00Z", "2026-12-07T02:00:00Z"]);
    assert_eq!(summary["over_time"]["bucket"], "1h");
}

#[test]
fn the_table_answers_the_rollout_question() {
    let fixture = fixture();
    let scratch = Scratch::new("table");
    let (a, b, rest) = write_log(&scratch, &fixture.lines);
    let output = attestgate(&["report", path_str(&a), path_str(&b), "-"], &rest);
    let text = String::from_utf8(output.stdout).unwrap();
    let e = expected(&fixture.records);
    let answer = format!(
        "If enforced: {} of {} requests ({:.1}%) would be denied, from {} of {} devices",
        e.would_deny,
        e.requests,
        e.would_deny as f64 * 100.0 / e.requests as f64,
        e.would_deny_devices,
        e.devices
    );
    assert!(text.contains(&answer), "{answer}\n{text}");
    let skipped = fixture.not_json + fixture.no_record + fixture.too_long;
    assert!(
        text.contains(&format!(
            "{skipped} skipped ({} not JSON, {} without a decision record, 1 over 65536 bytes)",
            fixture.not_json, fixture.no_record
        )),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("device_rooted "))
        .unwrap_or_else(|| panic!("no device_rooted row:\n{text}"));
    assert!(
        row.ends_with(&format!(" {}", e.by_policy_reason["device_rooted"])),
        "{row}"
    );
    for heading in [
        "by mode",
        "would deny by gate reason",
        "by app version",
        "by platform",
        "over time (bucket 10m",
        "top devices by would-deny",
    ] {
        assert!(text.contains(heading), "{heading}\n{text}");
    }
}

#[test]
fn a_missing_file_or_a_bad_time_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .args(["report", "/nonexistent/attestgate.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/attestgate.log"));
    let out = Command::new(env!("CARGO_BIN_EXE_attestgate"))
        .args(["report", "-", "--since", "yesterday"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

/// Debian's chromium, or `$CHROMIUM`; missing it is a failure, never a skip.
fn chromium(scratch: &Scratch, profile: &str, args: &[&str]) -> Output {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let output = Command::new("timeout")
        .arg("120")
        .arg(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path(profile).display()
        ))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running {chromium}: {err}"));
    assert!(
        output.status.success(),
        "{chromium}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The attribute `name` of each element whose start tag matches `tag` (the DOM as Chromium
/// serializes it: attributes in source order, `"` quoted).
fn attributes(dom: &str, tag: &str) -> Vec<HashMap<String, String>> {
    let tag_re = regex::Regex::new(&format!(r"<{tag}\b([^>]*)>")).unwrap();
    let attr_re = regex::Regex::new(r#"([a-z-]+)="([^"]*)""#).unwrap();
    tag_re
        .captures_iter(dom)
        .map(|c| {
            attr_re
                .captures_iter(&c[1])
                .map(|a| (a[1].to_owned(), unescape(&a[2])))
                .collect()
        })
        .collect()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[test]
fn the_page_shows_the_summary_in_chromium() {
    let fixture = fixture();
    let scratch = Scratch::new("html");
    let (a, b, rest) = write_log(&scratch, &fixture.lines);
    let page = scratch.path("report.html");
    let summary = report_json(
        &[
            "report",
            path_str(&a),
            path_str(&b),
            "-",
            "--json",
            "--html",
            path_str(&page),
        ],
        &rest,
    );
    let url = format!("file://{}", page.display());
    let dom = String::from_utf8(chromium(&scratch, "dom", &["--dump-dom", &url]).stdout).unwrap();
    assert!(dom.contains("<h1>attestgate report</h1>"), "{dom}");

    // The headline numbers: in data attributes and as the text shown.
    let cards = regex::Regex::new(
        r#"<div class="card [a-z-]*" data-metric="([a-z-]+)" data-value="(\d+)"><div class="value">([^<]*)</div>"#,
    )
    .unwrap();
    let shown: HashMap<String, (u64, String)> = cards
        .captures_iter(&dom)
        .map(|c| {
            (
                c[1].to_owned(),
                (c[2].parse().unwrap(), c[3].replace(',', "")),
            )
        })
        .collect();
    let would = &summary["would_deny"];
    for (metric, value) in [
        ("requests", &summary["requests"]),
        ("devices", &summary["devices"]["count"]),
        ("would-deny", &would["requests"]),
        ("would-deny-devices", &would["devices"]["count"]),
        ("refused", &would["refused"]),
        ("monitored", &would["monitored"]),
    ] {
        let value = value.as_u64().unwrap();
        let (data, text) = shown
            .get(metric)
            .unwrap_or_else(|| panic!("no card {metric} in {shown:?}"));
        assert_eq!(
            (*data, text.as_str()),
            (value, value.to_string().as_str()),
            "{metric}"
        );
    }
    let answer = format!(
        "If enforced: <strong>{}</strong> of {} requests",
        would["requests"], summary["requests"]
    );
    assert!(dom.contains(&answer), "{answer}");

    // Over time: one bar pair per bucket with the JSON's counts.
    let buckets = attributes(&dom, "g");
    let json_buckets = summary["over_time"]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), json_buckets.len());
    for (shown, bucket) in buckets.iter().zip(json_buckets) {
        assert_eq!(shown["data-start"], bucket["start"].as_str().unwrap());
        assert_eq!(shown["data-requests"], bucket["requests"].to_string());
        assert_eq!(shown["data-would-deny"], bucket["would_deny"].to_string());
    }

    // The reasons, versions and platforms, in the JSON's order.
    let bars: Vec<HashMap<String, String>> = attributes(&dom, "div")
        .into_iter()
        .filter(|a| a.get("class").is_some_and(|c| c == "name row"))
        .collect();
    let mut want = Vec::new();
    for key in [
        "by_reason",
        "by_policy_reason",
        "by_app_version",
        "by_platform",
    ] {
        for (name, all, deny) in rows(&summary[key]) {
            want.push((
                name.unwrap_or_else(|| "(none)".to_owned()),
                all.to_string(),
                deny.to_string(),
            ));
        }
    }
    let got: Vec<(String, String, String)> = bars
        .iter()
        .map(|a| {
            (
                a["data-name"].clone(),
                a["data-requests"].clone(),
                a["data-would-deny"].clone(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // The top devices, the script-shaped id among them as text, not as an element.
    let devices: Vec<String> = attributes(&dom, "tr")
        .into_iter()
        .filter_map(|a| a.get("data-device").cloned())
        .collect();
    let json_devices: Vec<String> = summary["top_devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(devices, json_devices);
    assert!(devices.iter().any(|d| d == EVIL), "{devices:?}");
    assert!(dom.contains("<td class=\"device\">&lt;script&gt;alert(1)&lt;/script&gt;</td>"));
    assert!(!dom.contains("<script"), "the page has no script element");

    // A screenshot of the page, for a person to look at.
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build");
    std::fs::create_dir_all(&build).unwrap();
    let png = build.join("report.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        &scratch,
        "shot",
        &[
            "--window-size=1280,2000",
            &format!("--screenshot={}", png.display()),
            &url,
        ],
    );
    let image = std::fs::read(&png).unwrap();
    assert_eq!(&image[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(image[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(image[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 2000));
    assert!(
        image.len() > 30_000,
        "a page of charts, not a blank one ({} bytes)",
        image.len()
    );
}
