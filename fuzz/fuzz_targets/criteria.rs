//! Arbitrary bytes into the criteria parser (see `check_criteria`).
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_criteria(data));
