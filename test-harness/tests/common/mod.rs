//! What the tests that run the built filter share: where it is, and the filter compiled once
//! per profile for a test binary.

// Tests fail by panicking; the no-panic lints guard the shipped code.
#![allow(clippy::unwrap_used, clippy::panic, dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use attestgate_harness::host::{Host, HostOptions, Profile};

/// The built filter: the file `ATTESTGATE_WASM` names, else `build/attestgate.wasm` (`make
/// filter`). Missing it is a failure, never a skip. Every test that runs the built filter
/// finds it here.
pub fn filter_path() -> PathBuf {
    attestgate_harness::built_filter().unwrap_or_else(|| {
        panic!(
            "no built filter at {}: run `make filter`",
            std::env::var("ATTESTGATE_WASM").unwrap_or_else(|_| "build/attestgate.wasm".into())
        )
    })
}

/// The filter compiled once per profile for this test binary; every test gets its own VM.
pub fn filter(profile: Profile) -> &'static Host {
    static ENVOY: OnceLock<Host> = OnceLock::new();
    static KONG: OnceLock<Host> = OnceLock::new();
    let cell = match profile {
        Profile::Envoy => &ENVOY,
        Profile::Kong => &KONG,
    };
    cell.get_or_init(|| Host::from_file(filter_path(), HostOptions::new(profile)).unwrap())
}
