//! libFuzzer target: the HTTP-MJPEG body parsers (chunked coding + multipart), fed in
//! fuzzer-chosen reads. The body and its invariants are in `src/lib.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| camhub_fuzz::multipart(data));
