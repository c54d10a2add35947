//! The shipped Rego policies: their own `test_` rules, run with regorus, the way `opa test`
//! would run them.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

#[test]
fn rego_unit_tests_pass() {
    let mut engine = regorus::Engine::new();
    let mut tests = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rego"))
        .collect();
    files.sort();
    for path in &files {
        let source = std::fs::read_to_string(path).unwrap();
        let package = engine
            .add_policy(path.display().to_string(), source.clone())
            .unwrap();
        // Test rules are top-level `test_*` rules, OPA's convention.
        for line in source.lines() {
            let name: String = line
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name.starts_with("test_") && !tests.contains(&format!("{package}.{name}")) {
                tests.push(format!("{package}.{name}"));
            }
        }
    }
    let failed: Vec<_> = tests
        .iter()
        .filter(|rule| engine.eval_rule((*rule).clone()).ok() != Some(regorus::Value::Bool(true)))
        .collect();
    println!(
        "rego: {} passed, {} failed",
        tests.len() - failed.len(),
        failed.len()
    );
    assert!(tests.len() >= 20, "only {} rego tests found", tests.len());
    assert!(failed.is_empty(), "failing rego tests: {failed:?}");
}
