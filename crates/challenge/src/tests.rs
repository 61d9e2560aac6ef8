use crate::difficulty::{leading_zero_bits, pow_hash};
use crate::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use std::net::IpAddr;
use std::time::Duration;

mod single_use;

const NOW: u64 = 1_790_000_000_000;
const DOMAIN: &str = "www.example.com";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn challenger() -> Challenger {
    Challenger::from_key([7u8; 32])
}

fn low() -> Difficulty {
    Difficulty::new(8).expect("8 bits is in range")
}

/// Brute-forces the puzzle the way the page does (decimal nonces from 0).
fn solve(token: &ChallengeToken) -> String {
    (0u64..10_000_000)
        .map(|n| n.to_string())
        .find(|n| leading_zero_bits(&pow_hash(token.challenge().as_bytes(), n.as_bytes())) >= 8)
        .expect("an 8-bit answer exists within ten million tries")
}

/// A nonce whose hash does not meet the difficulty.
fn wrong(token: &ChallengeToken) -> String {
    (0u64..1000)
        .map(|n| n.to_string())
        .find(|n| leading_zero_bits(&pow_hash(token.challenge().as_bytes(), n.as_bytes())) < 8)
        .expect("most nonces fail")
}

fn cleared(c: &Challenger, client: &str) -> Clearance {
    let t = c.issue(ip(client), DOMAIN, NOW, low());
    c.verify(t.as_str(), &solve(&t), ip(client), DOMAIN, NOW + 1000)
        .expect("solved token verifies")
}

#[test]
fn difficulty_bounds() {
    assert_eq!(Difficulty::new(0), None);
    assert_eq!(Difficulty::new(33), None);
    assert_eq!(Difficulty::new(32).map(Difficulty::bits), Some(32));
    assert_eq!(
        Difficulty::DEFAULT.expected_hashes(),
        1 << Difficulty::DEFAULT.bits()
    );
}

#[test]
fn leading_zero_count() {
    let mut h = [0xffu8; 32];
    assert_eq!(leading_zero_bits(&h), 0);
    h[0] = 0;
    h[1] = 0x10;
    assert_eq!(leading_zero_bits(&h), 11);
    assert_eq!(leading_zero_bits(&[0u8; 32]), 256);
}

