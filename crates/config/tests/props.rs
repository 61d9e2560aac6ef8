//! Property tests: no input panics the parser, and every configuration it accepts round-trips through
//! `to_toml`.

mod common;

use edgeguard_config::{parse_with_env, to_toml};
use proptest::prelude::*;

fn full() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/full.toml");
    std::fs::read_to_string(path).expect("examples/full.toml is in the repository")
}

/// Parses `text`; when accepted, the export must read back equal.
fn check(text: &str) {
    if let Ok(c) = parse_with_env(text, |_| None) {
        let out = to_toml(&c);
        match parse_with_env(&out, |_| None) {
            Ok(back) => assert_eq!(back, c, "input:\n{text}\nexport:\n{out}"),
            Err(e) => panic!("export rejected: {e}\ninput:\n{text}\nexport:\n{out}"),
        }
    }
}

/// Pieces of TOML and of this file's values, so mutations often stay syntactically valid.
const TOKENS: &[&str] = &[
    "\n",
    " ",
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    ".",
    "#",
    "0",
    "1",
    "-1",
    "65536",
    "true",
    "false",
    "\"x\"",
    "\"$host\"",
    "\"$\"",
    "\"${\"",
    "\"10m\"",
    "\"1k\"",
    "\"0r/s\"",
    "\"5m\"",
    "\"0s\"",
    "\"ms\"",
    "[[domain]]",
    "[[domain.location]]",
    "[domain.cache]",
    "[node]",
    "[admin]",
    "burst = 0",
    "nodelay = true",
    "delay = 1",
    "zone = \"perip\"",
    "name = \"a.b\"",
    "path = \"/x\"",
    "origins = []",
    "qps = 0",
    "mode = \"custom\"",
    "[[domain.rate_limiting.rules]]",
    "ttl = 1",
    "\u{e9}",
    "\u{1F600}",
    "\r\n",
    "\t",
    "\\",
    "\"\"\"",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, token: usize },
    Replace { at: usize, len: usize, token: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Edit::Insert { at, token }),
        (any::<usize>(), 1usize..8, 0..TOKENS.len()).prop_map(|(at, len, token)| Edit::Replace {
            at,
            len,
            token
        }),
    ]
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &mut String, e: &Edit) {
    let at = |at: usize, s: &String| floor_boundary(s, at % (s.len() + 1));
    match *e {
        Edit::Delete { at: a, len } => {
            let start = at(a, text);
            let end = floor_boundary(text, start + len);
            text.replace_range(start..end, "");
        }
        Edit::Insert { at: a, token } => {
            let start = at(a, text);
            text.insert_str(start, TOKENS[token]);
        }
        Edit::Replace { at: a, len, token } => {
            let start = at(a, text);
            let end = floor_boundary(text, start + len);
            text.replace_range(start..end, TOKENS[token]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        check(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_full_example_never_panics(edits in proptest::collection::vec(edit(), 1..6)) {
        let mut text = full();
        for e in &edits {
            apply(&mut text, e);
        }
        check(&text);
    }
}

/// Values drawn for a generated, valid configuration.
#[derive(Debug, Clone)]
struct Knobs {
    tier_parent: bool,
    trusted: Vec<(u8, u8, u8)>,
    header_timeout_ms: u64,
    zone_size_k: u64,
    rate: (u64, bool),
    key: usize,
    domains: Vec<DomainKnobs>,
}

#[derive(Debug, Clone)]
struct DomainKnobs {
    origins: Vec<u16>,
    burst: Option<u32>,
    delay: u8,
    dry_run: bool,
    conn: u32,
    status: u16,
    locations: Vec<u8>,
    ttl_s: u64,
    ignore_query: bool,
    qps: Option<u32>,
    mode: u8,
}

const KEYS: &[&str] = &[
    "$binary_remote_addr",
    "$remote_addr",
    "$host$uri",
    "user-${arg_id}-$http_x_api_key",
    "$request_uri",
];

fn domain_knobs() -> impl Strategy<Value = DomainKnobs> {
    (
        proptest::collection::vec(1u16..=65535, 1..3),
        proptest::option::of(1u32..1000),
        0u8..3,
        any::<bool>(),
        1u32..=65535,
        400u16..=599,
        proptest::collection::vec(0u8..20, 0..4),
        0u64..100_000,
        any::<bool>(),
        proptest::option::of(1u32..100_000),
        0u8..3,
    )
        .prop_map(
            |(
                origins,
                burst,
                delay,
                dry_run,
                conn,
                status,
                locations,
                ttl_s,
                ignore_query,
                qps,
                mode,
            )| {
                DomainKnobs {
                    origins,
                    burst,
                    delay,
                    dry_run,
                    conn,
                    status,
                    locations,
                    ttl_s,
                    ignore_query,
                    qps,
                    mode,
                }
            },
        )
}

fn knobs() -> impl Strategy<Value = Knobs> {
    (
        any::<bool>(),
        proptest::collection::vec((any::<u8>(), any::<u8>(), 0u8..=32), 0..3),
        1u64..10_000_000,
        32u64..100_000,
        (1u64..100_000, any::<bool>()),
        0..KEYS.len(),
        proptest::collection::vec(domain_knobs(), 0..4),
    )
        .prop_map(
            |(tier_parent, trusted, header_timeout_ms, zone_size_k, rate, key, domains)| Knobs {
                tier_parent,
                trusted,
                header_timeout_ms,
                zone_size_k,
                rate,
                key,
                domains,
            },
        )
}

fn render(k: &Knobs) -> String {
    let mut t = String::new();
    t += "[node]\nname = \"gen\"\n";
    t += if k.tier_parent {
        "tier = \"parent\"\n"
    } else {
        "tier = \"edge\"\n"
    };
    t += "listen = [\"127.0.0.1:0\", \"[::1]:8080\"]\n";
    let mut trusted: Vec<String> = k
        .trusted
        .iter()
        .map(|(a, b, p)| format!("\"{a}.{b}.0.0/{p}\""))
        .collect();
    trusted.push("\"::1\"".into());
    t += &format!("trusted_proxies = [{}]\n", trusted.join(", "));
    t += &format!("header_timeout = \"{}ms\"\n", k.header_timeout_ms);
    t += "\n[[limit_req_zone]]\nname = \"z\"\n";
    t += &format!("key = {:?}\nsize = \"{}k\"\n", KEYS[k.key], k.zone_size_k);
    t += &format!(
        "rate = \"{}r/{}\"\n",
        k.rate.0,
        if k.rate.1 { "m" } else { "s" }
    );
    t += "\n[[limit_conn_zone]]\nname = \"c\"\nkey = \"$binary_remote_addr\"\nsize = 40000\n";
    for (i, d) in k.domains.iter().enumerate() {
        t += &format!("\n[[domain]]\nname = \"d{i}.example\"\n");
        let origins: Vec<String> = d
            .origins
            .iter()
            .map(|p| format!("\"o{p}.example:{p}\""))
            .collect();
        t += &format!("origins = [{}]\n", origins.join(", "));
        let mut lr = "zone = \"z\"".to_string();
        if let Some(b) = d.burst {
            lr += &format!(", burst = {b}");
        }
        match d.delay {
            1 => lr += ", nodelay = true",
            2 => lr += ", delay = 2",
            _ => {}
        }
        if d.dry_run {
            lr += ", dry_run = true";
        }
        t += &format!("limit_req = [{{ {lr} }}]\n");
        t += &format!("limit_conn = [{{ zone = \"c\", conn = {} }}]\n", d.conn);
        t += &format!("limit_req_status = {}\n", d.status);
        for l in &d.locations {
            t += &format!("[[domain.location]]\npath = \"/p{l}/\"\nlimit_req = []\n");
        }
        t += &format!(
            "[domain.cache]\ndefault_ttl = {}\nignore_query = {}\n",
            d.ttl_s, d.ignore_query
        );
        t += "[domain.ip_access_limit]\nenabled = true\n";
        if let Some(q) = d.qps {
            t += &format!("qps = {q}\n");
        }
        let mode = ["normal", "emergency", "custom"][usize::from(d.mode)];
        t += &format!("[domain.rate_limiting]\nenabled = true\nmode = \"{mode}\"\n");
        t += "[[domain.rate_limiting.rules]]\nname = \"rule1\"\nuri = \"/login\"\nmatch = \"exact\"\n";
        t += "object = \"ip\"\ninterval = 60\ncriteria = '\"count\">100'\naction = \"bot_detection\"\nttl = 300\n";
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_round_trip(k in knobs()) {
        let text = render(&k);
        // Duplicate location paths are an error by design; skip those draws.
        let dup = k.domains.iter().any(|d| {
            let mut l = d.locations.clone();
            l.sort_unstable();
            l.windows(2).any(|w| w[0] == w[1])
        });
        let dup_origins = k.domains.iter().any(|d| {
            let mut o = d.origins.clone();
            o.sort_unstable();
            o.windows(2).any(|w| w[0] == w[1])
        });
        prop_assume!(!dup && !dup_origins);
        match parse_with_env(&text, |_| None) {
            Ok(c) => {
                prop_assert_eq!(c.domains.len(), k.domains.len());
                check(&text);
            }
            Err(e) => panic!("generated config rejected: {e}\n{text}"),
        }
    }
}
