//! The shipped Rego policies: their own `test_` rules, run with regorus, the way `opa test`
//! would run them (`attestgate test policies/` runs the same).

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

/// Every .rego file under `dir`, examples included.
fn rego_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rego_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rego") {
            files.push(path);
        }
    }
}

#[test]
fn rego_unit_tests_pass() {
    let mut files = Vec::new();
    rego_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        &mut files,
    );
    files.sort();
    let modules: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            (
                path.display().to_string(),
                std::fs::read_to_string(path).unwrap(),
            )
        })
        .collect();
    let results = attestgate_policy::run_rego_tests(&modules).unwrap();
    let failed: Vec<_> = results.iter().filter(|t| !t.passed).collect();
    println!(
        "rego: {} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    assert!(
        results.len() >= 100,
        "only {} rego tests found",
        results.len()
    );
    assert!(failed.is_empty(), "failing rego tests: {failed:?}");
    // Every shipped test also ran on the compiled plan, which agreed (else it failed above).
    let interpreted: Vec<_> = results
        .iter()
        .filter_map(|t| {
            t.interpreted_only
                .as_ref()
                .map(|why| format!("{}: {why}", t.name))
        })
        .collect();
    assert!(
        interpreted.is_empty(),
        "tests without a plan: {interpreted:#?}"
    );
}

#[test]
fn a_failing_rego_test_is_reported() {
    let results = attestgate_policy::run_rego_tests(&[(
        "t.rego".into(),
        "package t\ntest_ok if true\ntest_broken if 1 == 2\n".into(),
    )])
    .unwrap();
    let outcome: Vec<_> = results
        .iter()
        .map(|t| (t.name.as_str(), t.passed))
        .collect();
    assert_eq!(
        outcome,
        [("data.t.test_ok", true), ("data.t.test_broken", false)]
    );
}
