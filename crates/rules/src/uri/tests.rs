use super::*;
use proptest::prelude::*;

fn m(kind: MatchKind, pattern: &str, path: &str, query: Option<&str>) -> bool {
    UriMatcher::new(kind, pattern).matches(&RequestUri::new(path, query))
}

fn fuzzy(pattern: &str, uri: &str) -> bool {
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    m(MatchKind::Fuzzy, pattern, path, query)
}

#[test]
fn exact() {
    assert!(m(MatchKind::Exact, "/register", "/register", None));
    assert!(!m(MatchKind::Exact, "/register", "/register/", None));
    assert!(!m(MatchKind::Exact, "/register", "/registe", None));
    assert!(!m(MatchKind::Exact, "/register", "/Register", None));
    assert!(m(
        MatchKind::Exact,
        "/user?action=login",
        "/user",
        Some("action=login")
    ));
    assert!(!m(
        MatchKind::Exact,
        "/user?action=login",
        "/user",
        Some("action=login&x=1")
    ));
    assert!(!m(MatchKind::Exact, "/user?action=login", "/user", None));
    assert!(!m(MatchKind::Exact, "/user", "/user", Some("action=login")));
    assert!(m(MatchKind::Exact, "/user?", "/user", Some("")));
}

#[test]
fn prefix() {
    assert!(m(MatchKind::Prefix, "/register", "/register", None));
    assert!(m(MatchKind::Prefix, "/register", "/register.html", None));
    assert!(!m(MatchKind::Prefix, "/register", "/regist", None));
    assert!(m(MatchKind::Prefix, "/", "/anything/at/all", Some("q=1")));
    assert!(m(
        MatchKind::Prefix,
        "/user?act",
        "/user",
        Some("action=login")
    ));
    assert!(m(MatchKind::Prefix, "/user", "/user", Some("action=login")));
    assert!(!m(MatchKind::Prefix, "/user?act", "/user", None));
    assert!(!m(MatchKind::Prefix, "/user?act", "/user", Some("")));
}

#[test]
fn fuzzy_wildcards() {
    // `.` is exactly one character.
    assert!(fuzzy("/a.c", "/abc"));
    assert!(fuzzy("/a.c", "/a.c"));
    assert!(!fuzzy("/a.c", "/ac"));
    assert!(!fuzzy("/a.c", "/abbc"));
    assert!(fuzzy("/caf.", "/café"));
    assert!(!fuzzy("/caf..", "/café"));
    // `*` is any run, including none; the whole URI must match.
    assert!(fuzzy("/api/*", "/api/"));
    assert!(fuzzy("/api/*", "/api/v1/users"));
    assert!(!fuzzy("/api/*", "/api"));
    assert!(!fuzzy("/api/*", "/x/api/v1"));
    assert!(fuzzy("*/login", "/a/b/login"));
    assert!(!fuzzy("*/login", "/a/b/login/x"));
    assert!(fuzzy("/*/*.php", "/wp/xmlrpc.php"));
    assert!(!fuzzy("/*/*.php", "/xmlrpc.php"));
    assert!(fuzzy("/a**b", "/ab"));
    assert!(fuzzy("*", ""));
    assert!(fuzzy("", ""));
    assert!(!fuzzy("", "/"));
    assert!(fuzzy("/*a*b*c", "/xxaxxbxxcxxc"));
    assert!(!fuzzy("/*a*b*c", "/xxaxxbxxcxxd"));
    // Backtracking into the last star only.
    assert!(fuzzy("/*ab", "/aab"));
    assert!(fuzzy("/*aab", "/aaab"));
    assert!(fuzzy("/*.b", "/xyzab"));
    // With the query.
    assert!(fuzzy("/user?action=*", "/user?action=login"));
    assert!(fuzzy("/*?*id=.", "/p/x?a=1&id=7"));
    assert!(!fuzzy("/user?action=*", "/user"));
}

#[test]
fn fuzzy_has_no_exponential_blowup() {
    // The classic killer of backtracking matchers: many stars, a text that almost matches, and a last character
    // that fails. Quadratic here: 30 stars × 20,000 characters is well under a second even unoptimised.
    let pattern = format!("/{}b", "*a".repeat(30));
    let text = format!("/{}", "a".repeat(20_000));
    assert!(!fuzzy(&pattern, &text));
    let text_ok = format!("{text}b");
    assert!(fuzzy(&pattern, &text_ok));
    let dots = format!("/{}x", "*.".repeat(30));
    assert!(!fuzzy(&dots, &text));
}

#[test]
fn percent_escapes_of_unreserved_characters_are_decoded() {
    assert_eq!(normalize("/register"), Cow::Borrowed("/register"));
    assert_eq!(normalize("/%72egister"), "/register");
    assert_eq!(normalize("/a%2fb%2Fc"), "/a%2Fb%2Fc");
    assert_eq!(normalize("/a%7e%2D%5f%2e"), "/a~-_.");
    assert_eq!(normalize("/bad%zz%4"), "/bad%zz%4");
    assert_eq!(normalize("/é%41%"), "/éA%");
    assert!(m(MatchKind::Exact, "/register", "/%72egister", None));
    assert!(m(MatchKind::Exact, "/%72egister", "/register", None));
    assert!(m(MatchKind::Prefix, "/a%2fb", "/a%2Fb/c", None));
    assert!(!m(MatchKind::Prefix, "/a/b", "/a%2Fb", None));
    assert!(m(
        MatchKind::Exact,
        "/user?action=login",
        "/user",
        Some("%61ction=login")
    ));
    // In fuzzy patterns, only a literal `.` is a wildcard: an escaped one is a plain dot.
    assert!(fuzzy("/a%2Eb", "/a.b"));
    assert!(!fuzzy("/a%2Eb", "/axb"));
    assert!(fuzzy("/%72e*", "/register"));
}

proptest! {
    #[test]
    fn fuzzy_without_wildcards_is_exact(pattern in "/[a-z/%0-9?=&]{0,12}", path in "/[a-z/%0-9]{0,12}") {
        prop_assume!(!pattern.contains('.') && !pattern.contains('*'));
        let (p, q) = match path.split_once('?') { Some((p, q)) => (p, Some(q)), None => (path.as_str(), None) };
        prop_assert_eq!(m(MatchKind::Fuzzy, &pattern, p, q), m(MatchKind::Exact, &pattern, p, q));
    }

    #[test]
    fn star_suffix_is_prefix(pattern in "/[a-z/]{0,8}", path in "/[a-z/]{0,12}") {
        prop_assert_eq!(fuzzy(&format!("{pattern}*"), &path), m(MatchKind::Prefix, &pattern, &path, None));
    }

    #[test]
    fn fuzzy_agrees_with_a_reference_matcher(pattern in "[ab.*]{0,8}", text in "[ab]{0,10}") {
        prop_assert_eq!(fuzzy(&pattern, &text), reference(pattern.as_bytes(), text.as_bytes()), "{} vs {}", pattern, text);
    }
}

/// Obviously-correct exponential matcher for small inputs.
fn reference(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
        Some((b'.', rest)) => !t.is_empty() && reference(rest, &t[1..]),
        Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
    }
}
