//! A C host: `tests/c/smoke.c` compiled with the system's `cc` against `include/attestgate.h`
//! and the built `libattestgate.so` (`ATTESTGATE_LIB`, default the debug build). The header's
//! struct layouts must be the Rust structs', and the calls must work from C. Feature `e2e`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use attestgate::{
    AttestgateDecision, AttestgateHeader, AttestgateRemoteSource, AttestgateRequest, AttestgateStr,
};

fn library() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = match std::env::var_os("ATTESTGATE_LIB") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| here.join("../target"), PathBuf::from)
            .join("debug/libattestgate.so"),
    };
    std::fs::canonicalize(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: cargo build -p attestgate-native",
            path.display()
        )
    })
}

#[test]
fn a_c_host_sees_the_rust_layout_and_gets_answers() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library();
    let out = std::env::temp_dir().join(format!("attestgate-smoke-{}", std::process::id()));
    let compiled = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(here.join("tests/c/smoke.c"))
        .arg("-I")
        .arg(here.join("include"))
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.parent().unwrap().display()))
        .status()
        .expect("cc (apt-get install gcc)");
    assert!(compiled.success());
    let config = r#"{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="}}"#;
    let run = Command::new(&out).arg(config).output().unwrap();
    let _ = std::fs::remove_file(&out);
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(run.status.success(), "{stdout}");
    let layout: BTreeMap<&str, usize> = stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("size" | "offset"), Some(name), Some(n)) => Some((name, n.parse().ok()?)),
                _ => None,
            }
        })
        .collect();
    let rust: BTreeMap<&str, usize> = [
        ("attestgate_str", size_of::<AttestgateStr>()),
        ("attestgate_header", size_of::<AttestgateHeader>()),
        ("attestgate_request", size_of::<AttestgateRequest>()),
        ("attestgate_decision", size_of::<AttestgateDecision>()),
        (
            "attestgate_request.headers",
            offset_of!(AttestgateRequest, headers),
        ),
        (
            "attestgate_request.headers_len",
            offset_of!(AttestgateRequest, headers_len),
        ),
        (
            "attestgate_request.client_addr",
            offset_of!(AttestgateRequest, client_addr),
        ),
        (
            "attestgate_request.body",
            offset_of!(AttestgateRequest, body),
        ),
        (
            "attestgate_request.has_body",
            offset_of!(AttestgateRequest, has_body),
        ),
        ("attestgate_request.now", offset_of!(AttestgateRequest, now)),
        (
            "attestgate_decision.status",
            offset_of!(AttestgateDecision, status),
        ),
        (
            "attestgate_decision.reason",
            offset_of!(AttestgateDecision, reason),
        ),
        (
            "attestgate_decision.body",
            offset_of!(AttestgateDecision, body),
        ),
        (
            "attestgate_decision.remove",
            offset_of!(AttestgateDecision, remove),
        ),
        (
            "attestgate_decision.set",
            offset_of!(AttestgateDecision, set),
        ),
        (
            "attestgate_decision.set_len",
            offset_of!(AttestgateDecision, set_len),
        ),
        (
            "attestgate_decision.counters",
            offset_of!(AttestgateDecision, counters),
        ),
        (
            "attestgate_decision.counters_len",
            offset_of!(AttestgateDecision, counters_len),
        ),
        (
            "attestgate_decision.record",
            offset_of!(AttestgateDecision, record),
        ),
        (
            "attestgate_decision.record_fields",
            offset_of!(AttestgateDecision, record_fields),
        ),
        (
            "attestgate_decision.record_fields_len",
            offset_of!(AttestgateDecision, record_fields_len),
        ),
        (
            "attestgate_remote_source",
            size_of::<AttestgateRemoteSource>(),
        ),
        (
            "attestgate_remote_source.path",
            offset_of!(AttestgateRemoteSource, path),
        ),
        (
            "attestgate_remote_source.refresh_seconds",
            offset_of!(AttestgateRemoteSource, refresh_seconds),
        ),
        (
            "attestgate_remote_source.timeout_ms",
            offset_of!(AttestgateRemoteSource, timeout_ms),
        ),
        (
            "attestgate_remote_source.max_bytes",
            offset_of!(AttestgateRemoteSource, max_bytes),
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(layout, rust);
    assert!(
        stdout.contains(&format!("version {}\n", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad -4 invalid config: unknown field `modee`"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "decision 0 401 token_missing {\"error\":\"token_missing\",\"reasons\":[\"no token in header `approov-token`\"]}"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("header x-attestgate-reason: token_missing"),
        "{stdout}"
    );
    assert!(
        stdout.contains("counter attestgate.denied\ncounter attestgate.denied.token_missing\n"),
        "{stdout}"
    );
    // The decision record, as JSON and as its text fields in DecisionRecord::FIELDS order.
    let record = stdout
        .lines()
        .find_map(|l| l.strip_prefix("record "))
        .expect("a record line");
    let record: serde_json::Value = serde_json::from_str(record).unwrap();
    assert_eq!(
        (&record["verdict"], &record["reason"], &record["status"]),
        (&"deny".into(), &"token_missing".into(), &401.into()),
        "{record}"
    );
    assert_eq!(record["device"], serde_json::Value::Null);
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("field "))
        .filter_map(|l| l.split_once('=').map(|(n, _)| n))
        .collect();
    assert_eq!(
        names,
        attestgate_policy::record::DecisionRecord::<&str>::FIELDS
    );
    assert!(stdout.contains("field reason=token_missing\n"), "{stdout}");
    assert!(stdout.contains("field device=\n"), "{stdout}");
}
