//! Header values from an origin are untrusted input: whatever they say, evaluating them never panics, and
//! an object that is stored is served fresh right after.

mod common;

use bytes::Bytes;
use common::*;
use edgeguard_cache::Lookup;
use proptest::prelude::*;

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "(max-age|s-maxage|no-cache|no-store|private|public|must-revalidate|immutable)(=[0-9a-z\"-]{0,12})?(, ?(max-age|s-maxage|public)=[0-9]{0,20})?",
    ]
}

proptest! {
    // Integration tests have no lib.rs beside them for proptest's regression files.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_response_headers_never_panic(
        status in prop_oneof![Just(200u16), Just(203), Just(206), Just(301), Just(302), Just(404), Just(500)],
        cc in header_value(),
        expires in header_value(),
        age in header_value(),
        vary in header_value(),
        with_date in any::<bool>(),
    ) {
        let c = cache();
        let r = get("/p");
        let date = http_date(t0());
        let mut h = vec![("cache-control", cc.as_str()), ("expires", expires.as_str()), ("age", age.as_str()),
            ("vary", vary.as_str())];
        if with_date {
            h.push(("date", date.as_str()));
        }
        let key = key(&c, &r);
        let Lookup::Lead { fill, .. } = c.lookup_or_lead(&key, &r, t0()) else { panic!("lead") };
        let checked = fill.check(&res(status, &h), t0());
        let stored = fill.complete(&res(status, &h), Bytes::from_static(b"body"), t0());
        prop_assert_eq!(checked.is_ok(), stored.is_ok());
        if stored.is_ok() {
            prop_assert_eq!(probe(&c, &r, t0()), ("hit", false));
        }
    }
}
