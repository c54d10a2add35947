//! What the CLI's tests that run the built filter share: where it is (the harness's one
//! locator, `attestgate_harness::built_filter`).

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(clippy::panic, dead_code)]

use std::path::PathBuf;

/// The built filter; missing it is a failure, never a skip.
pub fn filter_path() -> PathBuf {
    attestgate_harness::built_filter().unwrap_or_else(|| {
        panic!(
            "no built filter at {}: run `make filter`",
            std::env::var("ATTESTGATE_WASM").unwrap_or_else(|_| "build/attestgate.wasm".into())
        )
    })
}

/// The interpreter for `scripts/interop/rfc9421.py` (PyPI `http-message-signatures`):
/// `$ATTESTGATE_PYTHON`, else `.venv/bin/python` at the repository root (`make envoy`
/// installs the package there), else `python3`.
pub fn interop_python() -> PathBuf {
    if let Some(python) = std::env::var_os("ATTESTGATE_PYTHON") {
        return python.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}
