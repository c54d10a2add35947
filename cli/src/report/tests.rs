use std::io::BufReader;

use serde_json::{json, Value};

use super::*;

/// A record as hosts write it.
#[allow(clippy::too_many_arguments)]
fn record(
    verdict: &str,
    allowed: bool,
    mode: &str,
    reason: &str,
    policy_reasons: &[&str],
    device: Option<&str>,
    platform: Option<&str>,
    version: Option<&str>,
) -> Value {
    json!({
        "verdict": verdict, "allowed": allowed, "mode": mode,
        "status": if allowed { 200 } else { 403 }, "reason": reason,
        "policy_reasons": policy_reasons, "policy_reasons_dropped": 0, "rule": null,
        "device": device, "platform": platform, "app_version": version, "cache": "miss",
    })
}

fn good(device: &str) -> Value {
    record(
        "allow",
        true,
        "monitor",
        "allowed",
        &[],
        Some(device),
        Some("android"),
        Some("2.4.0"),
    )
}

fn rooted(device: &str, mode: &str) -> Value {
    record(
        "deny",
        mode != "enforce",
        mode,
        "policy_denied",
        &["device_rooted", "hooking_detected"],
        Some(device),
        Some("android"),
        Some("2.3.0"),
    )
}

fn missing() -> Value {
    record(
        "deny",
        true,
        "monitor",
        "token_missing",
        &[],
        None,
        None,
        None,
    )
}

/// An Envoy-style line: the record as an object.
fn line(time: &str, record: &Value) -> String {
    json!({"time": time, "method": "GET", "attestgate": record}).to_string()
}

fn summary_of(lines: &[String], options: Options) -> Summary {
    let mut aggregator = Aggregator::new(options);
    for line in lines {
        aggregator.line(line);
    }
    aggregator.summary()
}

fn options() -> Options {
    Options {
        top: 10,
        ..Options::default()
    }
}

fn row<'a>(breakdown: &'a Breakdown, name: Option<&str>) -> &'a Row {
    breakdown
        .rows
        .iter()
        .find(|r| r.name.as_deref() == name)
        .unwrap_or_else(|| panic!("no row {name:?} in {breakdown:?}"))
}

#[test]
fn every_line_format_of_the_contract_reads() {
    let deny = rooted("d1", "monitor");
    let lines = [
        // Envoy: the record as an object, %START_TIME% with milliseconds.
        line("2026-12-07T01:54:10.123Z", &deny),
        // Envoy with only a string: the record's JSON in a string.
        json!({"time": "2026-12-07T01:54:11.000Z", "attestgate": deny.to_string()}).to_string(),
        // NGINX: $time_iso8601, an offset instead of Z; another offset, the same instant.
        line("2026-12-07T01:54:12+00:00", &deny),
        line("2026-12-07T03:54:13+02:00", &deny),
        // The Worker under wrangler / workerd: a prefix before the JSON object.
        format!(
            "[wrangler:inf] {}",
            line("2026-12-07T01:54:14.500Z", &good("d2"))
        ),
        format!(
            "2026-12-07 01:54:15.000 info: {}",
            line("2026-12-07T01:54:15.000Z", &good("d3"))
        ),
    ];
    let summary = summary_of(&lines, options());
    assert_eq!(summary.lines.read, 6);
    assert_eq!(summary.lines.decisions, 6, "{:?}", summary.lines);
    assert_eq!(summary.lines.skipped(), 0);
    assert_eq!(summary.requests, 6);
    assert_eq!(summary.would_deny.requests, 4);
    assert_eq!(
        summary.period.first.as_deref(),
        Some("2026-12-07T01:54:10.123Z")
    );
    assert_eq!(summary.period.last.as_deref(), Some("2026-12-07T01:54:15Z"));
    // One-second buckets over six seconds; 01:54:13+02:00 fell in 01:54:13Z.
    let per_second: Vec<u64> = summary
        .over_time
        .buckets
        .iter()
        .map(|b| b.requests)
        .collect();
    assert_eq!(summary.over_time.bucket_seconds, 1);
    assert_eq!(per_second, [1, 1, 1, 1, 1, 1]);
    assert_eq!(
        summary.over_time.buckets[3].start, "2026-12-07T01:54:13Z",
        "the +02:00 time is the same instant"
    );
}

