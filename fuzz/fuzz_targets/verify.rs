//! Arbitrary verify-endpoint bodies (see `check_verify`).
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_verify(data));
