//! Arbitrary bytes as an access log, read as combined, JSON and either (see `check_access_log`).
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_access_log(data));