/// Kong's log serializer (what file-log writes) has no `time`: `started_at` in milliseconds,
/// and the record as an object; NGINX writes `""` for a request the gate did not decide.
#[test]
fn kong_lines_read_by_started_at_and_empty_records_are_skipped() {
    let deny = rooted("d1", "monitor");
    let kong = json!({"started_at": 1_796_608_450_123_i64, "attestgate": deny,
                      "request": {"method": "GET"}})
    .to_string();
    let undecided = json!({"time": "2026-12-07T01:54:10Z", "attestgate": ""}).to_string();
    let summary = summary_of(&[kong, undecided], options());
    assert_eq!(summary.lines.decisions, 1, "{:?}", summary.lines);
    assert_eq!(summary.lines.no_record, 1);
    assert_eq!(summary.would_deny.requests, 1);
    assert_eq!(
        summary.period.first.as_deref(),
        Some("2026-12-07T01:54:10.123Z")
    );
}

#[test]
fn garbage_lines_are_skipped_and_counted_by_why() {
    let ok = line("2026-12-07T01:00:00Z", &good("d1"));
    let lines = [
        ok.clone(),
        "not json at all".to_owned(),
        "{ broken".to_owned(),
        "[1, 2, 3]".to_owned(),
        "\"a string\"".to_owned(),
        json!({"time": "2026-12-07T01:00:00Z", "status": 200}).to_string(),
        json!({"time": "2026-12-07T01:00:00Z", "attestgate": "-"}).to_string(),
        json!({"time": "2026-12-07T01:00:00Z", "attestgate": {"verdict": "deny"}}).to_string(),
        json!({"time": "2026-12-07T01:00:00Z", "attestgate": 7}).to_string(),
        json!({"attestgate": good("d1")}).to_string(),
        json!({"time": "yesterday", "attestgate": good("d1")}).to_string(),
        json!({"time": 1_700_000_000, "attestgate": good("d1")}).to_string(),
        String::new(),
        "   ".to_owned(),
    ];
    let summary = summary_of(&lines, options());
    assert_eq!(
        summary.lines,
        LineCounts {
            read: 12,
            decisions: 1,
            outside_period: 0,
            not_json: 4,
            no_record: 4,
            bad_time: 3,
            too_long: 0,
        }
    );
    assert_eq!(summary.requests, 1);
}

#[test]
fn a_line_over_the_cap_is_skipped_without_holding_it_and_the_next_still_reads() {
    let limits = Limits {
        max_line_bytes: 400,
        ..Limits::default()
    };
    let short = line("2026-12-07T01:00:00Z", &good("d1"));
    assert!(short.len() < 400);
    let long_device = "x".repeat(2_000);
    let long = line("2026-12-07T01:00:01Z", &good(&long_device));
    // Exactly at the cap reads; one byte over does not (padding after the object is ignored).
    let at_cap = format!("{short}{}", " ".repeat(400 - short.len()));
    let over_cap = format!("{at_cap} ");
    let input = format!("{short}\n{long}\n{at_cap}\r\n{over_cap}\n{short}");
    // A small buffer, so lines arrive in many pieces.
    let mut reader = BufReader::with_capacity(16, input.as_bytes());
    let mut aggregator = Aggregator::new(Options {
        limits,
        ..options()
    });
    aggregator.read(&mut reader).unwrap();
    let summary = aggregator.summary();
    assert_eq!(summary.lines.read, 5);
    assert_eq!(summary.lines.too_long, 2);
    assert_eq!(summary.lines.decisions, 3);
    assert_eq!(
        summary.devices.count, 1,
        "the long device id was never tracked"
    );
}

