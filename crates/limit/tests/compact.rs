//! The protection tables at the size SPEC 9.1 asks for: 1,000,000 distinct clients in an IP access limit table
//! and a rule's window table sized for 1,000,000, within their budgets.

use edgeguard_limit::DEFAULT_TRACKED_CLIENTS as CLIENTS;
use edgeguard_limit::Eviction;
use edgeguard_limit::persec::PerSecondTable;
use edgeguard_limit::window::{WindowSpec, WindowTable};

fn client(i: u32) -> [u8; 4] {
    // Spread like addresses of many networks.
    i.wrapping_mul(0x9E37_79B1).to_be_bytes()
}

#[test]
fn a_million_clients_fit_tables_sized_for_a_million() {
    let fa = Eviction::FrequencyAware;
    let persec = PerSecondTable::new(PerSecondTable::size_for(CLIENTS, fa)).unwrap();
    let spec = WindowSpec {
        interval_s: 60,
        tracked: Vec::new(),
    };
    let window = WindowTable::new(&spec, WindowTable::size_for(CLIENTS, 0, fa)).unwrap();
    assert!(persec.capacity() >= CLIENTS && window.capacity() >= CLIENTS);
    // Under 44 bytes per client per table on average for the IP access limit and five such rules.
    let per_client = persec.size_bytes() + 5 * window.size_bytes();
    assert!(
        per_client / 6 < 44 * CLIENTS,
        "{per_client} bytes for six tables"
    );

    // 1,000,000 distinct clients, all within one second (so no per-second state is idle yet).
    let now = 1_000_000u64;
    for i in 0..CLIENTS as u32 {
        assert!(persec.check(&client(i), 10, now + u64::from(i) / 2_000));
        assert_eq!(window.record_request(&client(i), now).requests, 1);
    }
    for (name, in_use, capacity, held, size) in [
        (
            "ip",
            persec.in_use(),
            persec.capacity(),
            persec.held_bytes(),
            persec.size_bytes(),
        ),
        (
            "rule",
            window.in_use(),
            window.capacity(),
            window.held_bytes(),
            window.size_bytes(),
        ),
    ] {
        eprintln!(
            "{name}: {in_use} of {CLIENTS} retained, capacity {capacity}, {held} of {size} bytes"
        );
        assert!(in_use <= capacity && held <= size, "{name}");
        assert!(
            in_use * 100 >= CLIENTS * 95,
            "{name}: {in_use} of {CLIENTS} retained"
        );
    }
    // The retained clients count on: a second request of each retained client is its second.
    let again = (0..CLIENTS as u32)
        .step_by(97)
        .filter(|&i| window.record_request(&client(i), now + 1).requests == 2)
        .count();
    assert!(again * 97 * 100 >= CLIENTS * 95, "{again}");
}