#[test]
fn token_round_trip_and_shape() {
    let c = challenger();
    let t = c.issue(ip("192.0.2.1"), DOMAIN, NOW, low());
    assert_eq!(t.as_str().len(), 110);
    assert!(
        t.as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(t.challenge().len(), 32);
    assert!(t.challenge().bytes().all(|b| b.is_ascii_hexdigit()));
    let other = c.issue(ip("192.0.2.1"), DOMAIN, NOW, low());
    assert_ne!(
        t.challenge(),
        other.challenge(),
        "each token gets its own puzzle"
    );
    let clearance = c
        .verify(
            t.as_str(),
            &solve(&t),
            ip("192.0.2.1"),
            DOMAIN,
            NOW + TOKEN_TTL_MS,
        )
        .expect("verifies");
    assert_eq!(clearance.difficulty(), low());
    assert_eq!(
        clearance.expires_unix_s(),
        (NOW + TOKEN_TTL_MS) / 1000 + 3600
    );
}

#[test]
fn token_refusals_say_why() {
    let c = challenger();
    let client = ip("192.0.2.1");
    let t = c.issue(client, DOMAIN, NOW, low());
    let good = solve(&t);
    let v = |nonce: &str, ip: IpAddr, domain: &str, now: u64| {
        c.verify(t.as_str(), nonce, ip, domain, now).map(|_| ())
    };
    assert_eq!(
        v(&good, client, DOMAIN, NOW + TOKEN_TTL_MS + 1),
        Err(VerifyError::Expired)
    );
    assert_eq!(
        v(&good, client, DOMAIN, NOW - 31_000),
        Err(VerifyError::Expired),
        "issued in the future"
    );
    assert_eq!(
        v(&good, ip("192.0.2.2"), DOMAIN, NOW),
        Err(VerifyError::WrongIp)
    );
    assert_eq!(
        v(&good, client, "api.example.com", NOW),
        Err(VerifyError::WrongDomain)
    );
    assert_eq!(
        v(&wrong(&t), client, DOMAIN, NOW),
        Err(VerifyError::WrongAnswer)
    );
    for bad in ["", "12a", " 1", "-1", "123456789012345678901"] {
        assert_eq!(
            v(bad, client, DOMAIN, NOW),
            Err(VerifyError::Malformed),
            "nonce {bad:?}"
        );
    }
    // Each pass spends its token, so each of these gets a fresh one.
    let pass = |ip: IpAddr, domain: &str, now: u64| {
        let t = c.issue(client, DOMAIN, NOW, low());
        c.verify(t.as_str(), &solve(&t), ip, domain, now)
            .map(|_| ())
    };
    assert_eq!(
        pass(client, DOMAIN, NOW - 29_000),
        Ok(()),
        "small clock skew between nodes is tolerated"
    );
    assert_eq!(
        pass(client, "WWW.Example.COM.", NOW),
        Ok(()),
        "hosts compare case-insensitively"
    );
    assert_eq!(
        pass(ip("::ffff:192.0.2.1"), DOMAIN, NOW),
        Ok(()),
        "v4-mapped is the same client"
    );
    let other_key = Challenger::from_key([8u8; 32]);
    assert_eq!(
        other_key
            .verify(t.as_str(), &good, client, DOMAIN, NOW)
            .map(|_| ()),
        Err(VerifyError::Forged)
    );
}

#[test]
fn token_bit_flips_are_forgeries() {
    let c = challenger();
    let client = ip("2001:db8::1");
    let t = c.issue(client, DOMAIN, NOW, low());
    let nonce = solve(&t);
    let raw = URL_SAFE_NO_PAD
        .decode(t.as_str())
        .expect("own token decodes");
    for bit in 0..raw.len() * 8 {
        let mut flipped = raw.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let text = URL_SAFE_NO_PAD.encode(&flipped);
        let got = c.verify(&text, &nonce, client, DOMAIN, NOW);
        // Flipping the version byte is caught before the MAC; everything else by the MAC.
        let want = if bit < 8 {
            VerifyError::Malformed
        } else {
            VerifyError::Forged
        };
        assert_eq!(got.map(|_| ()), Err(want), "bit {bit}");
    }
}

#[test]
fn clearance_cookie_checks() {
    let c = challenger();
    let cl = cleared(&c, "198.51.100.7");
    let header = format!("a=b; {COOKIE_NAME}={}; c=d", cl.cookie_value());
    let check =
        |h: &str, ip_s: &str, domain: &str, now: u64| c.check_clearance(h, ip(ip_s), domain, now);
    assert_eq!(check(&header, "198.51.100.7", DOMAIN, NOW), Ok(()));
    assert_eq!(
        check(&header, "198.51.100.7", DOMAIN, NOW + 3_599_000),
        Ok(())
    );
    assert_eq!(
        check(&header, "198.51.100.7", DOMAIN, NOW + 3_601_000),
        Err(ClearanceError::Expired)
    );
    assert_eq!(
        check(&header, "198.51.100.8", DOMAIN, NOW),
        Err(ClearanceError::WrongIp)
    );
    assert_eq!(
        check(&header, "198.51.100.7", "example.com", NOW),
        Err(ClearanceError::WrongDomain)
    );
    assert_eq!(
        check("a=b", "198.51.100.7", DOMAIN, NOW),
        Err(ClearanceError::Missing)
    );
    assert_eq!(
        check("", "198.51.100.7", DOMAIN, NOW),
        Err(ClearanceError::Missing)
    );
    assert_eq!(
        check(&format!("{COOKIE_NAME}=xyz"), "198.51.100.7", DOMAIN, NOW),
        Err(ClearanceError::Malformed)
    );
    // A stale cookie next to a good one still passes; the error reported is the first cookie's.
    let stale = format!("{COOKIE_NAME}=junk; {COOKIE_NAME}={}", cl.cookie_value());
    assert_eq!(check(&stale, "198.51.100.7", DOMAIN, NOW), Ok(()));
    let quoted = format!("{COOKIE_NAME}=\"{}\"", cl.cookie_value());
    assert_eq!(check(&quoted, "198.51.100.7", DOMAIN, NOW), Ok(()));
    let split = ["x=1", &format!("{COOKIE_NAME}={}", cl.cookie_value())[..]];
    assert_eq!(
        c.check_clearance_headers(split, ip("198.51.100.7"), DOMAIN, NOW),
        Ok(())
    );
    // Another key (another cluster) refuses it.
    let other = Challenger::from_key([9u8; 32]);
    assert_eq!(
        other.check_clearance(&header, ip("198.51.100.7"), DOMAIN, NOW),
        Err(ClearanceError::Forged)
    );
    // Shortening the TTL takes effect for cookies already out.
    let short = Challenger::from_key([7u8; 32]).with_clearance_ttl(Duration::from_secs(600));
    assert_eq!(
        short.check_clearance(&header, ip("198.51.100.7"), DOMAIN, NOW),
        Err(ClearanceError::Expired)
    );
}

#[test]
fn a_clone_with_another_ttl_shares_the_keys() {
    let c = challenger();
    let per_domain = c.clone().with_clearance_ttl(Duration::from_secs(600));
    assert_eq!(per_domain.clearance_ttl(), Duration::from_secs(600));
    assert_eq!(c.clearance_ttl(), DEFAULT_CLEARANCE_TTL);
    // A token of one answers at the other; the cookie gets the clone's life.
    let t = c.issue(ip("192.0.2.9"), DOMAIN, NOW, low());
    let n = solve(&t);
    let cl = per_domain
        .verify(t.as_str(), &n, ip("192.0.2.9"), DOMAIN, NOW)
        .expect("same token key");
    assert_eq!(cl.expires_unix_s(), NOW / 1000 + 600);
    let h = format!("{COOKIE_NAME}={}", cl.cookie_value());
    assert_eq!(c.check_clearance(&h, ip("192.0.2.9"), DOMAIN, NOW), Ok(()));
}

#[test]
fn clearance_ipv6_binds_the_slash_64() {
    let c = challenger();
    let cl = cleared(&c, "2001:db8:1:2::10");
    let h = format!("{COOKIE_NAME}={}", cl.cookie_value());
    assert_eq!(
        c.check_clearance(&h, ip("2001:db8:1:2:aaaa::99"), DOMAIN, NOW),
        Ok(())
    );
    assert_eq!(
        c.check_clearance(&h, ip("2001:db8:1:3::10"), DOMAIN, NOW),
        Err(ClearanceError::WrongIp)
    );
    assert_eq!(
        c.check_clearance(&h, ip("192.0.2.1"), DOMAIN, NOW),
        Err(ClearanceError::WrongIp)
    );
}

#[test]
fn clearance_bit_flips_are_forgeries() {
    let c = challenger();
    let cl = cleared(&c, "203.0.113.5");
    let raw = URL_SAFE_NO_PAD
        .decode(cl.cookie_value())
        .expect("own cookie decodes");
    for bit in 0..raw.len() * 8 {
        let mut flipped = raw.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let h = format!("{COOKIE_NAME}={}", URL_SAFE_NO_PAD.encode(&flipped));
        let want = if bit < 8 {
            ClearanceError::Malformed
        } else {
            ClearanceError::Forged
        };
        assert_eq!(
            c.check_clearance(&h, ip("203.0.113.5"), DOMAIN, NOW),
            Err(want),
            "bit {bit}"
        );
    }
}

#[test]
fn set_cookie_header_attributes() {
    let c = challenger().with_clearance_ttl(Duration::from_secs(1800));
    let cl = cleared(&c, "203.0.113.5");
    let plain = cl.set_cookie_header(false);
    assert_eq!(
        plain,
        format!(
            "{COOKIE_NAME}={}; Path=/; Max-Age=1800; HttpOnly; SameSite=Lax",
            cl.cookie_value()
        )
    );
    assert!(
        cl.set_cookie_header(true)
            .ends_with("; SameSite=Lax; Secure")
    );
    assert_eq!(
        challenger()
            .with_clearance_ttl(Duration::ZERO)
            .clearance_ttl(),
        Duration::from_secs(60)
    );
}

#[test]
fn verify_endpoint_responses() {
    let c = challenger();
    let client = ip("192.0.2.9");
    let t = c.issue(client, DOMAIN, NOW, low());
    let body = format!(
        "token={}&nonce={}&elapsed_ms=840&return_to=%2Fshop%3Fitem%3D3%26q%3Da+b",
        t.as_str(),
        solve(&t)
    );
    let r = c.handle_verify(body.as_bytes(), client, DOMAIN, NOW, true);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, r#"{"ok":true,"redirect":"/shop?item=3&q=a%20b"}"#);
    assert_eq!(r.claimed_solve_ms, Some(840));
    let cookie = r.set_cookie.expect("cookie on success");
    assert!(cookie.starts_with(&format!("{COOKIE_NAME}=")) && cookie.ends_with("; Secure"));

    let r = c.handle_verify(body.as_bytes(), ip("192.0.2.10"), DOMAIN, NOW, false);
    assert_eq!(
        (r.status, r.body.as_str()),
        (403, r#"{"ok":false,"error":"wrong_ip"}"#)
    );
    assert!(r.set_cookie.is_none());
    let r = c.handle_verify(b"token=abc&nonce=1", client, DOMAIN, NOW, false);
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, r#"{"ok":false,"error":"malformed"}"#)
    );
    let huge = vec![b'a'; MAX_VERIFY_BODY + 1];
    assert_eq!(
        c.handle_verify(&huge, client, DOMAIN, NOW, false).status,
        400
    );
}

#[test]
fn return_paths_never_leave_the_origin() {
    for (raw, want) in [
        ("/a/b?c=d&e", "/a/b?c=d&e"),
        ("/", "/"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/%5Cevil.example"),
        ("/\t/evil.example", "/%09/evil.example"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("/\"><script>", "/%22%3E%3Cscript%3E"),
        ("/caf\u{e9}", "/caf%C3%A9"),
    ] {
        assert_eq!(safe_return_path(raw), want, "{raw:?}");
    }
    assert_eq!(safe_return_path(&format!("/{}", "a".repeat(5000))), "/");
}

#[test]
fn key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let a = Challenger::load_or_create(&data).expect("creates the key");
    let path = data.join(KEY_FILE);
    let meta = std::fs::metadata(&path).expect("key file exists");
    assert_eq!(meta.len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let b = Challenger::load_or_create(&data).expect("loads the key");
    let cl = cleared(&a, "192.0.2.1");
    let h = format!("{COOKIE_NAME}={}", cl.cookie_value());
    assert_eq!(
        b.check_clearance(&h, ip("192.0.2.1"), DOMAIN, NOW),
        Ok(()),
        "same file, same clearances"
    );
    let leftovers = std::fs::read_dir(&data).expect("list").count();
    assert_eq!(leftovers, 1, "no temporary file left behind");

    std::fs::write(&path, b"short").expect("overwrite");
    assert!(matches!(
        Challenger::load_or_create(&data),
        Err(KeyError::BadLength { len: 5, .. })
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&path, [1u8; 32]).expect("overwrite");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            Challenger::load_or_create(&data),
            Err(KeyError::Permissions { mode: 0o644, .. })
        ));
    }
    assert!(
        !format!("{a:?}").contains("07"),
        "Debug never shows key material"
    );
}

#[test]
fn page_is_self_contained_and_accessible() {
    let c = challenger();
    let t = c.issue(ip("192.0.2.1"), "shop.example", NOW, low());
    let html = render_page(&ChallengeParams {
        token: &t,
        domain: "shop<b>.example",
        return_to: "/cart?x=1&y=\"",
    });
    assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
    for needle in [
        "<title>Checking your browser \u{2013} shop&lt;b&gt;.example</title>",
        "<noscript>",
        "aria-live=\"polite\"",
        "role=\"status\"",
        &format!("data-token=\"{}\"", t.as_str()),
        &format!("data-challenge=\"{}\"", t.challenge()),
        "data-difficulty=\"8\"",
        &format!("data-verify=\"{VERIFY_PATH}\""),
        "data-return=\"/cart?x=1&amp;y=%22\"",
        "about 256 hashes",
    ] {
        assert!(html.contains(needle), "page lacks {needle}");
    }
    for banned in [
        "href=\"http",
        "@import",
        "url(",
        "<link",
        "eval(",
        "new Function",
    ] {
        assert!(!html.contains(banned), "page has {banned}");
    }
    // One script, from this origin, whose integrity is what the CSP allows; the worker from this origin too.
    let main = crate::main_script();
    let worker = crate::worker_script();
    assert_eq!(html.matches("<script").count(), 1, "one script element");
    assert!(html.contains(&format!(
        "<script src=\"{}\" integrity=\"{}\"></script>",
        main.path, main.integrity
    )));
    assert!(html.contains(&format!("data-worker=\"{}\"", worker.path)));
    assert!(html.len() < 3_000, "{} bytes", html.len());
    let style = html
        .split("<style>")
        .nth(1)
        .and_then(|s| s.split("</style>").next())
        .expect("style");
    let hash = |s: &[u8]| {
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s))
    };
    assert_eq!(main.integrity, format!("sha256-{}", hash(&main.body)));
    let csp = content_security_policy();
    assert!(
        csp.contains(&format!("script-src '{}'", main.integrity)),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("style-src 'sha256-{}'", hash(style.as_bytes()))),
        "{csp}"
    );
    assert!(csp.contains("worker-src 'self'") && csp.contains("default-src 'none'"));
}

