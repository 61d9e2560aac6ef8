//! Arbitrary `Cookie` headers against the clearance check (see `check_cookie`).
#![no_main]

include!("../checks.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| check_cookie(data));
