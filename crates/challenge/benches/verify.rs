//! Server-side cost of the challenge: verifying one answer (token check, proof of work, cookie signing) and
//! checking one clearance cookie. Run with `cargo bench -p edgeguard-challenge`.

use criterion::{Criterion, criterion_group, criterion_main};
use edgeguard_challenge::{COOKIE_NAME, Challenger, Difficulty};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::net::IpAddr;

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

    c.bench_function("issue token", |b| {
        b.iter(|| ch.issue(black_box(ip), "www.example.com", NOW, d))
    });
    c.bench_function("verify answer (incl. cookie signing)", |b| {
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