#[test]
fn assets_are_found_by_their_paths_only() {
    let main = crate::main_script();
    let worker = crate::worker_script();
    assert!(main.path.starts_with(crate::ASSET_PREFIX) && main.path.ends_with(".js"));
    assert!(std::ptr::eq(crate::asset(&main.path).unwrap(), main));
    assert!(std::ptr::eq(crate::asset(&worker.path).unwrap(), worker));
    assert!(crate::asset(VERIFY_PATH).is_none());
    assert!(crate::asset("/.edgeguard/challenge/check.js").is_none());
    assert!(crate::asset(&main.path[1..]).is_none());
    // The worker carries the hash it runs; the main script does not build a worker from the page's text.
    assert!(
        std::str::from_utf8(&worker.body)
            .unwrap()
            .contains("function egSha256")
    );
    assert!(!std::str::from_utf8(&main.body).unwrap().contains("Blob"));
}

proptest! {
    #[test]
    fn verify_never_panics(token in ".{0,130}", nonce in ".{0,30}", v4 in any::<u32>()) {
        let c = challenger();
        let client = IpAddr::from(v4.to_be_bytes());
        prop_assert!(c.verify(&token, &nonce, client, DOMAIN, NOW).is_err());
    }

    #[test]
    fn verify_never_panics_on_token_alphabet(token in "[A-Za-z0-9_-]{108,112}", nonce in "[0-9]{1,22}") {
        let c = challenger();
        prop_assert!(c.verify(&token, &nonce, ip("192.0.2.1"), DOMAIN, NOW).is_err());
    }

    #[test]
    fn cookie_check_never_panics(header in ".{0,300}", value in "[A-Za-z0-9_-]{86,90}", v6 in any::<u128>()) {
        let c = challenger();
        let h = format!("{header}; {COOKIE_NAME}={value}");
        prop_assert!(c.check_clearance(&header, IpAddr::from(v6.to_be_bytes()), DOMAIN, NOW).is_err());
        prop_assert!(c.check_clearance(&h, IpAddr::from(v6.to_be_bytes()), DOMAIN, NOW).is_err());
    }

    #[test]
    fn verify_endpoint_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let r = challenger().handle_verify(&body, ip("192.0.2.1"), DOMAIN, NOW, false);
        prop_assert!(r.status == 400 || r.status == 403);
    }

    #[test]
    fn return_path_is_always_local(raw in ".{0,60}") {
        let p = safe_return_path(&raw);
        prop_assert!(p.starts_with('/') && !p.starts_with("//"));
        prop_assert!(p.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b'<'));
    }
}
