//! The report as plain aligned text, for a terminal.

use std::fmt::Write as _;

use super::{Breakdown, Summary};

/// Width of the bars over time.
const BAR: u64 = 40;

/// The whole report as text.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let lines = &summary.lines;
    let period = match (&summary.period.first, &summary.period.last) {
        (Some(first), Some(last)) => format!(" from {first} to {last}"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "attestgate report: {} decisions{period}",
        lines.decisions
    );
    let mut skipped = Vec::new();
    for (count, what) in [
        (lines.not_json, "not JSON".to_owned()),
        (lines.no_record, "without a decision record".to_owned()),
        (lines.bad_time, "without an RFC 3339 time".to_owned()),
        (
            lines.too_long,
            format!("over {} bytes", summary.limits.max_line_bytes),
        ),
    ] {
        if count > 0 {
            skipped.push(format!("{count} {what}"));
        }
    }
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!(" ({})", skipped.join(", "))
    };
    let _ = write!(
        out,
        "lines: {} read, {} skipped{skipped}",
        lines.read,
        lines.skipped()
    );
    if summary.period.since.is_some() || summary.period.until.is_some() {
        let _ = write!(
            out,
            ", {} outside {} .. {}",
            lines.outside_period,
            summary.period.since.as_deref().unwrap_or("the start"),
            summary.period.until.as_deref().unwrap_or("the end"),
        );
    }
    out.push_str("\n\n");

    let would = &summary.would_deny;
    let _ = writeln!(
        out,
        "If enforced: {} of {} requests ({}) would be denied, from {} of {} devices ({})",
        would.requests,
        summary.requests,
        percent(would.requests, summary.requests),
        devices(would.devices.count, would.devices.more),
        devices(summary.devices.count, summary.devices.more),
        percent(would.devices.count, summary.devices.count),
    );
    out.push_str(&table(
        &["", "requests"],
        "lr",
        &[
            vec![
                "  already refused (enforced)".to_owned(),
                would.refused.to_string(),
            ],
            vec![
                "  let through (monitored)".to_owned(),
                would.monitored.to_string(),
            ],
            vec![
                "  without a verified device".to_owned(),
                would.requests_without_device.to_string(),
            ],
        ],
        false,
    ));
    out.push('\n');

    section(&mut out, "by mode", &summary.by_mode, true);
    section(
        &mut out,
        "would deny by gate reason",
        &summary.by_reason,
        false,
    );
    if !summary.by_policy_reason.rows.is_empty() {
        section(
            &mut out,
            "would deny by policy reason",
            &summary.by_policy_reason,
            false,
        );
        if summary.policy_reasons_dropped > 0 {
            let _ = writeln!(
                out,
                "({} more policy reasons were not kept in the records)\n",
                summary.policy_reasons_dropped
            );
        }
    }
    section(&mut out, "by app version", &summary.by_app_version, true);
    section(&mut out, "by platform", &summary.by_platform, true);

    let time = &summary.over_time;
    let widened = if time.widened {
        ", widened: too many buckets"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "over time (bucket {}{widened}; = allowed, # would deny)",
        time.bucket
    );
    let most = time.buckets.iter().map(|b| b.requests).max().unwrap_or(0);
    let rows: Vec<Vec<String>> = time
        .buckets
        .iter()
        .map(|b| {
            let deny = scaled(b.would_deny, most);
            let all = scaled(b.requests, most).max(deny);
            let bar = format!(
                "{}{}",
                "=".repeat(usize::try_from(all - deny).unwrap_or(0)),
                "#".repeat(usize::try_from(deny).unwrap_or(0))
            );
            vec![
                b.start.clone(),
                b.requests.to_string(),
                b.would_deny.to_string(),
                bar,
            ]
        })
        .collect();
    out.push_str(&table(
        &["start", "requests", "would deny", ""],
        "lrrl",
        &rows,
        true,
    ));
    out.push('\n');

    let _ = writeln!(out, "top devices by would-deny");
    if summary.top_devices.is_empty() {
        out.push_str("(none)\n");
    } else {
        let rows: Vec<Vec<String>> = summary
            .top_devices
            .iter()
            .map(|d| {
                vec![
                    clean(&d.device),
                    d.would_deny.to_string(),
                    d.requests.to_string(),
                    clean(d.platform.as_deref().unwrap_or("-")),
                    clean(d.app_version.as_deref().unwrap_or("-")),
                    clean(&d.reasons.join(",")),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "device",
                "would deny",
                "requests",
                "platform",
                "app version",
                "reasons",
            ],
            "lrrlll",
            &rows,
            true,
        ));
    }
    out
}

/// One breakdown: each value with its requests (with `requests`) and would-be denials.
fn section(out: &mut String, title: &str, breakdown: &Breakdown, requests: bool) {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut push = |name: String, all: u64, deny: u64| {
        if requests {
            rows.push(vec![
                name,
                all.to_string(),
                deny.to_string(),
                percent(deny, all),
            ]);
        } else {
            rows.push(vec![name, deny.to_string()]);
        }
    };
    for row in &breakdown.rows {
        let name = row
            .name
            .as_deref()
            .map_or_else(|| "(none)".to_owned(), clean);
        push(name, row.requests, row.would_deny);
    }
    if let Some(more) = breakdown.more {
        push("(more)".to_owned(), more.requests, more.would_deny);
    }
    let headers: &[&str] = if requests {
        &[title, "requests", "would deny", "%"]
    } else {
        &[title, "would deny"]
    };
    if rows.is_empty() {
        let _ = writeln!(out, "{title}\n(none)\n");
        return;
    }
    out.push_str(&table(headers, "lrrr", &rows, true));
    out.push('\n');
}

/// Aligned columns, each as `align` says (`l` left, `r` right); a header line if `header`.
fn table(headers: &[&str], align: &str, rows: &[Vec<String>], header: bool) -> String {
    let right: Vec<bool> = align.chars().map(|c| c == 'r').collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.zip(&widths).enumerate() {
            let pad = width.saturating_sub(cell.chars().count());
            if i > 0 {
                text.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    if header {
        line(&mut headers.iter().copied());
    }
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn scaled(value: u64, most: u64) -> u64 {
    if most == 0 {
        0
    } else {
        (value * BAR).div_ceil(most)
    }
}

/// `part` of `whole` as a percentage with one decimal.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".to_owned();
    }
    #[allow(clippy::cast_precision_loss)]
    let share = part as f64 * 100.0 / whole as f64;
    format!("{share:.1}%")
}

fn devices(count: u64, more: bool) -> String {
    if more {
        format!("more than {count}")
    } else {
        count.to_string()
    }
}

/// Text from the logs with its control characters escaped, so a device id cannot move the
/// cursor or recolour the terminal.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
