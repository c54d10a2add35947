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
