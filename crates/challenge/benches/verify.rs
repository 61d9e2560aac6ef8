//! Server-side cost of the challenge: issuing a page (token and HTML), verifying one answer (token check, proof of
//! work, replay check, cookie signing), refusing a replayed one, and checking one clearance cookie. Run with
//! `cargo bench -p edgeguard-challenge`.

use criterion::{Criterion, criterion_group, criterion_main};
use edgeguard_challenge::{
    COOKIE_NAME, ChallengePage, ChallengeParams, Challenger, Difficulty, TOKEN_TTL_MS, render_page,
};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const NOW: u64 = 1_790_000_000_000;

fn solve(challenge: &str, bits: u32) -> String {
    (0u64..)
        .map(|n| n.to_string())
        .find(|n| {
            let h = Sha256::new()
                .chain_update(challenge)
                .chain_update(n)
                .finalize();
            u32::from_be_bytes([h[0], h[1], h[2], h[3]]).leading_zeros() >= bits
        })
        .unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let ch = Challenger::from_key([3u8; 32]);
    let ip: IpAddr = [192, 0, 2, 1].into();
    let d = Difficulty::new(12).unwrap_or_default();
    let token = ch.issue(ip, "www.example.com", NOW, d);
    let nonce = solve(token.challenge(), 12);
    let clearance = ch
        .verify(token.as_str(), &nonce, ip, "www.example.com", NOW)
        .expect("solved answer verifies");
    let cookie = format!("theme=dark; {COOKIE_NAME}={}", clearance.cookie_value());

    c.bench_function(
        "getrandom 16 bytes (the system call issue made per token before)",
        |b| {
            b.iter(|| {
                let mut random = [0u8; 16];
                black_box(getrandom::fill(&mut random).is_ok());
                random
            })
        },
    );
    c.bench_function("issue token", |b| {
        b.iter(|| ch.issue(black_box(ip), "www.example.com", NOW, d))
    });
    let page = ChallengePage::new("www.example.com");
    c.bench_function("issue page (token + prebuilt page, one buffer)", |b| {
        b.iter(|| {
            let t = ch.issue(black_box(ip), "www.example.com", NOW, d);
            page.render(&t, black_box("/shop?item=3"))
        })
    });
    c.bench_function("issue page (token + prebuilt page, chunks)", |b| {
        b.iter(|| {
            let t = ch.issue(black_box(ip), "www.example.com", NOW, d);
            page.render_chunks(&t, black_box("/shop?item=3"))
        })
    });
    c.bench_function("issue page (token + render_page)", |b| {
        b.iter(|| {
            let t = ch.issue(black_box(ip), "www.example.com", NOW, d);
            render_page(&ChallengeParams {
                token: &t,
                domain: "www.example.com",
                return_to: black_box("/shop?item=3"),
            })
        })
    });

    // The first-use path needs a new solved token per answer. Solving is the client's work, done outside the
    // timing at 1 bit (verifying costs the same at any difficulty). Round r issues its tokens one token lifetime
    // after round r-1, so the earlier entries have expired and the cache stays as warm and as full as in use.
    let fresh = Challenger::from_key([3u8; 32]);
    let easy = Difficulty::new(1).unwrap_or_default();
    let mut round = 0u64;
    c.bench_function("verify answer (incl. replay check, cookie signing)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                round += 1;
                let now = NOW + round * (TOKEN_TTL_MS + 1000);
                let batch: Vec<_> = (0..left.min(4096))
                    .map(|_| {
                        let t = fresh.issue(ip, "www.example.com", now, easy);
                        let n = solve(t.challenge(), 1);
                        (t, n)
                    })
                    .collect();
                let start = Instant::now();
                for (t, n) in &batch {
                    let ok = fresh.verify(black_box(t.as_str()), n, ip, "www.example.com", now);
                    black_box(ok.is_ok());
                }
                total += start.elapsed();
                left -= batch.len() as u64;
            }
            total
        })
    });
    c.bench_function("verify replayed answer", |b| {
        b.iter(|| {
            ch.verify(
                black_box(token.as_str()),
                black_box(&nonce),
                ip,
                "www.example.com",
                NOW,
            )
        })
    });
    c.bench_function("verify forged token", |b| {
        let mut forged = token.as_str().to_string();
        forged.replace_range(20..21, if &forged[20..21] == "A" { "B" } else { "A" });
        b.iter(|| {
            ch.verify(
                black_box(&forged),
                black_box(&nonce),
                ip,
                "www.example.com",
                NOW,
            )
        })
    });
    c.bench_function("check clearance cookie", |b| {
        b.iter(|| ch.check_clearance(black_box(&cookie), ip, "www.example.com", NOW))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
