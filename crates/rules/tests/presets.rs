//! The built-in modes: valid, and tripping on what they should and nothing else (docs/protection.md).

use edgeguard_rules::{
    Action, Mode, Object, RuleSet, StatusSel, WindowView, preset, validate_rules,
};

/// One IP's 10-second window.
struct Window {
    requests: u64,
    statuses: Vec<(u16, u64)>,
}

impl WindowView for Window {
    fn requests(&self) -> u64 {
        self.requests
    }
    fn responses(&self) -> u64 {
        self.statuses.iter().map(|(_, n)| n).sum()
    }
    fn status(&self, sel: StatusSel) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| sel.matches(*code))
            .map(|(_, n)| n)
            .sum()
    }
}

/// `requests` requests in the window, `errors` of them answered with `status`, the rest 200.
fn window(requests: u64, status: u16, errors: u64) -> Window {
    Window {
        requests,
        statuses: vec![(status, errors), (200, requests - errors)],
    }
}

fn trips(mode: Mode, w: &Window) -> bool {
    let set = RuleSet::preset(mode);
    let (_, rule) = set
        .first_match("/index.html", None)
        .expect("a preset covers every path");
    rule.criteria.eval(w)
}

#[test]
fn presets_are_valid_single_rules_on_every_path() {
    for mode in [Mode::Normal, Mode::Emergency] {
        let specs = preset(mode);
        assert_eq!(validate_rules(&specs), Ok(()), "{mode:?}");
        let set = RuleSet::preset(mode);
        assert_eq!(set.rules().len(), 1);
        assert_eq!(set.rules()[0].object, Object::Ip);
        assert_eq!(set.rules()[0].interval_s, 10);
        for path in ["/", "/a/b/c.js", "/api?x=1"] {
            assert!(
                set.first_match(path, Some("q=1")).is_some(),
                "{mode:?} {path}"
            );
        }
    }
    assert_eq!(
        RuleSet::preset(Mode::Normal).rules()[0].action,
        Action::Block
    );
    assert_eq!(
        RuleSet::preset(Mode::Emergency).rules()[0].action,
        Action::BotDetection
    );
}

#[test]
fn normal_spares_humans_and_polite_crawlers() {
    // A page with 100 assets loaded twice in 10 s, a few assets missing.
    assert!(!trips(Mode::Normal, &window(202, 404, 6)));
    // A crawler at 5 requests per second, even one fed nothing but 404s (a stale sitemap).
    assert!(!trips(Mode::Normal, &window(50, 404, 50)));
    // A broken page: 30 of 101 requests 404, reloaded twice.
    assert!(!trips(Mode::Normal, &window(303, 404, 90)));
}

#[test]
fn normal_catches_floods_and_404_scanners() {
    assert!(trips(Mode::Normal, &window(501, 404, 0)));
    assert!(!trips(Mode::Normal, &window(500, 404, 0)));
    // A scanner at 10 requests per second, nearly all 404.
    assert!(trips(Mode::Normal, &window(100, 404, 95)));
    // Many 404s but mostly successes: not a scanner.
    assert!(!trips(Mode::Normal, &window(400, 404, 100)));
}

#[test]
fn emergency_is_stricter_but_spares_a_page_load_and_a_crawler() {
    assert!(!trips(Mode::Emergency, &window(101, 404, 2)));
    assert!(!trips(Mode::Emergency, &window(30, 404, 3)));
    assert!(trips(Mode::Emergency, &window(151, 404, 0)));
    // Login brute force: 401/403s are 4xx too.
    assert!(trips(Mode::Emergency, &window(40, 401, 30)));
    assert!(trips(Mode::Emergency, &window(25, 404, 20)));
    assert!(!trips(Mode::Emergency, &window(60, 404, 19)));
}

#[test]
fn explain_names_the_trigger() {
    let set = RuleSet::preset(Mode::Normal);
    let criteria = &set.rules()[0].criteria;
    assert_eq!(
        criteria.explain(&window(100, 404, 95)),
        "status_count|404=95 status_ratio|404=95%"
    );
    assert_eq!(criteria.explain(&window(900, 404, 0)), "count=900");
}