#[test]
fn line_reading_holds_no_more_than_the_cap() {
    let mut reader = BufReader::with_capacity(8, "abcdefghijklmnop\nxy\n\nz".as_bytes());
    let mut line = Vec::new();
    let mut seen = Vec::new();
    while let Some(too_long) = read_line_capped(&mut reader, &mut line, 10).unwrap() {
        assert!(line.len() <= 11);
        seen.push((too_long, String::from_utf8(line.clone()).unwrap()));
    }
    assert_eq!(
        seen,
        [
            (true, String::new()),
            (false, "xy".to_owned()),
            (false, String::new()),
            (false, "z".to_owned()),
        ]
    );
}

#[test]
fn the_breakdowns_count_would_be_denials_whether_monitored_or_enforced() {
    let t = "2026-12-07T01:00:00Z";
    let lines = [
        line(t, &good("good-1")),
        line(t, &good("good-1")),
        line(t, &good("good-2")),
        line(t, &rooted("rooted-1", "monitor")),
        line(t, &rooted("rooted-1", "monitor")),
        line(t, &rooted("rooted-1", "enforce")),
        line(t, &rooted("rooted-2", "enforce")),
        line(t, &missing()),
        line(
            t,
            &record(
                "deny",
                true,
                "monitor",
                "token_expired",
                &[],
                Some("good-2"),
                Some("ios"),
                None,
            ),
        ),
        line(
            t,
            &record("allow", true, "bypass", "bypass", &[], None, None, None),
        ),
    ];
    let summary = summary_of(&lines, options());
    assert_eq!(summary.requests, 10);
    assert_eq!(summary.devices.count, 4);
    assert!(!summary.devices.more);
    assert_eq!(summary.requests_without_device, 2);
    let would = summary.would_deny;
    assert_eq!(would.requests, 6);
    assert_eq!(
        would.devices.count, 3,
        "rooted-1, rooted-2, good-2 (expired once)"
    );
    assert_eq!((would.refused, would.monitored), (2, 4));
    assert_eq!(would.requests_without_device, 1);

    let reasons: Vec<(Option<&str>, u64)> = summary
        .by_reason
        .rows
        .iter()
        .map(|r| (r.name.as_deref(), r.would_deny))
        .collect();
    assert_eq!(
        reasons,
        [
            (Some("policy_denied"), 4),
            (Some("token_expired"), 1),
            (Some("token_missing"), 1)
        ]
    );
    assert_eq!(
        row(&summary.by_policy_reason, Some("device_rooted")).would_deny,
        4
    );
    assert_eq!(
        row(&summary.by_policy_reason, Some("hooking_detected")).would_deny,
        4
    );
    let old = row(&summary.by_app_version, Some("2.3.0"));
    assert_eq!((old.requests, old.would_deny), (4, 4));
    let new = row(&summary.by_app_version, Some("2.4.0"));
    assert_eq!((new.requests, new.would_deny), (3, 0));
    let none = row(&summary.by_app_version, None);
    assert_eq!((none.requests, none.would_deny), (3, 2));
    let android = row(&summary.by_platform, Some("android"));
    assert_eq!((android.requests, android.would_deny), (7, 4));
    let monitor = row(&summary.by_mode, Some("monitor"));
    assert_eq!((monitor.requests, monitor.would_deny), (7, 4));
    let enforce = row(&summary.by_mode, Some("enforce"));
    assert_eq!((enforce.requests, enforce.would_deny), (2, 2));
    assert_eq!(row(&summary.by_mode, Some("bypass")).requests, 1);

    let top: Vec<(&str, u64, u64)> = summary
        .top_devices
        .iter()
        .map(|d| (d.device.as_str(), d.would_deny, d.requests))
        .collect();
    assert_eq!(
        top,
        [("rooted-1", 3, 3), ("good-2", 1, 2), ("rooted-2", 1, 1)]
    );
    assert_eq!(
        summary.top_devices[0].reasons,
        ["device_rooted", "hooking_detected"]
    );
    assert_eq!(summary.top_devices[1].reasons, ["token_expired"]);
    assert_eq!(
        summary.top_devices[1].platform.as_deref(),
        Some("ios"),
        "the last platform seen"
    );

    let top_one = summary_of(
        &lines,
        Options {
            top: 1,
            ..options()
        },
    );
    assert_eq!(top_one.top_devices.len(), 1);
}

