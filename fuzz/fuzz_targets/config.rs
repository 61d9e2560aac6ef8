//! Arbitrary bytes into the configuration loader (see `check_config` in checks.rs).
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_config(data));
