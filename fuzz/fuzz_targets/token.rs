#![no_main]
//! Fuzz target `token`: see `fuzz/src/lib.rs` for the input format and the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| attestgate_fuzz::token(data));
