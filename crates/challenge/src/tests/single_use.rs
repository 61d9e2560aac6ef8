//! Single use of solved tokens through the public API, and the prebuilt page against the page as it was built
//! before (one `format!` per part).

use super::*;
use crate::assets::{main_script, worker_script};
use crate::page::STYLE;

fn easy() -> Difficulty {
    Difficulty::new(1).expect("1 bit is in range")
}

fn solve_easy(token: &ChallengeToken) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|n| leading_zero_bits(&pow_hash(token.challenge().as_bytes(), n.as_bytes())) >= 1)
        .unwrap_or_default()
}

fn post(t: &ChallengeToken) -> String {
    format!(
        "token={}&nonce={}&elapsed_ms=5&return_to=%2F",
        t.as_str(),
        solve_easy(t)
    )
}

#[test]
fn a_solved_token_is_redeemed_once() {
    let c = challenger();
    let client = ip("192.0.2.1");
    let t = c.issue(client, DOMAIN, NOW, low());
    let n = solve(&t);
    assert!(c.verify(t.as_str(), &n, client, DOMAIN, NOW).is_ok());
    for later in [NOW, NOW + 1, NOW + TOKEN_TTL_MS] {
        assert_eq!(
            c.verify(t.as_str(), &n, client, DOMAIN, later).map(|_| ()),
            Err(VerifyError::Replayed),
            "at {later}"
        );
    }
    // Once the token is too old it is refused for that, before the cache is asked.
    assert_eq!(
        c.verify(t.as_str(), &n, client, DOMAIN, NOW + TOKEN_TTL_MS + 1)
            .map(|_| ()),
        Err(VerifyError::Expired)
    );
    // Another answer to the same puzzle is the same token.
    let other_nonce = (n.parse::<u64>().unwrap_or(0) + 1..)
        .map(|k| k.to_string())
        .find(|k| leading_zero_bits(&pow_hash(t.challenge().as_bytes(), k.as_bytes())) >= 8)
        .unwrap_or_default();
    assert_eq!(
        c.verify(t.as_str(), &other_nonce, client, DOMAIN, NOW)
            .map(|_| ()),
        Err(VerifyError::Replayed)
    );
    let s = c.replay_stats(NOW);
    assert_eq!((s.redeemed, s.replayed, s.in_use), (1, 4, 1));
    assert_eq!(s.capacity, DEFAULT_REPLAY_CAPACITY);
    assert_eq!(c.replay_stats(NOW + TOKEN_TTL_MS + 1000).in_use, 0);
}

#[test]
fn refusals_do_not_spend_the_token_and_tokens_are_independent() {
    let c = challenger();
    let client = ip("192.0.2.1");
    let a = c.issue(client, DOMAIN, NOW, low());
    let b = c.issue(client, DOMAIN, NOW, low());
    let (na, nb) = (solve(&a), solve(&b));
    assert_eq!(
        c.verify(a.as_str(), &na, ip("192.0.2.2"), DOMAIN, NOW)
            .map(|_| ()),
        Err(VerifyError::WrongIp)
    );
    assert_eq!(
        c.verify(a.as_str(), &wrong(&a), client, DOMAIN, NOW)
            .map(|_| ()),
        Err(VerifyError::WrongAnswer)
    );
    assert!(c.verify(a.as_str(), &na, client, DOMAIN, NOW).is_ok());
    assert!(
        c.verify(b.as_str(), &nb, client, DOMAIN, NOW).is_ok(),
        "another token of the same client is its own"
    );
    assert_eq!(
        c.verify(b.as_str(), &nb, client, DOMAIN, NOW).map(|_| ()),
        Err(VerifyError::Replayed)
    );
}

#[test]
fn clones_share_the_replay_cache() {
    let c = challenger();
    let per_domain = c.clone().with_clearance_ttl(Duration::from_secs(600));
    let client = ip("2001:db8::7");
    let t = c.issue(client, DOMAIN, NOW, low());
    let n = solve(&t);
    assert!(
        per_domain
            .verify(t.as_str(), &n, client, DOMAIN, NOW)
            .is_ok()
    );
    assert_eq!(
        c.verify(t.as_str(), &n, client, DOMAIN, NOW).map(|_| ()),
        Err(VerifyError::Replayed)
    );
    // A new cache is a new set: set the capacity before cloning.
    let resized = c.clone().with_replay_capacity(5000);
    assert_eq!(resized.replay_stats(NOW).capacity, 8192);
    assert!(resized.verify(t.as_str(), &n, client, DOMAIN, NOW).is_ok());
}

