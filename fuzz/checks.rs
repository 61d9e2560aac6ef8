// The properties every fuzz target checks, one function per parser. Included (`include!`) by the cargo-fuzz
// targets in `fuzz_targets/` and by `crates/e2e/tests/fuzz_corpus.rs`, which runs the committed corpora through
// the same functions in the normal test suite, so the inputs keep being checked where no nightly toolchain is.

/// The configuration loader: never panics; a configuration it accepts is written back to TOML that loads again.
pub fn check_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = edgeguard_config::parse(&text) {
        let again = edgeguard_config::to_toml(&cfg);
        edgeguard_config::parse(&again)
            .unwrap_or_else(|e| panic!("accepted, written back, refused: {e}\n{again}"));
    }
}

/// The access-log line readers (combined, JSON, either): never panic, every line is counted once.
pub fn check_access_log(data: &[u8]) {
    for format in [
        edgeguard_store::LogFormat::Combined,
        edgeguard_store::LogFormat::Json,
        edgeguard_store::LogFormat::Auto,
    ] {
        let mut reader = edgeguard_store::LogReader::new(std::io::Cursor::new(data), format);
        let mut parsed = 0u64;
        while let Ok(Some(_)) = reader.next_line() {
            parsed += 1;
        }
        assert!(parsed <= reader.stats().lines);
    }
}

/// The path normaliser: never panics; its output starts with `/`, has no `//`, no dot segment, and is a fixed
/// point (normalising it again changes nothing).
pub fn check_path(data: &[u8]) {
    let mut out = edgeguard_protect::path::PathBytes::new();
    let valid = edgeguard_protect::path::push_normalized_path(data, &mut out);
    if valid && !out.contains(&b'%') {
        assert!(out.first() == Some(&b'/'), "{out:?}");
        assert!(!out.windows(2).any(|w| w == b"//"), "{out:?}");
        assert!(
            !out.split(|b| *b == b'/').any(|s| s == b"." || s == b".."),
            "{out:?}"
        );
        let mut again = edgeguard_protect::path::PathBytes::new();
        assert!(edgeguard_protect::path::push_normalized_path(&out, &mut again));
        assert_eq!(out, again);
    }
}

fn challenger() -> edgeguard_challenge::Challenger {
    edgeguard_challenge::Challenger::from_key([7; 32])
}

const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
const NOW_MS: u64 = 1_800_000_000_000;

/// The clearance cookie in `Cookie` headers (one header per line of the input): never panics, and never accepts
/// what this node did not sign.
pub fn check_cookie(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let c = challenger();
    assert!(
        c.check_clearance_headers(text.lines(), CLIENT, "a.test", NOW_MS)
            .is_err(),
        "a forged clearance was accepted: {text:?}"
    );
}

/// The challenge answer (the verify endpoint's form body): never panics, refuses every forgery with 400 or 403.
pub fn check_verify(data: &[u8]) {
    let r = challenger().handle_verify(data, CLIENT, "a.test", NOW_MS, false);
    assert!(r.status == 400 || r.status == 403, "{}", r.status);
    assert!(r.set_cookie.is_none());
}

/// The criteria language: never panics; what it accepts prints back to text that parses to the same tree.
pub fn check_criteria(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(criteria) = edgeguard_rules::Criteria::parse(&text) {
        let printed = criteria.to_string();
        // The canonical form adds spaces around `&&`/`||`, so it may outgrow the length limit the input met.
        if printed.chars().count() <= edgeguard_rules::criteria::MAX_CRITERIA_LEN {
            assert_eq!(
                edgeguard_rules::Criteria::parse(&printed).as_ref(),
                Ok(&criteria),
                "{printed}"
            );
        }
        let _ = criteria.tracked();
    }
}