#[test]
fn since_and_until_bound_the_period() {
    let lines: Vec<String> = (0..6)
        .map(|h| line(&format!("2026-12-07T0{h}:30:00Z"), &rooted("d", "monitor")))
        .collect();
    let summary = summary_of(
        &lines,
        Options {
            since_ms: Some(parse_time("2026-12-07T02:30:00Z").unwrap()),
            until_ms: Some(parse_time("2026-12-07T05:30:00+00:00").unwrap()),
            ..options()
        },
    );
    assert_eq!(summary.requests, 3, "02:30 in, 05:30 out");
    assert_eq!(summary.lines.outside_period, 3);
    assert_eq!(
        summary.period.first.as_deref(),
        Some("2026-12-07T02:30:00Z")
    );
}

#[test]
fn buckets_fill_the_span_and_an_automatic_width_keeps_them_few() {
    // Two days of decisions, one every 13 minutes, would-deny every third.
    let lines: Vec<String> = (0..221)
        .map(|i| {
            let time = 1_796_601_600 + i * 13 * 60; // 2026-12-07T00:00:00Z
            let time = rfc3339(time * 1000);
            if i % 3 == 0 {
                line(&time, &rooted("d", "monitor"))
            } else {
                line(&time, &good("g"))
            }
        })
        .collect();
    let auto = summary_of(&lines, options());
    assert_eq!(auto.over_time.bucket, "1h");
    assert_eq!(auto.over_time.buckets.len(), 48);
    assert_eq!(auto.over_time.buckets[0].start, "2026-12-07T00:00:00Z");
    let sum: u64 = auto.over_time.buckets.iter().map(|b| b.requests).sum();
    let deny: u64 = auto.over_time.buckets.iter().map(|b| b.would_deny).sum();
    assert_eq!((sum, deny), (auto.requests, auto.would_deny.requests));

    let given = summary_of(
        &lines,
        Options {
            bucket_seconds: Some(parse_duration("10m").unwrap()),
            ..options()
        },
    );
    assert_eq!(given.over_time.bucket_seconds, 600);
    // The last decision is at 220 × 13 minutes.
    assert_eq!(given.over_time.buckets.len(), 220 * 13 / 10 + 1);
    assert!(!given.over_time.widened);
    // Some 10-minute buckets are empty (one decision per 13 minutes): shown as zero.
    assert!(given.over_time.buckets.iter().any(|b| b.requests == 0));

    // Few buckets held while reading: they widen, and say so.
    let tight = summary_of(
        &lines,
        Options {
            bucket_seconds: Some(60),
            limits: Limits {
                max_buckets: 50,
                ..Limits::default()
            },
            ..options()
        },
    );
    assert!(tight.over_time.widened);
    assert!(tight.over_time.bucket_seconds >= 3600);
    let sum: u64 = tight.over_time.buckets.iter().map(|b| b.requests).sum();
    assert_eq!(sum, tight.requests);
}