#[test]
fn verify_endpoint_says_replayed_and_busy() {
    let c = challenger().with_replay_capacity(0);
    let client = ip("198.51.100.1");
    let t = c.issue(client, DOMAIN, NOW, easy());
    let body = post(&t);
    let first = c.handle_verify(body.as_bytes(), client, DOMAIN, NOW, false);
    assert_eq!(first.status, 200);
    let again = c.handle_verify(body.as_bytes(), client, DOMAIN, NOW, false);
    assert_eq!(
        (again.status, again.body.as_str()),
        (403, r#"{"ok":false,"error":"replayed"}"#)
    );
    assert!(again.set_cookie.is_none());
    assert_eq!(again.result.map(|_| ()), Err(VerifyError::Replayed));

    // Fill the 1,024 slots: the cache refuses new tokens as busy rather than forget a spent one.
    let busy = (0..8192).find_map(|_| {
        let body = post(&c.issue(client, DOMAIN, NOW, easy()));
        let r = c.handle_verify(body.as_bytes(), client, DOMAIN, NOW, false);
        (r.status != 200).then_some((body, r))
    });
    let (busy_body, r) = busy.expect("a full cache refuses");
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, r#"{"ok":false,"error":"busy"}"#)
    );
    assert!(r.set_cookie.is_none());
    assert_eq!(
        c.handle_verify(body.as_bytes(), client, DOMAIN, NOW, false)
            .status,
        403,
        "a spent token stays spent while the cache is full"
    );
    let s = c.replay_stats(NOW);
    assert!(s.busy >= 1 && s.in_use > s.capacity * 2 / 3, "{s:?}");
    // A busy answer was not recorded: it is refused as busy again, not as replayed.
    assert_eq!(
        c.handle_verify(busy_body.as_bytes(), client, DOMAIN, NOW, false)
            .status,
        503
    );
    // Once the spent tokens expire, their slots are free again.
    let later = NOW + TOKEN_TTL_MS + 1000;
    assert_eq!(c.replay_stats(later).in_use, 0);
    let fresh = post(&c.issue(client, DOMAIN, later, easy()));
    assert_eq!(
        c.handle_verify(fresh.as_bytes(), client, DOMAIN, later, false)
            .status,
        200
    );
}

#[test]
fn issued_puzzles_are_distinct_across_threads() {
    let c = challenger();
    let mut all: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..2000)
                        .map(|_| {
                            c.issue(ip("192.0.2.1"), DOMAIN, NOW, low())
                                .challenge()
                                .to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("issuing thread"))
            .collect()
    });
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n);
}

/// The page as it was built before it was prebuilt, kept to show the bytes did not change.
fn reference_page(params: &ChallengeParams<'_>) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#39;")
    }
    let token = params.token;
    let domain = esc(params.domain);
    let ret = esc(&safe_return_path(params.return_to));
    let digits = token.difficulty().expected_hashes().to_string();
    let groups: Vec<String> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| String::from_utf8_lossy(g).into_owned())
        .collect();
    let mut html = String::new();
    html.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str("<meta name=\"robots\" content=\"noindex, nofollow\">\n");
    html.push_str(&format!(
        "<title>Checking your browser \u{2013} {domain}</title>\n"
    ));
    html.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    html.push_str(&format!(
        "<main id=\"eg\" data-token=\"{}\" data-challenge=\"{}\" data-difficulty=\"{}\" data-worker=\"{}\" \
         data-verify=\"{}\" data-return=\"{ret}\">\n",
        esc(token.as_str()),
        esc(token.challenge()),
        token.difficulty().bits(),
        esc(&worker_script().path),
        esc(VERIFY_PATH),
    ));
    html.push_str("<h1>Checking your browser</h1>\n");
    html.push_str(&format!(
        "<p>{domain} is protecting itself from automated traffic. Your browser solves a short computation \
         before the page opens; there is nothing to click.</p>\n"
    ));
    html.push_str(
        "<noscript><p class=\"eg-warn\">This check needs JavaScript, which is turned off or not supported \
         in your browser. Please enable JavaScript for this site and reload the page.</p></noscript>\n",
    );
    html.push_str("<div id=\"eg-live\" hidden>\n");
    html.push_str(
        "<p id=\"eg-status\" role=\"status\" aria-live=\"polite\">Starting\u{2026}</p>\n",
    );
    html.push_str(
        "<progress id=\"eg-progress\" max=\"100\" aria-label=\"Progress of the browser check\"></progress>\n",
    );
    html.push_str(
        "<p id=\"eg-stats\" class=\"eg-muted\" aria-live=\"polite\" aria-atomic=\"true\"></p>\n",
    );
    html.push_str("<p><a id=\"eg-retry\" href=\"\" hidden>Try again</a></p>\n</div>\n");
    html.push_str(&format!(
        "<p class=\"eg-muted\">Expected work: about {} hashes. Protected by edgeguard.</p>\n</main>\n",
        groups.join(",")
    ));
    html.push_str(&format!(
        "<script src=\"{}\" integrity=\"{}\"></script>\n</body>\n</html>\n",
        main_script().path,
        main_script().integrity
    ));
    html
}

proptest! {
    #[test]
    fn prebuilt_page_is_the_same_bytes(
        domain in "[a-z<>&\"'.0-9-]{0,40}",
        return_to in "(/|//|https://|)[ -~\u{e9}\t]{0,60}",
        bits in 1u8..=32,
    ) {
        let c = challenger();
        let d = Difficulty::new(bits).unwrap_or_default();
        let t = c.issue(ip("192.0.2.1"), "shop.example", NOW, d);
        let params = ChallengeParams { token: &t, domain: &domain, return_to: &return_to };
        let want = reference_page(&params);
        prop_assert_eq!(&render_page(&params), &want);
        let page = ChallengePage::new(&domain);
        prop_assert_eq!(&page.render(&t, &return_to)[..], want.as_bytes());
        let chunks = page.render_chunks(&t, &return_to).concat();
        prop_assert_eq!(&chunks[..], want.as_bytes());
    }
}
