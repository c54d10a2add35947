//! The attestgate test harness: a proxy-wasm host on wasmtime that runs the built filter,
//! and the pieces the `attestgate` CLI and the cross-runner tests share.
//!
//! - [`host`]: the host, with Envoy and Kong profiles, and a Rust API to script requests.
//! - [`observe`]: reading a decision off what a gateway did, to compare runners.

pub mod host;
pub mod observe;
