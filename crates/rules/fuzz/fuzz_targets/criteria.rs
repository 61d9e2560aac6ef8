//! Arbitrary bytes into the criteria parser: it must never panic, and whatever it accepts must print back to
//! a string that parses to the same tree, and evaluate without panicking.
#![no_main]

use edgeguard_rules::criteria::MAX_CRITERIA_LEN;
use edgeguard_rules::{Criteria, StatusSel, WindowView};
use libfuzzer_sys::fuzz_target;

struct Extreme;

impl WindowView for Extreme {
    fn requests(&self) -> u64 {
        u64::MAX
    }
    fn responses(&self) -> u64 {
        u64::MAX
    }
    fn status(&self, _sel: StatusSel) -> u64 {
        u64::MAX - 1
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(criteria) = Criteria::parse(&text) {
        let printed = criteria.to_string();
        // The canonical form adds spaces around `&&`/`||`, so it may outgrow the length limit the input met.
        if printed.chars().count() <= MAX_CRITERIA_LEN {
            assert_eq!(
                Criteria::parse(&printed).as_ref(),
                Ok(&criteria),
                "{printed}"
            );
        }
        let _ = criteria.eval(&Extreme);
        let _ = criteria.explain(&Extreme);
        let _ = criteria.tracked();
    }
});
