//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`) through the same properties the targets check
//! (`fuzz/checks.rs`), so every input a fuzzing run kept is checked by the normal suite too, nightly toolchain
//! or not; plus random bytes through each, as a short fuzzing run of its own.

use proptest::prelude::*;

include!("../../../fuzz/checks.rs");

/// A target's name (its corpus folder) and the property it checks.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 6] = [
    ("config", check_config),
    ("access_log", check_access_log),
    ("path", check_path),
    ("cookie", check_cookie),
    ("verify", check_verify),
    ("criteria", check_criteria),
];

#[test]
fn every_corpus_input_holds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    for (target, check) in TARGETS {
        let dir = root.join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            n += 1;
        }
        assert!(n > 0, "{target}: empty corpus");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn random_bytes_hold(data in proptest::collection::vec(any::<u8>(), 0..512), which in 0usize..6) {
        (TARGETS[which].1)(&data);
    }

    #[test]
    fn random_paths_hold(path in "(/|%2[eEfF]|%00|%|\\.|[a-z]){0,40}") {
        check_path(path.as_bytes());
    }
}
