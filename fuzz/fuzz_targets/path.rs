//! Arbitrary bytes as a request path into the normaliser (see `check_path`).
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_path(data));
