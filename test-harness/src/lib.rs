//! The attestgate test harness: a proxy-wasm host on wasmtime that runs the built filter,
//! and the pieces the `attestgate` CLI's `check --wasm` and the cross-runner tests share.
//!
//! - [`host`]: the host, with Envoy and Kong profiles, and a Rust API to script requests.
//! - [`observe`]: reading a decision off what a gateway did, to compare runners.
//! - [`built_filter`]: where the built filter is, for every test that runs it.

pub mod host;
pub mod observe;

use std::path::{Path, PathBuf};

/// The built filter: the file `ATTESTGATE_WASM` names, else the repository's
/// `build/attestgate.wasm` (`make filter`). `None` when it is not there.
///
/// ```
/// if let Some(path) = attestgate_harness::built_filter() {
///     assert!(path.ends_with("attestgate.wasm") || std::env::var_os("ATTESTGATE_WASM").is_some());
/// }
/// ```
pub fn built_filter() -> Option<PathBuf> {
    let path = std::env::var_os("ATTESTGATE_WASM").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/attestgate.wasm"),
        PathBuf::from,
    );
    path.canonicalize().ok()
}
