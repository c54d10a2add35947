#![no_main]
//! Fuzz target `policy_plan`: see `fuzz/src/lib.rs` for the input format and the invariants.

libfuzzer_sys::fuzz_target!(|data: &[u8]| attestgate_fuzz::policy_plan(data));
