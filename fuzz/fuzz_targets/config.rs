//! libFuzzer target: `Config::parse` on arbitrary text. The body and its invariants are
//! in `src/lib.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camhub_fuzz::config(data));