#[test]
fn the_tracked_devices_and_values_are_bounded() {
    let limits = Limits {
        max_tracked: 3,
        ..Limits::default()
    };
    let lines: Vec<String> = (0..10)
        .map(|i| {
            let version = format!("1.{i}");
            line(
                "2026-12-07T01:00:00Z",
                &record(
                    "deny",
                    true,
                    "monitor",
                    "policy_denied",
                    &["old"],
                    Some(&format!("device-{i}")),
                    None,
                    Some(&version),
                ),
            )
        })
        .collect();
    let summary = summary_of(
        &lines,
        Options {
            limits,
            ..options()
        },
    );
    assert_eq!(summary.requests, 10);
    assert_eq!(summary.devices.count, 3);
    assert!(summary.devices.more && summary.would_deny.devices.more);
    assert_eq!(summary.by_app_version.rows.len(), 3);
    let more = summary.by_app_version.more.unwrap();
    assert_eq!((more.requests, more.would_deny), (7, 7));
    let text = text::render(&summary);
    assert!(
        text.contains("from more than 3 of more than 3 devices"),
        "{text}"
    );
    assert!(text.contains("(more)"), "{text}");
}

#[test]
fn durations_and_times_parse_strictly() {
    assert_eq!(parse_duration("90").unwrap(), 90);
    assert_eq!(parse_duration("10m").unwrap(), 600);
    assert_eq!(parse_duration("1h").unwrap(), 3600);
    assert_eq!(parse_duration("2d").unwrap(), 172_800);
    for bad in ["", "0m", "-1h", "1y", "h", "1.5h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert_eq!(duration_text(3600), "1h");
    assert_eq!(duration_text(90), "90s");
    assert_eq!(
        parse_time("2026-12-07T01:54:10+00:00").unwrap(),
        parse_time("2026-12-07T01:54:10Z").unwrap()
    );
    assert!(parse_time("2026-12-07").is_err());
}

#[test]
fn strings_from_the_logs_are_escaped_in_the_page_and_the_terminal() {
    let evil = "<script>alert(1)</script>\"'&";
    let lines = [line(
        "2026-12-07T01:00:00Z",
        &record(
            "deny",
            true,
            "monitor",
            "policy_denied",
            &["<b>bold</b>"],
            Some(evil),
            Some("<img src=x onerror=alert(2)>"),
            Some("\u{1b}[31mred"),
        ),
    )];
    let summary = summary_of(&lines, options());
    let page = html::render(&summary);
    assert!(!page.contains("<script"), "{page}");
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("<b>bold"), "{page}");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    assert!(!page.contains('\u{1b}'));
    let text = text::render(&summary);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("\\u{1b}[31mred"), "{text}");
}

#[test]
fn the_page_is_self_contained() {
    let summary = summary_of(&[line("2026-12-07T01:00:00Z", &good("d"))], options());
    let page = html::render(&summary);
    for external in ["http://", "https://", "<script", "<link", "@import", "url("] {
        assert!(!page.contains(external), "{external}");
    }
    assert!(page.contains("<svg"));
    assert!(page.contains("default-src 'none'"));
}

#[test]
fn counts_are_written_with_separators() {
    assert_eq!(html::num(0), "0");
    assert_eq!(html::num(999), "999");
    assert_eq!(html::num(1000), "1,000");
    assert_eq!(html::num(1_234_567), "1,234,567");
}

#[test]
fn tracked_values_are_held_at_the_records_bound() {
    let long = "é".repeat(1000);
    let deny = record(
        "deny",
        true,
        "monitor",
        &long,
        &[long.as_str()],
        Some(&long),
        Some(&long),
        Some(&long),
    );
    let summary = summary_of(&[line("2026-12-07T01:00:00Z", &deny)], options());
    let held = [
        summary.top_devices[0].device.clone(),
        summary.top_devices[0].reasons[0].clone(),
        summary.by_reason.rows[0].name.clone().unwrap(),
        summary.by_policy_reason.rows[0].name.clone().unwrap(),
        summary.by_app_version.rows[0].name.clone().unwrap(),
        summary.by_platform.rows[0].name.clone().unwrap(),
    ];
    for value in held {
        assert!(
            value.len() <= MAX_VALUE_BYTES && value.len() > MAX_VALUE_BYTES - 2,
            "{}",
            value.len()
        );
        assert!(long.starts_with(&value));
    }
}
